package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/errdefs"
	tu "github.com/berthproject/berth/internal/testutil"
	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// sandbox is a temporary directory holding the apply root at root/ and,
// beside it, files that stand for the host: a hostile layer that reached
// them would change the sandbox outside root/.
type sandbox struct {
	dir  string
	root string
}

func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	dir := t.TempDir()
	s := &sandbox{dir: dir, root: filepath.Join(dir, "root")}
	for _, d := range []string{"root", "outside", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("host passwd"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "outside/sentinel"), []byte("host sentinel"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "outside/perm400"), []byte("host"), 0o400))
	must(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("host secret"), 0o600))
	return s
}

// outside is the sandbox as seen from outside the root.
func (s *sandbox) outside(t *testing.T) map[string]tu.Node {
	t.Helper()
	tree := tu.TreeOf(t, s.dir, tu.TreeOptions{Mtimes: true})
	for k := range tree {
		if k == "root" || strings.HasPrefix(k, "root/") {
			delete(tree, k)
		}
	}
	return tree
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func apply(t *testing.T, dir string, mode WhiteoutMode, entries ...tu.Entry) (Result, error) {
	t.Helper()
	return Apply(context.Background(), dir, bytes.NewReader(tu.MakeTar(t, entries...)), Options{Whiteouts: mode, IgnoreOwner: os.Geteuid() != 0})
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

// inRoot resolves p (a path under root) the way the container sees it:
// symlinks confined to the root.
func inRoot(t *testing.T, root, p string) string {
	t.Helper()
	rel, err := filepath.Rel(root, p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := securejoin.SecureJoin(root, rel)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func sameFile(t *testing.T, root, a, b string) {
	t.Helper()
	sa, err1 := os.Stat(inRoot(t, root, a))
	sb, err2 := os.Stat(inRoot(t, root, b))
	if err1 != nil || err2 != nil {
		t.Fatalf("stat: %v, %v", err1, err2)
	}
	if !os.SameFile(sa, sb) {
		t.Fatalf("%s and %s are not the same file", a, b)
	}
}

func isSymlink(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("%s is %v, want a symlink", p, fi.Mode())
	}
	target, _ := os.Readlink(p)
	return target
}

func notExist(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists (%v), want it gone", p, err)
	}
}

func TestBreakouts(t *testing.T) {
	const unbroken = "unbroken"
	file := tu.File
	dir := tu.Dir
	sym := tu.Symlink
	link := tu.Link
	type tc struct {
		name string
		// base is applied first (WhiteoutDelete), standing for what lower
		// layers put in the root.
		base    func(s *sandbox) []tu.Entry
		layer   func(s *sandbox) []tu.Entry
		wantErr error
		check   func(t *testing.T, s *sandbox)
	}
	etcUnbroken := func(t *testing.T, s *sandbox) {
		if got := readFile(t, filepath.Join(s.root, "etc", unbroken)); got != unbroken {
			t.Fatalf("root/etc/unbroken = %q", got)
		}
	}
	rootPasswd := func(s *sandbox) []tu.Entry {
		return []tu.Entry{{Name: "etc", Type: tar.TypeDir, Mode: 0o770}, file("etc/passwd", "inside")}
	}
	linkedToEtcPasswd := func(name string) func(t *testing.T, s *sandbox) {
		return func(t *testing.T, s *sandbox) {
			sameFile(t, s.root, filepath.Join(s.root, name), filepath.Join(s.root, "etc/passwd"))
		}
	}
	cases := []tc{
		// Writes through symlinked parents land inside the root.
		{name: "SymlinkAbsolute", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("etc"), sym("localetc", "/etc"), file("/localetc/unbroken", unbroken)}
		}, check: etcUnbroken},
		{name: "SymlinkUpAndOut", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("etc"), dir("dummy"), sym("localetc", "/dummy/../etc"), file("/localetc/unbroken", unbroken)}
		}, check: etcUnbroken},
		{name: "SymlinkMultipleAbsolute", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("etc"), dir("dummy"), sym("/dummy/etc", "/etc"), sym("localetc", "/dummy/etc"), file("/dummy/etc/unbroken", unbroken)}
		}, check: etcUnbroken},
		{name: "SymlinkMultipleRelative", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("etc"), dir("dummy"), sym("/dummy/etc", "/etc"), sym("localetc", "./dummy/etc"), file("/dummy/etc/unbroken", unbroken)}
		}, check: etcUnbroken},
		{name: "SymlinkRelativeClimbsPastRoot", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("etc"), dir("a/b"), sym("a/b/up", "../../../../../../etc"), file("a/b/up/unbroken", unbroken)}
		}, check: etcUnbroken},
		{name: "SymlinkToHostAbsolutePath", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("out", filepath.Join(s.dir, "outside")), file("out/sentinel", "overwritten"), file("out/new", "new")}
		}, check: func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, s.dir, "outside/sentinel")); got != "overwritten" {
				t.Fatalf("write through the host path did not land inside the root: %q", got)
			}
		}},
		{name: "SymlinkEmptyFile", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("etc"), file("etc/emptied", "notempty"), sym("localetc", "/etc"), file("/localetc/emptied", "")}
		}, check: func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, "etc/emptied")); got != "" {
				t.Fatalf("etc/emptied = %q", got)
			}
		}},
		{name: "SymlinkHostFileTruncated", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("passwd", filepath.Join(s.dir, "etc/passwd")), file("passwd", "")}
		}, check: func(t *testing.T, s *sandbox) {
			if fi, err := os.Lstat(filepath.Join(s.root, "passwd")); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("the file did not replace the symlink: %v %v", fi, err)
			}
		}},
		{name: "SymlinkFinalComponentReplacedNotFollowed", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("target", filepath.Join(s.dir, "outside/sentinel")), {Name: "target", Body: "replaced", Mode: 0o4777}}
		}, check: func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, "target")); got != "replaced" {
				t.Fatalf("target = %q", got)
			}
		}},
		{name: "SymlinkToHostDirReplacedByDir", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("d", filepath.Join(s.dir, "outside")), {Name: "d", Type: tar.TypeDir, Mode: 0o777}, file("d/sentinel", "inside")}
		}, check: func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, "d/sentinel")); got != "inside" {
				t.Fatalf("d/sentinel = %q", got)
			}
		}},
		{name: "FifoThroughHostSymlink", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("o", filepath.Join(s.dir, "outside")), {Name: "o/fifo", Type: tar.TypeFifo, Mode: 0o600}}
		}},
		{name: "SetuidThroughHostSymlink", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("o", filepath.Join(s.dir, "outside")), {Name: "o/perm400", Body: "x", Mode: 0o4755}}
		}},

		// Hard links resolve their targets inside the root.
		{name: "HardlinkRelative", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), dir("breakouts"), sym("breakouts/d1", "../../etc"), link("breakouts/mypasswd", "/breakouts/d1/passwd"))
		}, check: linkedToEtcPasswd("breakouts/mypasswd")},
		{name: "HardlinkDownAndOut", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), dir("breakouts"), dir("downandout"), sym("breakouts/d1", "../downandout/../../etc"), link("breakouts/mypasswd", "/breakouts/d1/passwd"))
		}, check: linkedToEtcPasswd("breakouts/mypasswd")},
		{name: "HardlinkAbsolute", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc", "/etc"), link("localpasswd", "/localetc/passwd"))
		}, check: linkedToEtcPasswd("localpasswd")},
		{name: "HardlinkRelativeLong", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc", "../../../../../../../etc"), link("localpasswd", "/localetc/passwd"))
		}, check: linkedToEtcPasswd("localpasswd")},
		{name: "HardlinkRelativeUpAndOut", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc", "upandout/../../../etc"), link("localpasswd", "/localetc/passwd"))
		}, check: linkedToEtcPasswd("localpasswd")},
		{name: "HardlinkDirectRelative", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), link("localpasswd", "../../../../../etc/passwd"))
		}, check: linkedToEtcPasswd("localpasswd")},
		{name: "HardlinkDirectAbsolute", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), link("localpasswd", "/etc/passwd"))
		}, check: linkedToEtcPasswd("localpasswd")},
		{name: "HardlinkToHostPath", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{link("stolen", filepath.Join(s.dir, "secret"))}
		}, wantErr: os.ErrNotExist},
		{name: "HardlinkThroughHostSymlink", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("o", s.dir), link("stolen", "o/secret")}
		}, wantErr: os.ErrNotExist},
		{name: "HardlinkSymlinkBeforeCreateTarget", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{{Name: "etc", Type: tar.TypeDir, Mode: 0o770}, sym("localpasswd", "/etc/passwd"), link("localpasswd-dup", "localpasswd"), file("/etc/passwd", "after")}
		}, check: func(t *testing.T, s *sandbox) {
			if got := isSymlink(t, filepath.Join(s.root, "localpasswd-dup")); got != "/etc/passwd" {
				t.Fatalf("localpasswd-dup -> %q", got)
			}
		}},
		{name: "HardlinkSymlinkRelative", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("passwdlink", "../../../../../etc/passwd"), link("localpasswd", "/passwdlink"))
		}, check: func(t *testing.T, s *sandbox) {
			if got := isSymlink(t, filepath.Join(s.root, "localpasswd")); got != "../../../../../etc/passwd" {
				t.Fatalf("localpasswd -> %q", got)
			}
		}},
		{name: "HardlinkSymlinkAbsolute", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("passwdlink", "/etc/passwd"), link("localpasswd", "/passwdlink"))
		}, check: func(t *testing.T, s *sandbox) {
			if got := isSymlink(t, filepath.Join(s.root, "localpasswd")); got != "/etc/passwd" {
				t.Fatalf("localpasswd -> %q", got)
			}
		}},
		{name: "HardlinkSymlinkChmod", layer: func(s *sandbox) []tu.Entry {
			ep := filepath.Join(s.dir, "also-exists-outside-root")
			return []tu.Entry{sym(ep, filepath.Join(s.dir, "outside/perm400")), {Name: "sketchylink", Type: tar.TypeLink, Link: ep, Mode: 0o777}}
		}},
		{name: "HardlinkToDirectory", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("etc"), link("etclink", "etc")}
		}, wantErr: ErrInvalidArchive},
		{name: "HardlinkToRoot", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{link("rootlink", "../..")}
		}, wantErr: ErrInvalidArchive},
		{name: "HardlinkMissingTarget", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{link("dangling", "nowhere")}
		}, wantErr: os.ErrNotExist},

		// Entry names are cleaned against the root.
		{name: "AbsoluteName", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file(filepath.Join(s.dir, "outside/sentinel"), "inside"), file("/etc/passwd", "inside")}
		}, check: func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, "etc/passwd")); got != "inside" {
				t.Fatalf("root/etc/passwd = %q", got)
			}
		}},
		{name: "DotDotName", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("../../../../outside/sentinel", "inside"), file("../secret", "inside")}
		}, check: func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, "outside/sentinel")); got != "inside" {
				t.Fatalf("root/outside/sentinel = %q", got)
			}
		}},
		{name: "DotDotInTheMiddle", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("etc/../../../escape", "x")}
		}, check: func(t *testing.T, s *sandbox) { readFile(t, filepath.Join(s.root, "escape")) }},
		{name: "DotDotDirectory", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{{Name: "../", Type: tar.TypeDir, Mode: 0o777}, {Name: "../../outside", Type: tar.TypeDir, Mode: 0o700}}
		}},
		{name: "SymlinkNamedDotDot", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("..", "/etc/"), link("localpasswd", "/etc/passwd"))
		}, check: linkedToEtcPasswd("localpasswd")},
		{name: "SymlinkNamedDot", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym(".", s.dir), file("x", "inside"))
		}, check: func(t *testing.T, s *sandbox) { readFile(t, filepath.Join(s.root, "x")) }},
		{name: "SymlinkParentRelative", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc/sub/..", "/etc/"), link("/localetc/localpasswd", "/etc/passwd"))
		}, check: linkedToEtcPasswd("localetc/localpasswd")},
		{name: "SymlinkSlashEnded", layer: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), tu.Entry{Name: "localetc/", Type: tar.TypeDir, Mode: 0o770}, link("/localetc/localpasswd", "/etc/passwd"))
		}, check: linkedToEtcPasswd("localetc/localpasswd")},
		{name: "SymlinkOverrideDirectory", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), dir("localetc"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("localetc", "/etc"), link("/localetc/localpasswd", "/etc/passwd")}
		}, check: linkedToEtcPasswd("etc/localpasswd")},
		{name: "SymlinkOverrideDirectoryRelative", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), dir("localetc"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("localetc", "../../etc"), link("/localetc/localpasswd", "/etc/passwd")}
		}, check: linkedToEtcPasswd("etc/localpasswd")},
		{name: "DirectoryOverrideSymlink", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc", "/etc"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("/localetc/"), link("/localetc/localpasswd", "/etc/passwd")}
		}, check: func(t *testing.T, s *sandbox) {
			if fi, err := os.Lstat(filepath.Join(s.root, "localetc")); err != nil || !fi.IsDir() {
				t.Fatalf("localetc is not a directory: %v %v", fi, err)
			}
			linkedToEtcPasswd("localetc/localpasswd")(t, s)
		}},
		{name: "DirectoryOverrideSymlinkAndHardlink", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc", "etc"), link("/localetc/localpasswd", "/etc/passwd"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{dir("/localetc/"), file("/localetc/localpasswd", "different")}
		}, check: func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, "etc/passwd")); got != "inside" {
				t.Fatalf("writing the new file wrote through the old hard link: etc/passwd = %q", got)
			}
		}},
		{name: "FileOverHardlinkKeepsOtherName", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), link("etc/shadow", "etc/passwd"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("etc/shadow", "replaced")}
		}, check: func(t *testing.T, s *sandbox) {
			if got := readFile(t, filepath.Join(s.root, "etc/passwd")); got != "inside" {
				t.Fatalf("etc/passwd = %q", got)
			}
		}},

		// Whiteouts.
		{name: "WhiteoutRootParent", base: rootPasswd, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file(".wh...", "")}
		}, wantErr: ErrInvalidArchive},
		{name: "WhiteoutParent", base: rootPasswd, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("etc/.wh...", "")}
		}, wantErr: ErrInvalidArchive},
		{name: "WhiteoutRoot", base: rootPasswd, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file(".wh..", "")}
		}, wantErr: ErrInvalidArchive},
		{name: "WhiteoutCurrentDirectory", base: rootPasswd, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("etc/.wh..", "")}
		}, wantErr: ErrInvalidArchive},
		{name: "WhiteoutEmptyName", base: rootPasswd, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("etc/.wh.", "")}
		}, wantErr: ErrInvalidArchive},
		{name: "WhiteoutSymlink", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc", "/etc"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file(".wh.localetc", "")}
		}, check: func(t *testing.T, s *sandbox) {
			readFile(t, filepath.Join(s.root, "etc/passwd"))
			notExist(t, filepath.Join(s.root, "localetc"))
		}},
		{name: "WhiteoutSymlinkPath", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), file("etc/whitedout", "x"), sym("localetc", "/etc"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("localetc/.wh.whitedout", "")}
		}, check: func(t *testing.T, s *sandbox) {
			readFile(t, filepath.Join(s.root, "etc/passwd"))
			notExist(t, filepath.Join(s.root, "etc/whitedout"))
		}},
		{name: "WhiteoutDirectoryName", base: rootPasswd, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file(".wh.etc/somefile", "non-empty")}
		}, check: func(t *testing.T, s *sandbox) {
			readFile(t, filepath.Join(s.root, "etc/passwd"))
			if got := readFile(t, filepath.Join(s.root, ".wh.etc/somefile")); got != "non-empty" {
				t.Fatalf(".wh.etc/somefile = %q", got)
			}
		}},
		{name: "WhiteoutDeadSymlinkParent", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc", "/dne"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("localetc/.wh.etc", "")}
		}, check: func(t *testing.T, s *sandbox) { readFile(t, filepath.Join(s.root, "etc/passwd")) }},
		{name: "WhiteoutRelativePath", base: func(s *sandbox) []tu.Entry {
			return append(rootPasswd(s), sym("localetc", "/dne"))
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("dne/../.wh.etc", "")}
		}, check: func(t *testing.T, s *sandbox) { notExist(t, filepath.Join(s.root, "etc")) }},
		{name: "WhiteoutThroughHostSymlink", base: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("o", filepath.Join(s.dir, "outside"))}
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("o/.wh.sentinel", ""), file("o/.wh..wh..opq", "")}
		}},
		{name: "WhiteoutDotDotEscape", base: rootPasswd, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("../../.wh.outside", ""), file("../.wh.secret", "")}
		}},
		{name: "OpaqueThroughHostSymlink", base: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("o", filepath.Join(s.dir, "outside"))}
		}, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("o/.wh..wh..opq", "")}
		}},
		{name: "OpaqueRootDotDot", base: rootPasswd, layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("../.wh..wh..opq", ""), file("keep", "kept")}
		}, check: func(t *testing.T, s *sandbox) {
			notExist(t, filepath.Join(s.root, "etc"))
			readFile(t, filepath.Join(s.root, "keep"))
		}},

		// Other hostile content.
		{name: "OverlayXattrsRefused", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{{Name: "d", Type: tar.TypeDir, Xattrs: map[string]string{"trusted.overlay.redirect": "/etc", "trusted.overlay.opaque": "y"}}}
		}, check: func(t *testing.T, s *sandbox) {
			if n, err := unix.Lgetxattr(filepath.Join(s.root, "d"), "trusted.overlay.redirect", make([]byte, 64)); err == nil {
				t.Fatalf("trusted.overlay.redirect set from a layer (%d bytes)", n)
			}
		}},
		{name: "UnknownEntryType", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{{Name: "vol", Type: 'V'}}
		}, wantErr: ErrInvalidArchive},
		{name: "ParentIsAFile", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file("f", "x"), file("f/child", "y")}
		}, wantErr: errdefs.ErrInvalidArgument},
		{name: "NameTooLong", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{file(strings.Repeat("n", 300), "x")}
		}, wantErr: unix.ENAMETOOLONG},
	}
	if os.Geteuid() == 0 {
		cases = append(cases, tc{name: "DeviceNodeThroughHostSymlink", layer: func(s *sandbox) []tu.Entry {
			return []tu.Entry{sym("o", filepath.Join(s.dir, "outside")), {Name: "o/null", Type: tar.TypeChar, Major: 1, Minor: 3, Mode: 0o666}}
		}, check: func(t *testing.T, s *sandbox) {
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(s.root, s.dir, "outside/null"), &st))
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) {
				t.Fatalf("device node: mode %o rdev %d", st.Mode, st.Rdev)
			}
		}})
	}
	for _, c := range cases {
		for _, mode := range []WhiteoutMode{WhiteoutDelete, WhiteoutOverlay} {
			if mode == WhiteoutOverlay && (c.base != nil || strings.Contains(c.name, "Whiteout") || strings.Contains(c.name, "Opaque")) {
				continue // those need the layers below in the same tree; TestOverlayMatchesCopy covers overlay whiteouts
			}
			name := c.name
			if mode == WhiteoutOverlay {
				name += "/overlay"
			}
			t.Run(name, func(t *testing.T) {
				if mode == WhiteoutOverlay && os.Geteuid() != 0 {
					t.Skip("overlay whiteouts are device nodes: needs root")
				}
				s := newSandbox(t)
				if c.base != nil {
					if _, err := apply(t, s.root, WhiteoutDelete, c.base(s)...); err != nil {
						t.Fatalf("base: %v", err)
					}
				}
				before := s.outside(t)
				_, err := apply(t, s.root, mode, c.layer(s)...)
				if c.wantErr != nil {
					if !errors.Is(err, c.wantErr) {
						t.Fatalf("apply: %v, want %v", err, c.wantErr)
					}
				} else if err != nil {
					t.Fatalf("apply: %v", err)
				}
				if d := tu.DiffTrees(before, s.outside(t)); len(d) > 0 {
					t.Fatalf("the layer changed the host:\n%s", strings.Join(d, "\n"))
				}
				if c.check != nil && err == nil {
					c.check(t, s)
				}
			})
		}
	}
}

func TestMaxBytes(t *testing.T) {
	s := newSandbox(t)
	data := tu.MakeTar(t, tu.File("a", strings.Repeat("x", 600)), tu.File("b", strings.Repeat("y", 600)))
	_, err := Apply(context.Background(), s.root, bytes.NewReader(data), Options{MaxBytes: 1000, IgnoreOwner: true})
	var le *LimitError
	if !errors.As(err, &le) || !errdefs.IsInvalidArgument(err) {
		t.Fatalf("apply past MaxBytes: %v", err)
	}
	notExist(t, filepath.Join(s.root, "b"))
}

func TestTruncatedTar(t *testing.T) {
	s := newSandbox(t)
	data := tu.MakeTar(t, tu.File("a", strings.Repeat("x", 5000)))
	_, err := Apply(context.Background(), s.root, bytes.NewReader(data[:1500]), Options{IgnoreOwner: true})
	if err == nil {
		t.Fatal("a truncated layer applied without error")
	}
}

func TestGarbageIsNotATar(t *testing.T) {
	s := newSandbox(t)
	_, err := Apply(context.Background(), s.root, strings.NewReader(strings.Repeat("garbage!", 200)), Options{IgnoreOwner: true})
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("garbage: %v, want invalid argument", err)
	}
}
