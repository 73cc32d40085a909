package runtime

import specs "github.com/opencontainers/runtime-spec/specs-go"

func i64(v int64) *int64 { return &v }

// defaultDeviceRules are the devices every container may use whatever the
// spec says, as runc and Docker allow them: the basic character devices,
// terminals, and tun; mknod of anything (creating a node is harmless when
// opening it is denied).
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Access: "m"},
	{Allow: true, Type: "b", Access: "m"},
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},    // null
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"},    // random
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"},    // full
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"},    // tty
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"},    // zero
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"},    // urandom
	{Allow: true, Type: "c", Major: i64(136), Access: "rwm"},                 // pts/*
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},    // ptmx
	{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"}, // net/tun
}

// cgroupResources returns the resources to apply at create: the spec's, with
// the device list made complete. It starts from deny-all (a spec that says
// nothing about devices must not get the host's), then the spec's rules,
// the defaults, and every device the spec creates.
func cgroupResources(l *specs.Linux) *specs.LinuxResources {
	var res specs.LinuxResources
	if l.Resources != nil {
		res = *l.Resources
	}
	devs := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	devs = append(devs, res.Devices...)
	devs = append(devs, defaultDeviceRules...)
	for _, d := range l.Devices {
		typ := d.Type
		switch typ {
		case "p":
			continue // fifos are not devices to the cgroup
		case "u":
			typ = "c"
		}
		major, minor := d.Major, d.Minor
		devs = append(devs, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: "rwm"})
	}
	res.Devices = devs
	return &res
}
