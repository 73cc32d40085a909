package seccomp

import (
	"github.com/berthproject/berth/seccomp/profile"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Default returns berth's default profile (Docker's) resolved for caps and
// this host; see profile.Default.
func Default(caps []string) *specs.LinuxSeccomp { return profile.Default(caps) }
