package cgroup

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// deviceRule is a validated linux.resources.devices entry. Major and minor
// are -1 for "any".
type deviceRule struct {
	allow  bool
	typ    byte // 'a', 'b' or 'c'
	major  int64
	minor  int64
	access string // non-empty subset of "rwm", in that order
}

// deviceRules validates the spec's list. An empty type means every type
// and an empty access means every access, as runc reads them.
func deviceRules(in []specs.LinuxDeviceCgroup) ([]deviceRule, error) {
	out := make([]deviceRule, 0, len(in))
	for i, d := range in {
		field := fmt.Sprintf("linux.resources.devices[%d]", i)
		r := deviceRule{allow: d.Allow, major: -1, minor: -1}
		switch d.Type {
		case "", "a":
			r.typ = 'a'
		case "b", "c":
			r.typ = d.Type[0]
		default:
			return nil, fmt.Errorf("%s.type: %q is not one of a, b, c", field, d.Type)
		}
		for _, n := range []struct {
			name string
			v    *int64
			dst  *int64
		}{{"major", d.Major, &r.major}, {"minor", d.Minor, &r.minor}} {
			if n.v == nil || *n.v == -1 {
				continue
			}
			// The eBPF program compares against 32-bit immediates.
			if *n.v < 0 || *n.v > math.MaxInt32 {
				return nil, fmt.Errorf("%s.%s: %d is out of range", field, n.name, *n.v)
			}
			*n.dst = *n.v
		}
		acc := d.Access
		if acc == "" {
			acc = "rwm"
		}
		for _, c := range acc {
			if !strings.ContainsRune("rwm", c) {
				return nil, fmt.Errorf("%s.access: %q may only hold r, w and m", field, d.Access)
			}
		}
		for _, c := range "rwm" {
			if strings.ContainsRune(acc, c) {
				r.access += string(c)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// v1String renders a rule for devices.allow / devices.deny.
func (r deviceRule) v1String() string {
	if r.typ == 'a' {
		// The kernel reads a lone "a" as "every device": it resets the
		// cgroup to allow-all (allow) or deny-all (deny).
		return "a"
	}
	num := func(v int64) string {
		if v < 0 {
			return "*"
		}
		return fmt.Sprint(v)
	}
	return fmt.Sprintf("%c %s:%s %s", r.typ, num(r.major), num(r.minor), r.access)
}

// setDevicesV1 starts from deny-all and replays the rules in order, so a
// later rule overrides an earlier one as the spec says.
func setDevicesV1(dir string, rules []deviceRule) error {
	if err := writeFile(dir, "devices.deny", "a"); err != nil {
		return err
	}
	for _, r := range rules {
		file := "devices.deny"
		if r.allow {
			file = "devices.allow"
		}
		if err := writeFile(dir, file, r.v1String()); err != nil {
			return err
		}
	}
	return nil
}

// Values from include/uapi/linux/bpf.h for BPF_PROG_TYPE_CGROUP_DEVICE,
// whose context is struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
// u32 minor; } with access_type = access<<16 | type.
const (
	bpfDevBlock = 1
	bpfDevChar  = 2
	bpfAccMknod = 1
	bpfAccRead  = 2
	bpfAccWrite = 4
)

// deviceFilter builds the cgroup device program for rules: deny by default,
// and the last matching rule decides, so the rules are tested last first.
// Unlike a v1 replay, a narrow deny after a wide allow does carve the device
// out (v1 only removes exceptions that match the deny exactly).
func deviceFilter(rules []deviceRule) asm.Instructions {
	const (
		rType   = asm.R2
		rAccess = asm.R3
		rMajor  = asm.R4
		rMinor  = asm.R5
		rTmp    = asm.R1 // the context pointer is not needed after the loads
	)
	insns := asm.Instructions{
		asm.LoadMem(rType, asm.R1, 0, asm.Word),
		asm.And.Imm32(rType, 0xffff),
		asm.LoadMem(rAccess, asm.R1, 0, asm.Word),
		asm.RSh.Imm32(rAccess, 16),
		asm.LoadMem(rMajor, asm.R1, 4, asm.Word),
		asm.LoadMem(rMinor, asm.R1, 8, asm.Word),
	}
	label := func(i int) string {
		if i < 0 {
			return "deny_by_default"
		}
		return fmt.Sprintf("rule_%d", i)
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		next := label(i - 1)
		var block asm.Instructions
		switch r.typ {
		case 'b':
			block = append(block, asm.JNE.Imm(rType, bpfDevBlock, next))
		case 'c':
			block = append(block, asm.JNE.Imm(rType, bpfDevChar, next))
		}
		var acc int32
		for _, c := range r.access {
			switch c {
			case 'm':
				acc |= bpfAccMknod
			case 'r':
				acc |= bpfAccRead
			case 'w':
				acc |= bpfAccWrite
			}
		}
		if acc != bpfAccMknod|bpfAccRead|bpfAccWrite {
			block = append(block, asm.Mov.Reg32(rTmp, rAccess))
			if r.allow {
				// An allow covers a request only if it grants every
				// access asked for (open O_RDWR asks for r and w).
				block = append(block,
					asm.And.Imm32(rTmp, ^acc&7),
					asm.JNE.Imm(rTmp, 0, next))
			} else {
				// A deny refuses a request asking for any access it
				// names.
				block = append(block,
					asm.And.Imm32(rTmp, acc),
					asm.JEq.Imm(rTmp, 0, next))
			}
		}
		if r.major >= 0 {
			block = append(block, asm.JNE.Imm(rMajor, int32(r.major), next))
		}
		if r.minor >= 0 {
			block = append(block, asm.JNE.Imm(rMinor, int32(r.minor), next))
		}
		verdict := int32(0)
		if r.allow {
			verdict = 1
		}
		unconditional := len(block) == 0
		block = append(block, asm.Mov.Imm(asm.R0, verdict), asm.Return())
		block[0] = block[0].WithSymbol(label(i))
		insns = append(insns, block...)
		if unconditional {
			// Nothing after a catch-all is reachable, and the
			// verifier rejects unreachable instructions.
			return insns
		}
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, 0).WithSymbol(label(-1)),
		asm.Return())
	return insns
}

// setDevicesV2 loads the program for rules and attaches it to the cgroup2
// directory dir with BPF_F_ALLOW_MULTI, then detaches whatever device
// programs were there before, so an update replaces the policy instead of
// stacking on top of it (stacked programs must all allow).
func setDevicesV2(dir string, rules []deviceRule) error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.CGroupDevice,
		Instructions: deviceFilter(rules),
		License:      "Apache",
	})
	if err != nil {
		return fmt.Errorf("load device program: %w", err)
	}
	defer prog.Close()
	cg, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	defer cg.Close()
	fd := int(cg.Fd())

	old, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return fmt.Errorf("query device programs of %s: %w", dir, err)
	}
	attach := func() error {
		return link.RawAttachProgram(link.RawAttachProgramOptions{
			Target: fd, Program: prog, Attach: ebpf.AttachCGroupDevice, Flags: unix.BPF_F_ALLOW_MULTI,
		})
	}
	detached := map[ebpf.ProgramID]bool{}
	if err := attach(); err != nil {
		// A program attached without ALLOW_MULTI (by another manager)
		// forbids adding ours next to it: take it off first.
		if len(old.Programs) == 0 {
			return fmt.Errorf("attach device program to %s: %w", dir, err)
		}
		for _, p := range old.Programs {
			if derr := detachDeviceProgram(fd, p.ID); derr != nil {
				return errors.Join(fmt.Errorf("attach device program to %s: %w", dir, err), derr)
			}
			detached[p.ID] = true
		}
		if err := attach(); err != nil {
			return fmt.Errorf("attach device program to %s: %w", dir, err)
		}
	}
	for _, p := range old.Programs {
		if detached[p.ID] {
			continue
		}
		if err := detachDeviceProgram(fd, p.ID); err != nil {
			return err
		}
	}
	return nil
}

func detachDeviceProgram(cgFD int, id ebpf.ProgramID) error {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("open previous device program %d: %w", id, err)
	}
	defer p.Close()
	err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: cgFD, Program: p, Attach: ebpf.AttachCGroupDevice})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("detach previous device program %d: %w", id, err)
	}
	return nil
}
