// Command berth-init is the init `berth run --init` puts at /dev/init:
// as the container's PID 1 it starts the command after "--", passes it
// every signal it gets, reaps every orphan that ends up with it, and exits
// with the command's code, which a program not written to be PID 1 does
// not do by itself.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "berth-init: usage: berth-init -- COMMAND [ARG...]")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The command gets the terminal as its foreground process group, as
	// it would without an init in front of it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: isTerminal(0), Ctty: 0}
	if err := cmd.Start(); err != nil {
		code := 127
		if os.IsPermission(err) {
			code = 126
		}
		fmt.Fprintln(os.Stderr, "berth-init:", err)
		os.Exit(code)
	}
	child := cmd.Process.Pid
	for {
		s := <-sigs
		if s != unix.SIGCHLD {
			if s == unix.SIGTTIN || s == unix.SIGTTOU {
				continue // job control signals of the init's own, not the command's
			}
			unix.Kill(-child, s.(unix.Signal))
			continue
		}
		// Reap everything that is ready: the command, and orphans.
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			if pid == child {
				switch {
				case ws.Exited():
					os.Exit(ws.ExitStatus())
				case ws.Signaled():
					os.Exit(128 + int(ws.Signal()))
				}
			}
		}
	}
}

func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}
