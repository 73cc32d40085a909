package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/berthproject/berth/errdefs"
)

// checkErr fails t unless err is nil when want is "", or is an error of
// kind (errors.Is) whose message contains want.
func checkErr(t *testing.T, err error, want string, kind error) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
}

func TestParseVolume(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, in string
		want     Mount
		err      string
	}{
		{name: "anonymous", in: "/data", want: Mount{Type: "volume", Destination: "/data", RW: true, Anonymous: true}},
		{name: "anonymous cleaned", in: "/data/../srv/", want: Mount{Type: "volume", Destination: "/srv", RW: true, Anonymous: true}},
		{name: "named", in: "cache:/var/cache", want: Mount{Type: "volume", Name: "cache", Destination: "/var/cache", RW: true}},
		{name: "named ro", in: "cache:/var/cache:ro", want: Mount{Type: "volume", Name: "cache", Destination: "/var/cache", Mode: "ro"}},
		{name: "name with _ . -", in: "my_vol.1-x:/d", want: Mount{Type: "volume", Name: "my_vol.1-x", Destination: "/d", RW: true}},
		{name: "two-char name", in: "v1:/d", want: Mount{Type: "volume", Name: "v1", Destination: "/d", RW: true}},
		{name: "bind", in: dir + ":/src", want: Mount{Type: "bind", Source: dir, Destination: "/src", RW: true}},
		{name: "bind ro", in: dir + ":/src:ro", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "ro"}},
		{name: "bind rw", in: dir + ":/src:rw", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "rw", RW: true}},
		{name: "bind paths cleaned", in: dir + "/./:/src/", want: Mount{Type: "bind", Source: dir, Destination: "/src", RW: true}},
		{name: "ignored options kept in mode", in: dir + ":/src:rw,Z,rshared", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "rw,Z,rshared", RW: true}},
		{name: "ro among options", in: dir + ":/src:z,ro", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "z,ro"}},
		{name: "host root", in: "/:/host:ro", want: Mount{Type: "bind", Source: "/", Destination: "/host", Mode: "ro"}},

		{name: "relative destination", in: "cache:data", err: `the destination "data" must be an absolute path`},
		{name: "relative anonymous", in: "data", err: "must be an absolute path"},
		{name: "empty destination", in: "cache:", err: "must be an absolute path"},
		{name: "root destination", in: dir + ":/", err: "the destination cannot be /"},
		{name: "root anonymous", in: "/", err: "the destination cannot be /"},
		{name: "unknown option", in: dir + ":/src:rx", err: `unknown option "rx"`},
		{name: "unknown option after good", in: dir + ":/src:ro,exec", err: `unknown option "exec"`},
		{name: "too many parts", in: dir + ":/src:ro:extra", err: "want SOURCE:DESTINATION[:ro|rw]"},
		{name: "relative host path ./", in: "./data:/d", err: "a host path must be absolute"},
		{name: "relative host path .", in: ".:/d", err: "a host path must be absolute"},
		{name: "relative host path with slash", in: "data/sub:/d", err: "a host path must be absolute"},
		{name: "missing host path", in: dir + "/nope:/d", err: "the host path " + dir + "/nope does not exist"},
		{name: "one-char volume name", in: "a:/d", err: `"a" is neither an absolute host path nor a volume name`},
		{name: "empty source", in: ":/d", err: "is neither an absolute host path nor a volume name"},
		{name: "name starting with -", in: "-vol:/d", err: "is neither an absolute host path nor a volume name"},
		{name: "name starting with _", in: "_vol:/d", err: "is neither an absolute host path nor a volume name"},
		{name: "name with space", in: "my vol:/d", err: "is neither an absolute host path nor a volume name"},
		{name: "name with $", in: "vol$:/d", err: "is neither an absolute host path nor a volume name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVolume(tt.in)
			checkErr(t, err, tt.err, errdefs.ErrInvalidArgument)
			if err == nil && got != tt.want {
				t.Errorf("parseVolume(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

// A destination that only cleans to / must be refused as / itself is.
func TestParseVolumeRootAfterClean(t *testing.T) {
	dir := t.TempDir()
	for _, in := range []string{dir + ":/.", dir + "://", dir + ":/tmp/..", "/.."} {
		m, err := parseVolume(in)
		if err == nil {
			t.Errorf("parseVolume(%q) = %+v, want an error: the destination is /", in, m)
		}
	}
}

func TestParseMount(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, in string
		want     Mount
		err      string
	}{
		{name: "bind", in: "type=bind,source=" + dir + ",target=/src", want: Mount{Type: "bind", Source: dir, Destination: "/src", RW: true}},
		{name: "bind src dst aliases, cleaned", in: "type=bind,src=" + dir + "/.,dst=/src/", want: Mount{Type: "bind", Source: dir, Destination: "/src", RW: true}},
		{name: "bind destination alias", in: "type=bind,source=" + dir + ",destination=/src", want: Mount{Type: "bind", Source: dir, Destination: "/src", RW: true}},
		{name: "keys are case-insensitive", in: "Type=bind,Source=" + dir + ",Target=/src,ReadOnly", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "ro"}},
		{name: "readonly bare", in: "type=bind,source=" + dir + ",target=/src,readonly", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "ro"}},
		{name: "ro bare", in: "type=bind,source=" + dir + ",target=/src,ro", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "ro"}},
		{name: "readonly=true", in: "type=bind,source=" + dir + ",target=/src,readonly=true", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "ro"}},
		{name: "readonly=1", in: "type=bind,source=" + dir + ",target=/src,readonly=1", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "ro"}},
		{name: "readonly=false", in: "type=bind,source=" + dir + ",target=/src,readonly=false", want: Mount{Type: "bind", Source: dir, Destination: "/src", RW: true}},
		{name: "ro=0", in: "type=bind,source=" + dir + ",target=/src,ro=0", want: Mount{Type: "bind", Source: dir, Destination: "/src", RW: true}},
		{name: "ignored fields", in: "type=bind,source=" + dir + ",target=/src,bind-propagation=rshared,consistency=cached", want: Mount{Type: "bind", Source: dir, Destination: "/src", RW: true}},
		{name: "recursive readonly", in: "type=bind,source=" + dir + ",target=/src,readonly,bind-recursive=readonly", want: Mount{Type: "bind", Source: dir, Destination: "/src", Mode: "ro", RecursiveReadOnly: true}},
		{name: "bad bind-recursive", in: "type=bind,source=" + dir + ",target=/src,bind-recursive=sometimes", err: "bind-recursive=sometimes"},
		{name: "named volume", in: "type=volume,source=data,target=/data", want: Mount{Type: "volume", Name: "data", Destination: "/data", RW: true}},
		{name: "named volume ro nocopy", in: "type=volume,source=data,target=/data,readonly,volume-nocopy", want: Mount{Type: "volume", Name: "data", Destination: "/data", Mode: "ro"}},
		{name: "anonymous volume", in: "type=volume,target=/data", want: Mount{Type: "volume", Destination: "/data", RW: true, Anonymous: true}},
		{name: "tmpfs", in: "type=tmpfs,target=/run", want: Mount{Type: "tmpfs", Destination: "/run", RW: true}},
		{name: "tmpfs size and mode", in: "type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770", want: Mount{Type: "tmpfs", Destination: "/run", RW: true, Options: "size=64m,mode=1770"}},
		{name: "tmpfs readonly", in: "type=tmpfs,dst=/run,readonly", want: Mount{Type: "tmpfs", Destination: "/run", Mode: "ro"}},

		{name: "unknown field", in: "type=bind,source=" + dir + ",target=/src,foo=bar", err: `unknown field "foo"`},
		{name: "trailing comma", in: "type=tmpfs,target=/run,", err: `unknown field ""`},
		{name: "missing target", in: "type=tmpfs", err: "target must be an absolute path"},
		{name: "relative target", in: "type=volume,source=data,target=data", err: "target must be an absolute path"},
		{name: "no type is a volume, as in Docker", in: "source=data,target=/data", want: Mount{Type: "volume", Name: "data", Destination: "/data", RW: true}},
		{name: "unknown type", in: "type=npipe,target=/data", err: "type must be bind, volume or tmpfs"},
		{name: "bind without source", in: "type=bind,target=/src", err: "a bind source must be an absolute path"},
		{name: "bind relative source", in: "type=bind,source=src,target=/src", err: "a bind source must be an absolute path"},
		{name: "bind missing host path", in: "type=bind,source=" + dir + "/nope,target=/src", err: "the host path " + dir + "/nope does not exist"},
		{name: "volume one-char name", in: "type=volume,source=a,target=/d", err: `"a" is not a volume name`},
		{name: "volume path as name", in: "type=volume,source=/srv,target=/d", err: `"/srv" is not a volume name`},
		{name: "tmpfs with source", in: "type=tmpfs,source=x,target=/run", err: "a tmpfs has no source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMount(tt.in)
			checkErr(t, err, tt.err, errdefs.ErrInvalidArgument)
			if err == nil && got != tt.want {
				t.Errorf("parseMount(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseMountRootTarget(t *testing.T) {
	dir := t.TempDir()
	for _, in := range []string{"type=tmpfs,target=/", "type=bind,source=" + dir + ",target=/.", "type=volume,target=//"} {
		if m, err := parseMount(in); err == nil {
			t.Errorf("parseMount(%q) = %+v, want an error: the target is /", in, m)
		}
	}
	c := &Container{ID: newID()}
	if err := (&Engine{}).configure(context.Background(), c, CreateOptions{Image: "img", Tmpfs: []string{"/"}}); err == nil {
		t.Errorf("--tmpfs / accepted: %+v", c.Mounts)
	}
}

func TestParseUlimit(t *testing.T) {
	tests := []struct {
		in   string
		want Ulimit
		err  string
	}{
		{in: "nofile=1024:2048", want: Ulimit{Name: "nofile", Soft: 1024, Hard: 2048}},
		{in: "nofile=1024", want: Ulimit{Name: "nofile", Soft: 1024, Hard: 1024}},
		{in: "nproc=-1", want: Ulimit{Name: "nproc", Soft: -1, Hard: -1}},
		{in: "core=0:-1", want: Ulimit{Name: "core", Soft: 0, Hard: -1}},
		{in: "nofile", err: `--ulimit "nofile": invalid ulimit argument`},
		{in: "bogus=1", err: "invalid ulimit type: bogus"},
		{in: "nofile=2048:1024", err: "soft limit must be less than or equal to hard limit"},
		{in: "nofile=-1:1024", err: "soft limit must be less than or equal to hard limit"},
		{in: "nofile=lots", err: `--ulimit "nofile=lots"`},
		{in: "nofile=1:2:3", err: "too many limit value arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseUlimit(tt.in)
			checkErr(t, err, tt.err, errdefs.ErrInvalidArgument)
			if err == nil && got != tt.want {
				t.Errorf("parseUlimit(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestReadEnvFile(t *testing.T) {
	const set, empty, unset = "BERTH_TEST_ENVFILE_SET", "BERTH_TEST_ENVFILE_EMPTY", "BERTH_TEST_ENVFILE_UNSET"
	t.Setenv(set, "from host")
	t.Setenv(empty, "")
	t.Setenv(unset, "")
	os.Unsetenv(unset) // t.Setenv restores it after the test

	tests := []struct {
		name, content string
		want          []string
		err           string
	}{
		{name: "empty file", content: "", want: nil},
		{name: "comments and blank lines", content: "# a comment\n\n   \n\t# indented comment\nA=1\n", want: []string{"A=1"}},
		{name: "leading blanks trimmed", content: "  B=2\n\tC=3\n", want: []string{"B=2", "C=3"}},
		{name: "value kept verbatim", content: `D= x = y "q" # not a comment ` + "\n", want: []string{`D= x = y "q" # not a comment `}},
		{name: "empty value", content: "E=\n", want: []string{"E="}},
		{name: "no final newline", content: "F=6", want: []string{"F=6"}},
		{name: "order kept, duplicates kept", content: "G=1\nH=2\nG=3\n", want: []string{"G=1", "H=2", "G=3"}},
		{name: "bare key from environment", content: set + "\n", want: []string{set + "=from host"}},
		{name: "bare key empty in environment", content: empty + "\n", want: []string{empty + "="}},
		{name: "bare key not in environment dropped", content: "A=1\n" + unset + "\nB=2\n", want: []string{"A=1", "B=2"}},

		{name: "no key", content: "# ok\nA=1\n=value\n", err: `line 3: "=value" is not KEY=VALUE`},
		{name: "blank in key", content: "BAD KEY=1\n", err: `line 1: "BAD KEY=1" is not KEY=VALUE`},
		{name: "blank before =", content: "\n\nKEY =1\n", err: `line 3: "KEY =1" is not KEY=VALUE`},
		{name: "bare key with trailing blank", content: "A=1\nKEY \n", err: `line 2: "KEY " is not KEY=VALUE`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "env")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := ReadEnvFile(p)
			checkErr(t, err, tt.err, errdefs.ErrInvalidArgument)
			if err != nil {
				if !strings.Contains(err.Error(), "--env-file "+p+" ") {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ReadEnvFile = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadEnvFileMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.env")
	_, err := ReadEnvFile(p)
	checkErr(t, err, "--env-file "+p, errdefs.ErrInvalidArgument)
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("error %q should say the file is missing", err)
	}
}

func TestMergeEnv(t *testing.T) {
	tests := []struct {
		name             string
		base, over, want []string
	}{
		{name: "nothing", want: nil},
		{name: "image only", base: []string{"PATH=/bin", "A=1"}, want: []string{"PATH=/bin", "A=1"}},
		{name: "user only", over: []string{"A=1"}, want: []string{"A=1"}},
		{name: "override in place, new appended", base: []string{"PATH=/bin", "A=1", "Z=9"}, over: []string{"A=2", "B=3"}, want: []string{"PATH=/bin", "A=2", "Z=9", "B=3"}},
		{name: "empty value overrides", base: []string{"A=1"}, over: []string{"A="}, want: []string{"A="}},
		{name: "later user value wins", over: []string{"B=1", "B=2"}, want: []string{"B=2"}},
		{name: "every image duplicate replaced", base: []string{"A=1", "A=2"}, over: []string{"A=3"}, want: []string{"A=3", "A=3"}},
		{name: "key is not a prefix match", base: []string{"AB=1"}, over: []string{"A=2"}, want: []string{"AB=1", "A=2"}},
		{name: "value with =", base: []string{"OPTS=a=b"}, over: []string{"OPTS=c=d"}, want: []string{"OPTS=c=d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := slices.Clone(tt.base)
			got := mergeEnv(tt.base, tt.over)
			if !slices.Equal(got, tt.want) {
				t.Errorf("mergeEnv(%q, %q) = %q, want %q", tt.base, tt.over, got, tt.want)
			}
			if !slices.Equal(tt.base, base) {
				t.Errorf("mergeEnv changed the image's env: %q, was %q", tt.base, base)
			}
		})
	}
}

func TestCompact(t *testing.T) {
	tests := []struct{ in, want []string }{
		{in: nil, want: nil},
		{in: []string{""}, want: nil},
		{in: []string{"A=1", "", "B=2", ""}, want: []string{"A=1", "B=2"}},
		{in: []string{"", "", "C=3"}, want: []string{"C=3"}},
		{in: []string{"A=1", "B=2"}, want: []string{"A=1", "B=2"}},
	}
	for _, tt := range tests {
		got := compact(slices.Clone(tt.in))
		if !slices.Equal(got, tt.want) {
			t.Errorf("compact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// configure uses nothing of the Engine's, so a zero Engine checks the flags.
func TestConfigure(t *testing.T) {
	t.Setenv("BERTH_TEST_FROM_HOST", "host value")
	t.Setenv("BERTH_TEST_NOT_SET", "")
	os.Unsetenv("BERTH_TEST_NOT_SET")
	dir := t.TempDir()
	envFile := filepath.Join(dir, "app.env")
	if err := os.WriteFile(envFile, []byte("# app\nFOO=file\nFILEONLY=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badEnvFile := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(badEnvFile, []byte("BAD KEY=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seccompFile := filepath.Join(dir, "seccomp.json")
	if err := os.WriteFile(seccompFile, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	ten := 10

	tests := []struct {
		name  string
		o     CreateOptions
		err   string
		kind  error
		check func(t *testing.T, c *Container)
	}{
		{name: "defaults", o: CreateOptions{Image: "busybox"}, check: func(t *testing.T, c *Container) {
			h := c.HostConfig
			if c.Config.Hostname != c.ID[:12] || c.Config.Image != "busybox" {
				t.Errorf("config %+v", c.Config)
			}
			if h.NetworkMode != "none" || h.Runtime != "berth-runtime" || h.RestartPolicy.Name != "no" {
				t.Errorf("host config %+v", h)
			}
			if h.LogConfig.Type != "json-file" || h.LogConfig.Config == nil || len(h.LogConfig.Config) != 0 {
				t.Errorf("log config %+v", h.LogConfig)
			}
			if len(c.Mounts) != 0 || len(c.Config.Env) != 0 || h.Memory != 0 || h.NanoCpus != 0 {
				t.Errorf("unexpected settings: mounts %+v env %q", c.Mounts, c.Config.Env)
			}
		}},
		{name: "flags recorded", o: CreateOptions{
			Image: "img", Name: "web.1_a-b", Hostname: "box", User: "app:app", WorkingDir: "/srv", Cmd: []string{"sh"},
			Tty: true, Interactive: true, Attached: true, StopSignal: "SIGINT", StopTimeout: &ten,
			Network: "host", AutoRemove: true, Init: true, Privileged: true, ReadOnly: true,
			CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"MKNOD"}, GroupAdd: []string{"wheel"}, Runtime: "crun",
			Memory: "512m", CPUs: "1.5", CPUShares: 512, PidsLimit: 100,
		}, check: func(t *testing.T, c *Container) {
			cf, h := c.Config, c.HostConfig
			if cf.Hostname != "box" || cf.User != "app:app" || cf.WorkingDir != "/srv" || !slices.Equal(cf.Cmd, []string{"sh"}) ||
				!cf.Tty || !cf.OpenStdin || !cf.StdinOnce || cf.StopSignal != "SIGINT" || cf.StopTimeout == nil || *cf.StopTimeout != 10 {
				t.Errorf("config %+v", cf)
			}
			if h.NetworkMode != "host" || !h.AutoRemove || !h.Init || !h.Privileged || !h.ReadonlyRootfs || h.Runtime != "crun" ||
				!slices.Equal(h.CapAdd, []string{"NET_ADMIN"}) || !slices.Equal(h.CapDrop, []string{"MKNOD"}) || !slices.Equal(h.GroupAdd, []string{"wheel"}) {
				t.Errorf("host config %+v", h)
			}
			if h.Memory != 512<<20 || h.NanoCpus != 1_500_000_000 || h.CpuShares != 512 || h.PidsLimit != 100 {
				t.Errorf("resources: memory %d nanocpus %d shares %d pids %d", h.Memory, h.NanoCpus, h.CpuShares, h.PidsLimit)
			}
		}},
		{name: "stdin once only when attached", o: CreateOptions{Image: "img", Interactive: true}, check: func(t *testing.T, c *Container) {
			if !c.Config.OpenStdin || c.Config.StdinOnce {
				t.Errorf("OpenStdin %v StdinOnce %v", c.Config.OpenStdin, c.Config.StdinOnce)
			}
		}},
		{name: "env", o: CreateOptions{Image: "img", EnvFiles: []string{envFile}, Env: []string{"A=1", "BERTH_TEST_FROM_HOST", "BERTH_TEST_NOT_SET", "FOO=flag", "EMPTY="}}, check: func(t *testing.T, c *Container) {
			want := []string{"FOO=file", "FILEONLY=1", "A=1", "BERTH_TEST_FROM_HOST=host value", "FOO=flag", "EMPTY="}
			if !slices.Equal(c.Config.Env, want) {
				t.Errorf("env %q, want %q", c.Config.Env, want)
			}
			if got := mergeEnv([]string{"FOO=image"}, c.Config.Env); !slices.Contains(got, "FOO=flag") || slices.Contains(got, "FOO=file") {
				t.Errorf("merged env %q: -e must win over --env-file", got)
			}
		}},
		{name: "env without name", o: CreateOptions{Image: "img", Env: []string{"=x"}}, err: `invalid environment variable "=x"`, kind: errdefs.ErrInvalidArgument},
		{name: "bad env file", o: CreateOptions{Image: "img", EnvFiles: []string{badEnvFile}}, err: "line 1", kind: errdefs.ErrInvalidArgument},
		{name: "missing env file", o: CreateOptions{Image: "img", EnvFiles: []string{filepath.Join(dir, "nope")}}, err: "--env-file", kind: errdefs.ErrInvalidArgument},
		{name: "no image", o: CreateOptions{}, err: "no image given", kind: errdefs.ErrInvalidArgument},
		{name: "bad name", o: CreateOptions{Image: "img", Name: "-web"}, err: `invalid container name "-web"`, kind: errdefs.ErrInvalidArgument},
		{name: "name with slash", o: CreateOptions{Image: "img", Name: "a/b"}, err: "invalid container name", kind: errdefs.ErrInvalidArgument},
		{name: "restart no", o: CreateOptions{Image: "img", Restart: "no"}},
		{name: "restart always", o: CreateOptions{Image: "img", Restart: "always"}, err: "berth generate systemd", kind: errdefs.ErrNotImplemented},
		{name: "network none", o: CreateOptions{Image: "img", Network: "none"}, check: func(t *testing.T, c *Container) {
			if c.HostConfig.NetworkMode != "none" {
				t.Errorf("network %q", c.HostConfig.NetworkMode)
			}
		}},
		{name: "network bridge", o: CreateOptions{Image: "img", Network: "bridge"}, err: "bridge networking is not there yet", kind: errdefs.ErrNotImplemented},
		{name: "network unknown", o: CreateOptions{Image: "img", Network: "mynet"}, err: `--network "mynet"`, kind: errdefs.ErrInvalidArgument},
		{name: "relative workdir", o: CreateOptions{Image: "img", WorkingDir: "srv"}, err: `the working directory "srv" is not an absolute path`, kind: errdefs.ErrInvalidArgument},
		{name: "bad stop signal", o: CreateOptions{Image: "img", StopSignal: "SIGNOPE"}, err: `invalid signal "SIGNOPE"`, kind: errdefs.ErrInvalidArgument},
		{name: "bad memory", o: CreateOptions{Image: "img", Memory: "lots"}, err: `invalid memory value "lots"`, kind: errdefs.ErrInvalidArgument},
		{name: "zero memory", o: CreateOptions{Image: "img", Memory: "0"}, err: `invalid memory value "0"`, kind: errdefs.ErrInvalidArgument},
		{name: "memory below minimum", o: CreateOptions{Image: "img", Memory: "4m"}, err: "below the minimum of 6MB", kind: errdefs.ErrInvalidArgument},
		{name: "memory at minimum", o: CreateOptions{Image: "img", Memory: "6m"}, check: func(t *testing.T, c *Container) {
			if c.HostConfig.Memory != 6<<20 {
				t.Errorf("memory %d", c.HostConfig.Memory)
			}
		}},
		{name: "bad cpus", o: CreateOptions{Image: "img", CPUs: "two"}, err: `invalid --cpus value "two"`, kind: errdefs.ErrInvalidArgument},
		{name: "zero cpus", o: CreateOptions{Image: "img", CPUs: "0"}, err: "invalid --cpus value", kind: errdefs.ErrInvalidArgument},
		{name: "negative cpus", o: CreateOptions{Image: "img", CPUs: "-1"}, err: "invalid --cpus value", kind: errdefs.ErrInvalidArgument},
		{name: "infinite cpus", o: CreateOptions{Image: "img", CPUs: "Inf"}, err: "invalid --cpus value", kind: errdefs.ErrInvalidArgument},
		{name: "negative cpu shares", o: CreateOptions{Image: "img", CPUShares: -1}, err: "--cpu-shares -1", kind: errdefs.ErrInvalidArgument},
		{name: "ulimits", o: CreateOptions{Image: "img", Ulimits: []string{"nofile=1024:2048", "nproc=64"}}, check: func(t *testing.T, c *Container) {
			want := []Ulimit{{"nofile", 1024, 2048}, {"nproc", 64, 64}}
			if !slices.Equal(c.HostConfig.Ulimits, want) {
				t.Errorf("ulimits %+v, want %+v", c.HostConfig.Ulimits, want)
			}
		}},
		{name: "bad ulimit", o: CreateOptions{Image: "img", Ulimits: []string{"bogus=1"}}, err: `--ulimit "bogus=1"`, kind: errdefs.ErrInvalidArgument},
		{name: "security opts", o: CreateOptions{Image: "img", SecurityOpt: []string{"seccomp=unconfined", "seccomp=" + seccompFile, "no-new-privileges", "no-new-privileges=true", "no-new-privileges:true", "no-new-privileges=false"}}, check: func(t *testing.T, c *Container) {
			if len(c.HostConfig.SecurityOpt) != 6 {
				t.Errorf("security opts %q", c.HostConfig.SecurityOpt)
			}
		}},
		{name: "missing seccomp file", o: CreateOptions{Image: "img", SecurityOpt: []string{"seccomp=" + filepath.Join(dir, "nope.json")}}, err: "--security-opt seccomp=", kind: errdefs.ErrInvalidArgument},
		{name: "empty seccomp", o: CreateOptions{Image: "img", SecurityOpt: []string{"seccomp="}}, err: `--security-opt "seccomp="`, kind: errdefs.ErrInvalidArgument},
		{name: "selinux label", o: CreateOptions{Image: "img", SecurityOpt: []string{"label=disable"}}, err: "SELinux or AppArmor", kind: errdefs.ErrNotImplemented},
		{name: "apparmor", o: CreateOptions{Image: "img", SecurityOpt: []string{"apparmor=unconfined"}}, err: "SELinux or AppArmor", kind: errdefs.ErrNotImplemented},
		{name: "unknown security opt", o: CreateOptions{Image: "img", SecurityOpt: []string{"systempaths=unconfined"}}, err: `--security-opt "systempaths=unconfined"`, kind: errdefs.ErrInvalidArgument},
		{name: "log driver none", o: CreateOptions{Image: "img", LogDriver: "none"}, check: func(t *testing.T, c *Container) {
			if c.HostConfig.LogConfig.Type != "none" {
				t.Errorf("log config %+v", c.HostConfig.LogConfig)
			}
		}},
		{name: "log driver k8s-file", o: CreateOptions{Image: "img", LogDriver: "k8s-file"}, check: func(t *testing.T, c *Container) {
			if c.HostConfig.LogConfig.Type != "json-file" {
				t.Errorf("log config %+v", c.HostConfig.LogConfig)
			}
		}},
		{name: "log driver syslog", o: CreateOptions{Image: "img", LogDriver: "syslog"}, err: `--log-driver "syslog"`, kind: errdefs.ErrInvalidArgument},
		{name: "log opts", o: CreateOptions{Image: "img", LogOpts: []string{"max-size=10m", "max-file=3"}}, check: func(t *testing.T, c *Container) {
			if cf := c.HostConfig.LogConfig.Config; cf["max-size"] != "10m" || cf["max-file"] != "3" || len(cf) != 2 {
				t.Errorf("log config %+v", cf)
			}
			if LogFiles(c) != 3 {
				t.Errorf("LogFiles = %d, want 3", LogFiles(c))
			}
		}},
		{name: "log opt without =", o: CreateOptions{Image: "img", LogOpts: []string{"max-size"}}, err: `--log-opt "max-size": want KEY=VALUE`, kind: errdefs.ErrInvalidArgument},
		{name: "bad max-size", o: CreateOptions{Image: "img", LogOpts: []string{"max-size=big"}}, err: "--log-opt max-size=big", kind: errdefs.ErrInvalidArgument},
		{name: "bad max-file", o: CreateOptions{Image: "img", LogOpts: []string{"max-file=0"}}, err: "--log-opt max-file=0", kind: errdefs.ErrInvalidArgument},
		{name: "unknown log opt", o: CreateOptions{Image: "img", LogOpts: []string{"mode=non-blocking"}}, err: `--log-opt "mode"`, kind: errdefs.ErrInvalidArgument},
		{name: "mounts", o: CreateOptions{Image: "img", Volumes: []string{"/anon", "data:/data:ro", dir + ":/src"}, Mounts: []string{"type=tmpfs,target=/scratch"}, Tmpfs: []string{"/run:size=64m,mode=1777", "/tmp/"}}, check: func(t *testing.T, c *Container) {
			want := []Mount{
				{Type: "volume", Destination: "/anon", RW: true, Anonymous: true},
				{Type: "volume", Name: "data", Destination: "/data", Mode: "ro"},
				{Type: "bind", Source: dir, Destination: "/src", RW: true},
				{Type: "tmpfs", Destination: "/scratch", RW: true},
				{Type: "tmpfs", Destination: "/run", RW: true, Options: "size=64m,mode=1777"},
				{Type: "tmpfs", Destination: "/tmp", RW: true},
			}
			if !slices.Equal(c.Mounts, want) {
				t.Errorf("mounts\n got %+v\nwant %+v", c.Mounts, want)
			}
			if !slices.Equal(c.HostConfig.Binds, []string{"/anon", "data:/data:ro", dir + ":/src"}) {
				t.Errorf("binds %q", c.HostConfig.Binds)
			}
			if tm := c.HostConfig.Tmpfs; len(tm) != 2 || tm["/run"] != "size=64m,mode=1777" || tm["/tmp"] != "" {
				t.Errorf("tmpfs %q", tm)
			}
		}},
		{name: "bad volume", o: CreateOptions{Image: "img", Volumes: []string{"rel"}}, err: "invalid volume specification", kind: errdefs.ErrInvalidArgument},
		{name: "bad mount", o: CreateOptions{Image: "img", Mounts: []string{"type=tmpfs"}}, err: "--mount", kind: errdefs.ErrInvalidArgument},
		{name: "relative tmpfs", o: CreateOptions{Image: "img", Tmpfs: []string{"run"}}, err: `--tmpfs "run": the destination must be an absolute path`, kind: errdefs.ErrInvalidArgument},
		{name: "duplicate mount point", o: CreateOptions{Image: "img", Volumes: []string{"/data"}, Tmpfs: []string{"/data/"}}, err: "duplicate mount point /data", kind: errdefs.ErrInvalidArgument},
		{name: "duplicate volume", o: CreateOptions{Image: "img", Volumes: []string{"a1:/d", dir + ":/d/"}}, err: "duplicate mount point /d", kind: errdefs.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Container{ID: newID()}
			err := (&Engine{}).configure(context.Background(), c, tt.o)
			checkErr(t, err, tt.err, tt.kind)
			if err == nil && tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestConfigureEnvFilesInOrder(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.env"), filepath.Join(dir, "b.env")
	os.WriteFile(a, []byte("FOO=a\nONLY_A=1\n"), 0o600)
	os.WriteFile(b, []byte("FOO=b\nONLY_B=1\n"), 0o600)
	c := &Container{ID: newID()}
	if err := (&Engine{}).configure(context.Background(), c, CreateOptions{Image: "img", EnvFiles: []string{a, b}}); err != nil {
		t.Fatal(err)
	}
	got := mergeEnv(nil, c.Config.Env)
	want := []string{"FOO=b", "ONLY_A=1", "ONLY_B=1"}
	if !slices.Equal(got, want) {
		t.Errorf("env %q, want %q (the later --env-file wins)", got, want)
	}
}

func TestConfigureCPUsNaN(t *testing.T) {
	for _, v := range []string{"NaN", "nan", "1e300"} {
		c := &Container{ID: newID()}
		err := (&Engine{}).configure(context.Background(), c, CreateOptions{Image: "img", CPUs: v})
		if !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("--cpus %s: err %v, NanoCpus %d; want an invalid argument", v, err, c.HostConfig.NanoCpus)
		}
	}
}
