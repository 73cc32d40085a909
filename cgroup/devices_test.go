package cgroup

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func i64p(v int64) *int64 { return &v }

func TestDeviceRulesValidation(t *testing.T) {
	for _, tc := range []struct {
		in    specs.LinuxDeviceCgroup
		want  string // v1 rendering
		field string // non-empty: expect an error naming it
	}{
		{specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}, "a", ""},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(3), Access: "rw"}, "c 1:3 rw", ""},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64p(136), Access: "wr"}, "c 136:* rw", ""},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "b", Major: i64p(-1), Minor: i64p(-1)}, "b *:* rwm", ""},
		{specs.LinuxDeviceCgroup{Type: "x"}, "", "linux.resources.devices[0].type"},
		{specs.LinuxDeviceCgroup{Type: "c", Access: "rx"}, "", "linux.resources.devices[0].access"},
		{specs.LinuxDeviceCgroup{Type: "c", Major: i64p(-5)}, "", "linux.resources.devices[0].major"},
		{specs.LinuxDeviceCgroup{Type: "c", Minor: i64p(1 << 40)}, "", "linux.resources.devices[0].minor"},
	} {
		rules, err := deviceRules([]specs.LinuxDeviceCgroup{tc.in})
		if tc.field != "" {
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("%+v: error %v, want one naming %s", tc.in, err, tc.field)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc.in, err)
			continue
		}
		if got := rules[0].v1String(); got != tc.want {
			t.Errorf("%+v: v1 %q, want %q", tc.in, got, tc.want)
		}
	}
}

// runFilter interprets the subset of eBPF deviceFilter emits, so rule
// ordering can be checked without root or a kernel.
func runFilter(t *testing.T, insns asm.Instructions, typ, access, major, minor uint32) int64 {
	t.Helper()
	syms := map[string]int{}
	for i, ins := range insns {
		if s := ins.Symbol(); s != "" {
			syms[s] = i
		}
	}
	ctx := []uint32{access<<16 | typ, major, minor}
	var reg [11]uint64
	for pc, steps := 0, 0; pc < len(insns); steps++ {
		if steps > 10000 {
			t.Fatal("filter does not terminate")
		}
		ins := insns[pc]
		pc++
		op := ins.OpCode
		switch {
		case op.Class().IsLoad() && op.Mode() == asm.MemMode:
			reg[ins.Dst] = uint64(ctx[ins.Offset/4])
		case op.Class().IsALU():
			src := uint64(ins.Constant)
			if op.Source() == asm.RegSource {
				src = reg[ins.Src]
			}
			switch op.ALUOp() {
			case asm.And:
				reg[ins.Dst] &= src
			case asm.RSh:
				reg[ins.Dst] >>= src
			case asm.Mov:
				reg[ins.Dst] = src
			default:
				t.Fatalf("unexpected ALU op %v", ins)
			}
			if op.Class() == asm.ALUClass {
				reg[ins.Dst] &= 0xffffffff
			}
		case op.Class().IsJump():
			switch op.JumpOp() {
			case asm.Exit:
				return int64(reg[asm.R0])
			case asm.JNE, asm.JEq:
				if (reg[ins.Dst] != uint64(ins.Constant)) == (op.JumpOp() == asm.JNE) {
					target, ok := syms[ins.Reference()]
					if !ok {
						t.Fatalf("jump to unknown label %q", ins.Reference())
					}
					pc = target
				}
			default:
				t.Fatalf("unexpected jump %v", ins)
			}
		default:
			t.Fatalf("unexpected instruction %v", ins)
		}
	}
	t.Fatal("fell off the end of the filter")
	return 0
}

// emulateV1 is the reference: start deny-all and let the last matching
// rule decide, where an allow matches when it grants every access asked
// for and a deny when it names any of them.
func emulateV1(rules []deviceRule, typ byte, acc string, major, minor int64) bool {
	allowed := false
	for _, r := range rules {
		if r.typ != 'a' && r.typ != typ {
			continue
		}
		if r.major >= 0 && r.major != major || r.minor >= 0 && r.minor != minor {
			continue
		}
		all, any := true, false
		for _, c := range acc {
			if strings.ContainsRune(r.access, c) {
				any = true
			} else {
				all = false
			}
		}
		if r.allow && all || !r.allow && any {
			allowed = r.allow
		}
	}
	return allowed
}

func TestDeviceFilterOrdering(t *testing.T) {
	specsRules := [][]specs.LinuxDeviceCgroup{
		{}, // nothing: deny all
		{{Allow: false, Access: "rwm"}},
		{{Allow: true, Access: "rwm"}},
		{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: i64p(1), Minor: i64p(3), Access: "rwm"}},
		// A later deny overrides an earlier allow of the same device.
		{{Allow: true, Type: "c", Major: i64p(1), Access: "rwm"}, {Allow: false, Type: "c", Major: i64p(1), Minor: i64p(5), Access: "w"}},
		// A later allow overrides an earlier deny.
		{{Allow: false, Type: "c", Major: i64p(1), Minor: i64p(3)}, {Allow: true, Type: "c", Access: "r"}},
		{{Allow: true, Type: "b", Major: i64p(8), Access: "m"}, {Allow: true, Type: "c", Minor: i64p(0), Access: "rw"}},
	}
	probes := []struct {
		typ          byte
		acc          string
		major, minor int64
	}{}
	for _, typ := range []byte{'b', 'c'} {
		for _, acc := range []string{"r", "w", "m", "rw", "rwm"} {
			for _, mm := range [][2]int64{{1, 3}, {1, 5}, {8, 0}, {5, 1}} {
				probes = append(probes, struct {
					typ          byte
					acc          string
					major, minor int64
				}{typ, acc, mm[0], mm[1]})
			}
		}
	}
	for i, in := range specsRules {
		rules, err := deviceRules(in)
		if err != nil {
			t.Fatal(err)
		}
		insns := deviceFilter(rules)
		for _, p := range probes {
			typ := uint32(bpfDevBlock)
			if p.typ == 'c' {
				typ = bpfDevChar
			}
			var acc uint32
			for _, c := range p.acc {
				acc |= map[rune]uint32{'m': bpfAccMknod, 'r': bpfAccRead, 'w': bpfAccWrite}[c]
			}
			got := runFilter(t, insns, typ, acc, uint32(p.major), uint32(p.minor)) == 1
			want := emulateV1(rules, p.typ, p.acc, p.major, p.minor)
			if got != want {
				t.Errorf("rules %d %s: %c %d:%d %s: filter allows=%v, want %v",
					i, fmt.Sprint(in), p.typ, p.major, p.minor, p.acc, got, want)
			}
		}
	}
}
