package bench

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// OpStats is one operation's figures over one phase.
type OpStats struct {
	Name   string `json:"name"`
	Count  int    `json:"count"`  // successful requests
	Errors int    `json:"errors"` // failed requests (any error, wrong answers included)
	// WallSeconds is the phase's wall time: from the barrier's release until
	// the last client finished.
	WallSeconds float64 `json:"wall_seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"` // Count / WallSeconds
	// Latencies of successful requests, in milliseconds.
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// CPU seconds spent during the phase by the server process and by the
	// benchmark process (in-process mode: both in one, reported as server).
	ServerCPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	ClientCPUSeconds float64 `json:"client_cpu_seconds,omitempty"`
	// OtherCPUSeconds is the CPU time the rest of the machine (other
	// processes) used during the phase: on a shared machine, the noise.
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
	// ServerCPUMsPerOp is ServerCPUSeconds per successful request: what one
	// request costs the server, less sensitive to a busy machine than rates.
	ServerCPUMsPerOp float64 `json:"server_cpu_ms_per_op,omitempty"`
	// ServerRSSBytes is the server's resident set at the end of the phase.
	ServerRSSBytes int64 `json:"server_rss_bytes,omitempty"`
	// Etcd counts the store work done during the phase (in-process mode
	// and baselines only).
	Etcd *EtcdDelta `json:"etcd,omitempty"`
}

// recorder collects one client's latencies for one phase.
type recorder struct {
	lat    []time.Duration
	errors int
}

func (r *recorder) ok(d time.Duration) { r.lat = append(r.lat, d) }

// summarize merges the clients' recorders into one operation's figures.
func summarize(name string, recs []*recorder, wall time.Duration) OpStats {
	var all []time.Duration
	st := OpStats{Name: name, WallSeconds: wall.Seconds()}
	for _, r := range recs {
		all = append(all, r.lat...)
		st.Errors += r.errors
	}
	st.Count = len(all)
	if wall > 0 {
		st.OpsPerSec = float64(st.Count) / wall.Seconds()
	}
	if len(all) == 0 {
		return st
	}
	slices.Sort(all)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	st.P50Ms = ms(percentile(all, 50))
	st.P90Ms = ms(percentile(all, 90))
	st.P99Ms = ms(percentile(all, 99))
	st.MaxMs = ms(all[len(all)-1])
	return st
}

// percentile is the nearest-rank percentile of sorted values.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

// errorLog counts every failure and keeps the first few messages, which
// are also printed as they happen: the benchmark never hides a failure.
type errorLog struct {
	mu    sync.Mutex
	total int
	first []string
	print func(string)
}

const keptErrors = 10

func (e *errorLog) add(op string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.total++
	if len(e.first) < keptErrors {
		msg := fmt.Sprintf("%s: %v", op, err)
		e.first = append(e.first, msg)
		if e.print != nil {
			e.print("error: " + msg)
		}
	}
}
