// Command berth-monitor is the per-container monitor (see package
// container/monitor): `berth-monitor CONFIG` with a sync pipe as fd 3.
// The engine starts it; people do not.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/berthproject/berth/container/monitor"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: berth-monitor CONFIG (started by berth, not by hand)")
		os.Exit(2)
	}
	// An idle monitor should cost little: one P (it copies a few streams
	// and mostly sleeps; one P means one GC worker and one mcache), and
	// garbage collected early.
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(20)
	runtime.MemProfileRate = 0 // no profile buckets for a profile nobody reads
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-monitor:", err)
		os.Exit(1)
	}
	var cfg monitor.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "berth-monitor:", err)
		os.Exit(1)
	}
	// The sync pipe came in without close-on-exec: it must not leak into
	// the runtime and the container.
	syscall.CloseOnExec(3)
	os.Exit(monitor.Run(cfg, os.NewFile(3, "sync")))
}
