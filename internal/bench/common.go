package bench

// Helpers the router, security-group, metadata, DHCP and data-plane
// benchmarks share.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vland/vland/internal/namedns"
)

// Machine is where and when a benchmark ran.
type Machine struct {
	Date      string `json:"date"`
	NumCPU    int    `json:"num_cpu"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
}

// thisMachine describes this machine, at time at.
func thisMachine(at time.Time) Machine {
	return Machine{Date: at.UTC().Format(time.RFC3339), NumCPU: runtime.NumCPU(), Kernel: kernelRelease(), GoVersion: runtime.Version()}
}

// progressLog writes a benchmark's progress lines to w (none when w is nil),
// one at a time since phases report from several goroutines.
type progressLog struct {
	w     io.Writer
	label string // "bench router"
	mu    sync.Mutex
}

// progress prints one line, prefixed with the label.
func (p *progressLog) progress(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, p.label+": "+format+"\n", args...)
}

// benchLogger logs at level and above to w, or nowhere when w is nil.
func benchLogger(w io.Writer, level slog.Level) *slog.Logger {
	if w == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// leftByDeadRun reports whether name belongs to an earlier benchmark
// process that is gone: re matches it with that process's pid as its first
// group, and the pid is neither this process nor a live one.
func leftByDeadRun(re *regexp.Regexp, name string) bool {
	m := re.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	pid, _ := strconv.Atoi(m[1])
	return pid != os.Getpid() && syscall.Kill(pid, 0) != nil
}

// sweepNamespaces removes the named namespaces starting with prefix that
// earlier benchmark processes, now gone, left (see leftByDeadRun).
func sweepNamespaces(prefix string, re *regexp.Regexp, progress func(string, ...any)) {
	names, _ := namedns.WithPrefix(prefix)
	for _, n := range names {
		if !leftByDeadRun(re, n) {
			continue
		}
		progress("removing namespace %s left by an earlier run", n)
		_ = namedns.Delete(n)
	}
}

// deleteNamespaces deletes every named namespace starting with prefix.
func deleteNamespaces(prefix string) error {
	names, err := namedns.WithPrefix(prefix)
	errs := []error{err}
	for _, n := range names {
		errs = append(errs, namedns.Delete(n))
	}
	return errors.Join(errs...)
}

// runError is a finished run's error: the context's when it ended early,
// else the failed phases' messages joined.
func runError(ctx context.Context, errs []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// runIperf runs an iperf3 server (one client, then exit) in serverNS and a
// client in clientNS for the given seconds; both are killed with ctx.
func runIperf(ctx context.Context, iperf, clientNS, serverNS string, dst netip.Addr, seconds int) (iperfOut, error) {
	return runIperfVia(ctx, iperf, clientNS, serverNS, dst, dst, seconds)
}

// runIperfVia runs an iperf3 server bound to bind in serverNS (one client,
// then exit) and a client in clientNS connecting to dst, which NAT may
// turn into bind.
func runIperfVia(ctx context.Context, iperf, clientNS, serverNS string, bind, dst netip.Addr, seconds int) (iperfOut, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+60*time.Second)
	defer cancel()
	const port = "5201"
	var srvOut bytes.Buffer
	srv := exec.CommandContext(ctx, iperf, "-s", "-1", "-p", port, "-B", bind.String())
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := namedns.Do(serverNS, srv.Start); err != nil {
		return iperfOut{}, fmt.Errorf("start iperf3 server: %w", err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	defer func() {
		select {
		case <-srvDone:
		case <-time.After(5 * time.Second):
			_ = srv.Process.Kill()
			<-srvDone
		}
	}()
	// The server needs a moment to listen: retry while it refuses.
	for attempt := 0; ; attempt++ {
		var out bytes.Buffer
		cl := exec.CommandContext(ctx, iperf, "-c", dst.String(), "-p", port, "-t", strconv.Itoa(seconds), "-J", "--connect-timeout", "2000")
		cl.Stdout = &out
		busy0, t0 := machineCPU(), time.Now()
		if err := namedns.Do(clientNS, cl.Start); err != nil {
			return iperfOut{}, fmt.Errorf("start iperf3 client: %w", err)
		}
		werr := cl.Wait()
		res, err := parseIperf(out.Bytes())
		if err == nil {
			res.machineBusy = (machineCPU() - busy0) / time.Since(t0).Seconds()
			return res, nil
		}
		if ctx.Err() != nil {
			return iperfOut{}, ctx.Err()
		}
		if attempt < 50 && strings.Contains(err.Error(), "unable to connect") {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		return iperfOut{}, fmt.Errorf("%w (exit: %v; server: %s)", err, werr, strings.TrimSpace(srvOut.String()))
	}
}
