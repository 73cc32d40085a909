package rootfs

import (
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []string
		want mountOptions
	}{
		{"empty", nil, mountOptions{}},
		{"flags", []string{"ro", "nosuid", "nodev", "noexec", "relatime"},
			mountOptions{flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME}},
		{"later clears earlier", []string{"ro", "rw"}, mountOptions{cleared: unix.MS_RDONLY}},
		{"later sets after clear", []string{"rw", "ro"}, mountOptions{flags: unix.MS_RDONLY}},
		{"rbind", []string{"rbind"}, mountOptions{flags: unix.MS_BIND | unix.MS_REC}},
		{"propagation in order", []string{"rshared", "private"},
			mountOptions{propagation: []uintptr{unix.MS_SHARED | unix.MS_REC, unix.MS_PRIVATE}}},
		{"recursive attrs", []string{"rro", "rnosuid", "rexec"},
			mountOptions{recSet: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID, recClr: unix.MOUNT_ATTR_NOEXEC}},
		{"recursive atime replaces", []string{"rnoatime", "rrelatime"},
			mountOptions{recSet: unix.MOUNT_ATTR_RELATIME, recClr: unix.MOUNT_ATTR__ATIME}},
		{"data", []string{"mode=755", "size=65536k", "nosuid"},
			mountOptions{flags: unix.MS_NOSUID, data: []string{"mode=755", "size=65536k"}}},
		{"idmap", []string{"ridmap"}, mountOptions{idmap: true, recIdmap: true}},
		{"tmpcopyup", []string{"tmpcopyup"}, mountOptions{tmpcopyup: true}},
		{"nosymfollow", []string{"nosymfollow"}, mountOptions{flags: unix.MS_NOSYMFOLLOW}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseOptions(tt.opts)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseOptions(%q) = %+v, want %+v", tt.opts, got, tt.want)
			}
		})
	}
}

func TestParsePropagation(t *testing.T) {
	tests := []struct {
		in      string
		want    uintptr
		wantErr bool
	}{
		{"", unix.MS_SLAVE | unix.MS_REC, false},
		{"private", unix.MS_PRIVATE, false},
		{"rshared", unix.MS_SHARED | unix.MS_REC, false},
		{"unbindable", unix.MS_UNBINDABLE, false},
		{"sideways", 0, true},
	}
	for _, tt := range tests {
		got, err := parsePropagation(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parsePropagation(%q) = %#x, %v; want %#x, err=%v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "linux.rootfsPropagation") {
			t.Errorf("error %q does not name linux.rootfsPropagation", err)
		}
	}
}

func TestBindAttr(t *testing.T) {
	tests := []struct {
		name  string
		flags uintptr
		want  unix.MountAttr
	}{
		{"nothing", unix.MS_BIND | unix.MS_REC, unix.MountAttr{}},
		{"ro nosuid", unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID,
			unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID}},
		{"noatime replaces the atime mode", unix.MS_NOATIME,
			unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
		{"relatime", unix.MS_RELATIME | unix.MS_NODEV,
			unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_RELATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}},
	}
	for _, tt := range tests {
		if got := bindAttr(tt.flags); got != tt.want {
			t.Errorf("%s: bindAttr = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestCgroupOptions(t *testing.T) {
	tests := []struct {
		vfs         string
		wantData    string
		wantMembers []string
	}{
		{"rw,cpu", "cpu", []string{"cpu"}},
		{"rw,cpu,cpuacct", "cpu,cpuacct", []string{"cpu", "cpuacct"}},
		{"rw,xattr,name=systemd", "xattr,name=systemd", []string{"name=systemd"}},
		{"rw,release_agent=/x,memory", "memory", []string{"memory"}},
	}
	for _, tt := range tests {
		data, members := cgroupOptions(tt.vfs)
		if data != tt.wantData || !reflect.DeepEqual(members, tt.wantMembers) {
			t.Errorf("cgroupOptions(%q) = %q %v, want %q %v", tt.vfs, data, members, tt.wantData, tt.wantMembers)
		}
	}
}

func TestIsBindMountAndNeedsDev(t *testing.T) {
	tests := []struct {
		m        specs.Mount
		bind     bool
		needsDev bool
	}{
		{specs.Mount{Destination: "/dev", Type: "tmpfs"}, false, true},
		{specs.Mount{Destination: "/dev", Type: "bind", Source: "/dev"}, true, false},
		{specs.Mount{Destination: "dev/", Source: "/dev", Options: []string{"rbind"}}, true, false},
		{specs.Mount{Destination: "/dev/shm", Source: "/dev/shm", Options: []string{"bind"}}, true, true},
		{specs.Mount{Destination: "/x", Type: "none", Options: []string{"bind", "ro"}}, true, true},
	}
	for _, tt := range tests {
		if got := isBindMount(tt.m); got != tt.bind {
			t.Errorf("isBindMount(%+v) = %v", tt.m, got)
		}
		if got := needsDev(&specs.Spec{Mounts: []specs.Mount{tt.m}}); got != tt.needsDev {
			t.Errorf("needsDev(%+v) = %v", tt.m, got)
		}
	}
}

func TestCheckProcDest(t *testing.T) {
	tests := []struct {
		rel, typ string
		bind     bool
		ok       bool
	}{
		{"proc", "proc", false, true},
		{"proc", "tmpfs", false, false},
		{"proc/cpuinfo", "bind", true, true},
		{"proc/sys/kernel/ns_last_pid", "bind", true, true},
		{"proc/sys", "tmpfs", false, false},
		{"proc/self/fd", "bind", true, false},
		{"procfoo", "tmpfs", false, true},
		{"sys", "sysfs", false, true},
	}
	for _, tt := range tests {
		e := &entry{m: specs.Mount{Destination: "/" + tt.rel, Type: tt.typ}, rel: tt.rel}
		if tt.bind {
			e.o.flags = unix.MS_BIND
		}
		err := checkProcDest(e, false)
		if (err == nil) != tt.ok {
			t.Errorf("checkProcDest(%s, %s) = %v, want ok=%v", tt.rel, tt.typ, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "mounts[0] /"+tt.rel) {
			t.Errorf("error %q does not name mounts[0]", err)
		}
	}
}

func TestDeviceType(t *testing.T) {
	for in, want := range map[string]uint32{"c": unix.S_IFCHR, "u": unix.S_IFCHR, "b": unix.S_IFBLK, "p": unix.S_IFIFO} {
		if got, err := deviceType(in); err != nil || got != want {
			t.Errorf("deviceType(%q) = %#o, %v", in, got, err)
		}
	}
	if _, err := deviceType("x"); err == nil {
		t.Error("deviceType(x) succeeded")
	}
}

func TestMountDataLabel(t *testing.T) {
	p := &preparer{c: &Config{MountLabel: "system_u:object_r:container_file_t:s0"}}
	got := p.mountData("proc", "hidepid=2")
	if got != "hidepid=2" {
		t.Errorf("proc data labelled: %q", got)
	}
	got = p.mountData("tmpfs", "mode=755")
	if selinux.GetEnabled() {
		if !strings.Contains(got, `context="system_u:object_r:container_file_t:s0"`) {
			t.Errorf("tmpfs data not labelled: %q", got)
		}
	} else if got != "mode=755" {
		t.Errorf("SELinux disabled, yet tmpfs data changed: %q", got)
	}
}
