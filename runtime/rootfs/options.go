package rootfs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOptions is one mounts[] entry's options sorted by how they are
// applied: flags go to mount(2) (or become mount_setattr attributes for bind
// mounts), propagation is applied to the new mount afterwards, recursive
// attributes go through mount_setattr(AT_RECURSIVE), and everything unknown is
// filesystem data.
type mountOptions struct {
	flags       uintptr   // MS_* set by the options (including MS_BIND|MS_REC)
	cleared     uintptr   // MS_* the options explicitly clear ("rw", "suid", ...)
	propagation []uintptr // in the order given
	recSet      uint64    // MOUNT_ATTR_* set recursively ("rro", "rnosuid", ...)
	recClr      uint64    // MOUNT_ATTR_* cleared recursively
	data        []string
	idmap       bool // "idmap" or "ridmap" was given
	recIdmap    bool // "ridmap"
	tmpcopyup   bool
}

type flagOption struct {
	clear bool
	flag  uintptr
}

// The names mount(8) documents; values ≥ MS_* that x/sys lacks are spelled
// out by value.
var flagOptions = map[string]flagOption{
	"defaults":      {false, 0},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"nosuid":        {false, unix.MS_NOSUID},
	"suid":          {true, unix.MS_NOSUID},
	"nodev":         {false, unix.MS_NODEV},
	"dev":           {true, unix.MS_NODEV},
	"noexec":        {false, unix.MS_NOEXEC},
	"exec":          {true, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"remount":       {false, unix.MS_REMOUNT},
	"mand":          {false, unix.MS_MANDLOCK},
	"nomand":        {true, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"atime":         {true, unix.MS_NOATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"bind":          {false, unix.MS_BIND},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"silent":        {false, unix.MS_SILENT},
	"loud":          {true, unix.MS_SILENT},
	"iversion":      {false, unix.MS_I_VERSION},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
}

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

type recOption struct {
	clear bool
	attr  uint64
}

// Recursive attributes (runtime-spec 1.1). The atime modes are one field in
// the kernel, so setting one means clearing the whole MOUNT_ATTR__ATIME mask.
var recOptions = map[string]recOption{
	"rro":          {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":          {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":      {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":        {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":       {false, unix.MOUNT_ATTR_NODEV},
	"rdev":         {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":      {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":        {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":  {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":    {true, unix.MOUNT_ATTR_NODIRATIME},
	"rnosymfollow": {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":   {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

var recAtimeOptions = map[string]uint64{
	"rrelatime":    unix.MOUNT_ATTR_RELATIME,
	"rnorelatime":  unix.MOUNT_ATTR_STRICTATIME,
	"rnoatime":     unix.MOUNT_ATTR_NOATIME,
	"ratime":       unix.MOUNT_ATTR_STRICTATIME,
	"rstrictatime": unix.MOUNT_ATTR_STRICTATIME,
}

// parseOptions sorts a mount's options. It never fails: an option it does not
// know is filesystem data, as mount(8) treats it, and the kernel judges it.
func parseOptions(opts []string) mountOptions {
	var o mountOptions
	for _, opt := range opts {
		if f, ok := flagOptions[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
				o.cleared |= f.flag
			} else {
				o.flags |= f.flag
				o.cleared &^= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.propagation = append(o.propagation, p)
			continue
		}
		if r, ok := recOptions[opt]; ok {
			if r.clear {
				o.recClr |= r.attr
				o.recSet &^= r.attr
			} else {
				o.recSet |= r.attr
				o.recClr &^= r.attr
			}
			continue
		}
		if a, ok := recAtimeOptions[opt]; ok {
			o.recSet = o.recSet&^unix.MOUNT_ATTR__ATIME | a
			o.recClr |= unix.MOUNT_ATTR__ATIME
			continue
		}
		switch opt {
		case "idmap":
			o.idmap = true
			continue
		case "ridmap":
			o.idmap, o.recIdmap = true, true
			continue
		case "tmpcopyup":
			o.tmpcopyup = true
			continue
		case "notmpcopyup":
			o.tmpcopyup = false
			continue
		}
		o.data = append(o.data, opt)
	}
	return o
}

// parsePropagation maps linux.rootfsPropagation to mount flags; "" means the
// default, rslave, so that nothing the container mounts reaches the host.
func parsePropagation(s string) (uintptr, error) {
	if s == "" {
		return unix.MS_SLAVE | unix.MS_REC, nil
	}
	p, ok := propagationOptions[s]
	if !ok {
		return 0, fmt.Errorf("linux.rootfsPropagation: unknown propagation %q (want one of shared, slave, private, unbindable, or an r-prefixed recursive form)", s)
	}
	return p, nil
}

// setattrFlags are the MS_* per-mount flags a bind mount can change after the
// fact, with their mount_setattr equivalents.
var setattrFlags = []struct {
	ms   uintptr
	attr uint64
}{
	{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
	{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
	{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
	{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
	{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	{unix.MS_NOSYMFOLLOW, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// bindAttr turns a bind mount's flags into a mount_setattr request. A bind
// mount starts with its source's flags; the options may only add
// restrictions, so nothing the source has (and, in a user namespace, may have
// locked) is ever cleared. The atime mode is the exception: naming one
// replaces the source's.
func bindAttr(flags uintptr) unix.MountAttr {
	var a unix.MountAttr
	for _, f := range setattrFlags {
		if flags&f.ms != 0 {
			a.Attr_set |= f.attr
		}
	}
	switch {
	case flags&unix.MS_NOATIME != 0:
		a.Attr_set |= unix.MOUNT_ATTR_NOATIME
		a.Attr_clr |= unix.MOUNT_ATTR__ATIME
	case flags&unix.MS_STRICTATIME != 0:
		a.Attr_set |= unix.MOUNT_ATTR_STRICTATIME
		a.Attr_clr |= unix.MOUNT_ATTR__ATIME
	case flags&unix.MS_RELATIME != 0:
		a.Attr_set |= unix.MOUNT_ATTR_RELATIME
		a.Attr_clr |= unix.MOUNT_ATTR__ATIME
	}
	return a
}

// joinData joins filesystem data options, dropping empty ones.
func joinData(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}
