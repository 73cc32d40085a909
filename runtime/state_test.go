package runtime

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestStateRoundTripAndStatus(t *testing.T) {
	r := &Runtime{Root: t.TempDir()}
	id := "c1"
	if err := os.Mkdir(r.dir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	start, _, err := procStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	st := &containerState{ID: id, Pid: os.Getpid(), PidStartTime: start, Bundle: "/b", Config: &specs.Spec{Annotations: map[string]string{"k": "v"}}}
	if err := r.save(st); err != nil {
		t.Fatal(err)
	}
	// A live process and no fifo: running.
	cs, err := r.State(id)
	if err != nil || cs.Status != Running || cs.Pid != os.Getpid() || cs.Annotations["k"] != "v" {
		t.Fatalf("State = %+v, %v", cs, err)
	}
	// The fifo present: created.
	if err := os.WriteFile(filepath.Join(r.dir(id), fifoName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if cs, _ := r.State(id); cs.Status != Created {
		t.Fatalf("with fifo: %s", cs.Status)
	}
	// Same pid, other start time (a reused pid): stopped, and no pid shown.
	st.PidStartTime++
	if err := r.save(st); err != nil {
		t.Fatal(err)
	}
	if cs, _ := r.State(id); cs.Status != Stopped {
		t.Fatalf("reused pid: %+v", cs)
	}
	if _, err := r.State("missing"); err == nil {
		t.Fatal("State of a missing container succeeded")
	}
	list, err := r.List()
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("List = %+v, %v", list, err)
	}
	// A corrupt state file is an error, not a crash.
	os.WriteFile(filepath.Join(r.dir(id), stateFile), []byte("{"), 0o600)
	if _, err := r.State(id); err == nil {
		t.Fatal("corrupt state accepted")
	}
}

func TestMergeResources(t *testing.T) {
	lim, shares, pids := int64(100), uint64(512), int64(10)
	cur := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim}}
	mergeResources(cur, &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares, Cpus: "0"}, Pids: &specs.LinuxPids{Limit: &pids}})
	if *cur.Memory.Limit != 100 || *cur.CPU.Shares != 512 || cur.CPU.Cpus != "0" || *cur.Pids.Limit != 10 {
		t.Fatalf("merged %+v", cur)
	}
	lim2 := int64(200)
	mergeResources(cur, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &lim2}})
	if *cur.Memory.Limit != 200 || *cur.CPU.Shares != 512 {
		t.Fatalf("second merge %+v", cur)
	}
}
