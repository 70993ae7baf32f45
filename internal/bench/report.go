package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteJSON writes the result machine-readably.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Phase returns the figures of a phase or baseline by name.
func (r *Result) Phase(name string) (OpStats, bool) {
	for _, list := range [][]OpStats{r.Phases, r.Baselines} {
		for _, p := range list {
			if p.Name == name {
				return p, true
			}
		}
	}
	return OpStats{}, false
}

// WriteText writes the result as tables.
func (r *Result) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "vland bench api: %d clients, %d ports, %d networks per client (%d networks, one /20 subnet each), %d filtered lists per client per filter\n",
		r.Clients, r.Ports, r.NetworksPerClient, r.Clients*r.NetworksPerClient, r.Lists)
	fmt.Fprintf(w, "server: %s (%s); %d CPUs; %s; %s; %.0f s in all\n\n", r.Server, r.Mode, r.NumCPU, r.GoVersion, r.Date, r.TotalSeconds)
	table := func(title string, ops []OpStats, cpu bool) {
		if len(ops) == 0 {
			return
		}
		fmt.Fprintln(w, title)
		width := nameWidth(ops)
		fmt.Fprintf(w, "%-*s %7s %6s %8s %8s %8s %8s %8s %7s", width, "operation", "count", "errors", "ops/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "wall s")
		if cpu {
			fmt.Fprintf(w, " %12s %12s %11s %14s", "server cpu s", "client cpu s", "other cpu s", "srv cpu ms/op")
		}
		fmt.Fprintln(w)
		for _, p := range ops {
			fmt.Fprintf(w, "%-*s %7d %6d %8.0f %8.2f %8.2f %8.2f %8.2f %7.2f", width, p.Name, p.Count, p.Errors, p.OpsPerSec, p.P50Ms, p.P90Ms, p.P99Ms, p.MaxMs, p.WallSeconds)
			if cpu {
				fmt.Fprintf(w, " %12.2f %12s %11.2f %14.3f", p.ServerCPUSeconds, dashIfZero(p.ClientCPUSeconds), p.OtherCPUSeconds, p.ServerCPUMsPerOp)
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	table("API (ops/s = successful requests / phase wall time; latencies of successful requests):", r.Phases, true)
	table("baseline: the bare embedded etcd (same configuration and client as the server's store, same concurrency, in the benchmark process; its cpu is the member's and its client's):", r.Baselines, true)

	var withEtcd []OpStats
	for _, list := range [][]OpStats{r.Phases, r.Baselines} {
		for _, p := range list {
			if p.Etcd != nil && p.Count > 0 {
				withEtcd = append(withEtcd, p)
			}
		}
	}
	if len(withEtcd) > 0 {
		fmt.Fprintln(w, "etcd work per successful operation (read from the member's metrics):")
		width := nameWidth(withEtcd)
		fmt.Fprintf(w, "%-*s %9s %7s %13s %13s %13s %12s\n", width, "operation", "ranges/op", "txns/op", "WAL fsyncs/op", "ops per fsync", "mean fsync ms", "fsync busy %")
		for _, p := range withEtcd {
			e := p.Etcd
			perFsync := 0.0
			if e.WALFsyncs > 0 {
				perFsync = float64(p.Count) / e.WALFsyncs
			}
			busy := 0.0
			if p.WallSeconds > 0 {
				busy = 100 * e.WALFsyncSeconds / p.WallSeconds
			}
			fmt.Fprintf(w, "%-*s %9.2f %7.2f %13.3f %13.1f %13.2f %12.0f\n", width, p.Name, e.RangesPerOp, e.TxnsPerOp, e.FsyncsPerOp, perFsync, e.MeanFsyncMs, busy)
		}
		fmt.Fprintln(w)
	}

	if pc, ok := r.Phase(phasePortCreate); ok && pc.OpsPerSec > 0 {
		for _, name := range []string{baseTxn1, baseSeq} {
			if bl, ok := r.Phase(name); ok && bl.OpsPerSec > 0 {
				fmt.Fprintf(w, "port create is %.2fx the rate of %s (%.0f/s vs %.0f/s)\n", pc.OpsPerSec/bl.OpsPerSec, name, pc.OpsPerSec, bl.OpsPerSec)
			}
		}
	}
	if r.PeakRSSBytes > 0 {
		note := ""
		if r.Mode == modeInProcess {
			note = " (in-process: includes the benchmark client and baselines)"
		}
		fmt.Fprintf(w, "server peak RSS: %.1f MiB (VmHWM), last grew during %s, with %d ports existing at its end%s; then %.1f MiB anonymous, %.1f MiB file-backed\n",
			float64(r.PeakRSSBytes)/(1<<20), r.PeakRSSPhase, r.PeakRSSPorts, note,
			float64(r.PeakPhaseRSSAnonBytes)/(1<<20), float64(r.PeakPhaseRSSFileBytes)/(1<<20))
	} else {
		fmt.Fprintln(w, "server peak RSS: unknown (external server without --server-pid)")
	}
	if r.QuotaNote != "" {
		fmt.Fprintf(w, "quotas: %s\n", r.QuotaNote)
	}
	if r.CPUProfile != "" {
		fmt.Fprintf(w, "CPU profile: %s\n", r.CPUProfile)
	}
	fmt.Fprintf(w, "errors: %d\n", r.Errors)
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(e, "\n", "\n    "))
	}
	return nil
}

func nameWidth(ops []OpStats) int {
	n := len("operation")
	for _, p := range ops {
		n = max(n, len(p.Name))
	}
	return n
}

func dashIfZero(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}
