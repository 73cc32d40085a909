package process

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// groupList is the supplementary group list for u: additionalGids and the
// primary gid, each once, in spec order.
func groupList(u specs.User) []int {
	gids := make([]int, 0, len(u.AdditionalGids)+1)
	for _, g := range u.AdditionalGids {
		if !slices.Contains(gids, int(g)) {
			gids = append(gids, int(g))
		}
	}
	if !slices.Contains(gids, int(u.GID)) {
		gids = append(gids, int(u.GID))
	}
	return gids
}

// setgroupsAllowed is false in a user namespace whose creator wrote "deny"
// to setgroups (an unprivileged user namespace): setgroups(2) would fail
// there whatever the list, so it is skipped, as runc does.
func setgroupsAllowed() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	if err != nil {
		return true // kernels before 3.19 have no such file and allow it
	}
	return strings.TrimSpace(string(b)) != "deny"
}

// changeIdentity sets groups, gid and uid. The syscall package applies each
// to every thread of the process (a thread left as root could otherwise be
// reached through /proc/<pid>/task), and the caller has set
// PR_SET_KEEPCAPS so the permitted set survives the uid change.
func changeIdentity(u specs.User) error {
	if setgroupsAllowed() {
		gids := groupList(u)
		if err := syscall.Setgroups(gids); err != nil {
			return fmt.Errorf("process.user.additionalGids: setgroups %v: %w", gids, err)
		}
	}
	if err := syscall.Setresgid(int(u.GID), int(u.GID), int(u.GID)); err != nil {
		return fmt.Errorf("process.user.gid: setresgid %d: %w", u.GID, err)
	}
	if err := syscall.Setresuid(int(u.UID), int(u.UID), int(u.UID)); err != nil {
		return fmt.Errorf("process.user.uid: setresuid %d: %w", u.UID, err)
	}
	return nil
}

// maxPasswdSize bounds how much of the container's /etc/passwd is read.
const maxPasswdSize = 16 << 20

// homeDir finds uid's home directory in the container's /etc/passwd, "/"
// when there is none (runc's default). The file comes from the image, so it
// is opened without blocking (it could be a FIFO) and must be a regular
// file of bounded size.
func homeDir(uid uint32) string {
	f, err := os.OpenFile("/etc/passwd", os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return "/"
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "/"
	}
	users, err := user.ParsePasswdFilter(io.LimitReader(f, maxPasswdSize), func(u user.User) bool {
		return u.Uid == int(uid)
	})
	if err != nil || len(users) == 0 || users[0].Home == "" {
		return "/"
	}
	return users[0].Home
}

// envLookup returns the first value of key in env: execve passes the list
// unchanged, and getenv(3) in the program finds the first.
func envLookup(env []string, key string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
