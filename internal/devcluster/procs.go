package devcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startDetached starts binary with args in its own session, appending its
// output to logPath, and returns its identity. The process outlives the
// caller; a goroutine reaps it should it end while the caller still runs.
func startDetached(binary string, args, env []string, logPath string) (Proc, error) {
	return startDetachedIn("", binary, args, env, logPath)
}

// startDetachedIn is startDetached inside the named network namespace ns
// ("" for the caller's own): the child is forked from a thread switched
// into it, so it and its children live there.
func startDetachedIn(ns, binary string, args, env []string, logPath string) (Proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return Proc{}, fmt.Errorf("create log directory: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Proc{}, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	start := cmd.Start
	if ns != "" {
		start = func() error { return namedns.Do(ns, cmd.Start) }
	}
	if err := start(); err != nil {
		return Proc{}, fmt.Errorf("start %s: %w", binary, err)
	}
	// Read the start time before anything reaps the child: until then even
	// a child that has exited already stays readable as a zombie.
	st, err := procStartTime(cmd.Process.Pid)
	go func() { _ = cmd.Wait() }()
	if err != nil {
		return Proc{}, fmt.Errorf("started %s but cannot read it back: %w", binary, err)
	}
	return Proc{PID: cmd.Process.Pid, StartTime: st}, nil
}

// procStat returns a process's state letter and start time from
// /proc/<pid>/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("pid %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("pid %d: malformed stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22 overall
	return f[0][0], start, err
}

func procStartTime(pid int) (uint64, error) {
	_, st, err := procStat(pid)
	return st, err
}

// Running reports whether the process is still the one recorded and not a
// zombie.
func (p Proc) Running() bool {
	if p.PID <= 0 {
		return false
	}
	state, st, err := procStat(p.PID)
	return err == nil && st == p.StartTime && state != 'Z' && state != 'X'
}

// kill sends sig to the process if it is still the recorded one and waits
// up to wait for it to go; it returns whether it went.
func (p Proc) kill(sig syscall.Signal, wait time.Duration) bool {
	if !p.Running() {
		return true
	}
	if err := syscall.Kill(p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false
	}
	deadline := time.Now().Add(wait)
	for p.Running() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// stop ends a process: SIGTERM, then SIGKILL if it lingers.
func (p Proc) stop(grace time.Duration) error {
	if p.kill(syscall.SIGTERM, grace) || p.kill(syscall.SIGKILL, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("process %d does not end", p.PID)
}

// procsNaming returns the processes whose command line has an argument
// starting with dir+"/": the processes of a cluster whose state.json is
// lost (its server's --data-dir and its agents' --token-file are there, and
// its VMs' DHCP clients run the script there). Only vland and busybox
// udhcpc processes are considered.
func procsNaming(dir string) []Proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	needle := filepath.Clean(dir) + "/"
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) == 0 || !clusterBinary(filepath.Base(args[0])) {
			continue
		}
		for _, a := range args[1:] {
			if strings.HasPrefix(a, needle) {
				if st, err := procStartTime(pid); err == nil {
					out = append(out, Proc{PID: pid, StartTime: st})
				}
				break
			}
		}
	}
	return out
}

// clusterBinary reports whether a program name is one a cluster runs: vland
// itself, or udhcpc (possibly as a busybox applet) in its VMs.
func clusterBinary(base string) bool {
	return strings.HasPrefix(base, "vland") || base == "udhcpc" || base == "busybox"
}

// tail returns the last n bytes of a log, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, 0)
	}
	b := make([]byte, n)
	k, _ := f.Read(b)
	return strings.TrimSpace(string(b[:k]))
}

// permanent marks an error that poll must not retry.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// poll calls cond every interval until it returns true, or a permanent
// error, or ctx or the timeout ends. Other errors are retried; the last one
// is wrapped into the timeout error, which names what was awaited.
func poll(ctx context.Context, timeout, interval time.Duration, what string, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.error
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%s: not within %s: %w", what, timeout, last)
			}
			return fmt.Errorf("%s: not within %s", what, timeout)
		case <-t.C:
		}
	}
}
