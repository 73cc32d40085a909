package process

import (
	"fmt"
	"os"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// namespace reports whether spec lists a namespace of type t, and its path
// (empty for a new one).
func namespace(spec *specs.Spec, t specs.LinuxNamespaceType) (bool, string) {
	if spec == nil || spec.Linux == nil {
		return false, ""
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return true, ns.Path
		}
	}
	return false, ""
}

// ipcSysctls are the kernel.* sysctls the ipc namespace owns.
var ipcSysctls = []string{
	"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
	"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}

// checkSysctl refuses, as runc does, a sysctl that would change the host:
// one that no namespace of the container owns. net.* needs a network
// namespace (when it is joined by path we cannot tell whether it is the
// host's and trust the configuration, as the path was chosen by whoever
// wrote it); ipc sysctls and fs.mqueue.* need an ipc namespace;
// kernel.domainname needs a uts namespace, and kernel.hostname is refused
// because the hostname field says the same thing.
func checkSysctl(spec *specs.Spec, key string) error {
	field := fmt.Sprintf("linux.sysctl[%q]", key)
	path := sysctlPath(key)
	for _, seg := range strings.Split(path, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsRune(seg, 0) {
			return fmt.Errorf("%s: not a sysctl name", field)
		}
	}
	// Checked in dotted form so that "net/ipv4/ip_forward" is judged like
	// "net.ipv4.ip_forward".
	name := strings.ReplaceAll(path, "/", ".")
	if slices.Contains(ipcSysctls, name) || strings.HasPrefix(name, "fs.mqueue.") {
		if ok, _ := namespace(spec, specs.IPCNamespace); !ok {
			return fmt.Errorf("%s: needs an ipc namespace in linux.namespaces, or it would change the host's", field)
		}
		return nil
	}
	if strings.HasPrefix(name, "net.") {
		if ok, _ := namespace(spec, specs.NetworkNamespace); !ok {
			return fmt.Errorf("%s: needs a network namespace in linux.namespaces, or it would change the host's", field)
		}
		return nil
	}
	switch name {
	case "kernel.domainname":
		if ok, _ := namespace(spec, specs.UTSNamespace); ok {
			return nil
		}
		return fmt.Errorf("%s: needs a uts namespace in linux.namespaces, or it would change the host's", field)
	case "kernel.hostname":
		return fmt.Errorf("%s: not allowed, set the hostname field instead", field)
	}
	return fmt.Errorf("%s: not owned by any namespace of the container, so it would change the host's", field)
}

// sysctlPath maps a sysctl key to its file under /proc/sys the way
// sysctl(8) does: in the usual dotted form a "/" stands for a "." inside a
// component (an interface named eth0.100: "net.ipv4.conf.eth0/100.forwarding"),
// so dots and slashes swap; a key whose first separator is a slash is
// already a path ("net/ipv4/ip_forward", which runc also accepts).
func sysctlPath(key string) string {
	if i := strings.IndexAny(key, "./"); i >= 0 && key[i] == '/' {
		return key
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, key)
}

// ApplySysctls writes linux.sysctl. The container's init calls it before
// the root filesystem's readonlyPaths (which usually hold /proc/sys) are
// made read-only, and tells Prepare so with Options.SysctlsApplied.
func ApplySysctls(spec *specs.Spec) error { return applySysctls(spec) }

func applySysctls(spec *specs.Spec) error {
	if spec.Linux == nil || len(spec.Linux.Sysctl) == 0 {
		return nil
	}
	keys := make([]string, 0, len(spec.Linux.Sysctl))
	for k := range spec.Linux.Sysctl {
		keys = append(keys, k)
	}
	slices.Sort(keys) // deterministic order and errors
	for _, k := range keys {
		if err := checkSysctl(spec, k); err != nil {
			return err
		}
	}
	// An os.Root keeps a crafted key inside /proc/sys whatever it holds.
	root, err := os.OpenRoot("/proc/sys")
	if err != nil {
		return fmt.Errorf("linux.sysctl: %w", err)
	}
	defer root.Close()
	for _, k := range keys {
		f, err := root.OpenFile(sysctlPath(k), os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("linux.sysctl[%q]: %w", k, err)
		}
		_, err = f.WriteString(spec.Linux.Sysctl[k])
		cerr := f.Close()
		if err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("linux.sysctl[%q]: write %q: %w", k, spec.Linux.Sysctl[k], err)
		}
	}
	return nil
}

func applyUTS(spec *specs.Spec) error {
	if spec.Hostname == "" && spec.Domainname == "" {
		return nil
	}
	if ok, _ := namespace(spec, specs.UTSNamespace); !ok {
		field := "hostname"
		if spec.Hostname == "" {
			field = "domainname"
		}
		return fmt.Errorf("%s: needs a uts namespace in linux.namespaces, or it would change the host's", field)
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("hostname: set %q: %w", spec.Hostname, err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("domainname: set %q: %w", spec.Domainname, err)
		}
	}
	return nil
}
