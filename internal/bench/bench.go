// Package bench measures a vland API server: it drives the Networking API
// from many concurrent clients, each authenticated as its own project,
// through phases separated by barriers (networks, subnets, ports, filtered
// lists, gets, deletes), and reports per-operation throughput and latency,
// the server's CPU time and peak memory, and, for comparison, what the
// same embedded etcd does alone under the same concurrency. It measures;
// it asserts nothing about times, but counts and shows every failure.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a run.
type Options struct {
	Clients           int // concurrent clients, one project each
	Ports             int // ports created in total
	NetworksPerClient int
	Lists             int // filtered lists per client, for each filter
	// PortQuota is the port quota set on every project: 0 picks
	// max(500, twice the client's ports), -1 is unlimited.
	PortQuota int
	// Server is the URL of a running server (loopback only); empty starts
	// one. AdminPassword is its admin password; ServerPID, when given, lets
	// the benchmark read that server's memory and CPU.
	Server        string
	AdminPassword string
	ServerPID     int
	// Vland is the binary to run as `vland server` (default: this one).
	Vland string
	// InProcess runs the server inside the benchmark process (for
	// profiling) instead of as a child process.
	InProcess bool
	// CPUProfile, when set, receives a CPU profile of this process during
	// ProfilePhase (a phase name or "all").
	CPUProfile   string
	ProfilePhase string
	// MemProfile, when set, receives a heap profile of this process taken
	// at the end of ProfilePhase (in-process: the server's heap with the
	// ports that exist then).
	MemProfile string
	// Baseline measures the bare embedded etcd before the API; API false
	// skips the API (baselines only).
	Baseline bool
	API      bool
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Progress receives progress lines and the first errors (nil: none).
	Progress io.Writer
}

// DefaultOptions are the sizes the benchmark is documented with.
func DefaultOptions() Options {
	return Options{Clients: 16, Ports: 10000, NetworksPerClient: 4, Lists: 50,
		ProfilePhase: phasePortCreate, Baseline: true, API: true, Timeout: 30 * time.Minute}
}

// Result is a run's figures.
type Result struct {
	Date              string    `json:"date"`
	Mode              string    `json:"mode"` // child, inprocess or external
	Server            string    `json:"server"`
	Clients           int       `json:"clients"`
	Ports             int       `json:"ports"`
	NetworksPerClient int       `json:"networks_per_client"`
	Lists             int       `json:"lists_per_client"`
	NumCPU            int       `json:"num_cpu"`
	GoVersion         string    `json:"go_version"`
	Phases            []OpStats `json:"phases"`
	Baselines         []OpStats `json:"baselines,omitempty"`
	// PeakRSSBytes is the server's VmHWM at the end of the run; PeakRSSPhase
	// is the phase during which it was last seen to grow and PeakRSSPorts
	// the number of ports that existed at the end of that phase.
	PeakRSSBytes int64  `json:"peak_rss_bytes"`
	PeakRSSPhase string `json:"peak_rss_phase,omitempty"`
	PeakRSSPorts int64  `json:"peak_rss_ports"`
	// The resident set at the end of that phase: anonymous memory (Go
	// heap, stacks) and file-backed pages (etcd's mmapped bbolt file, the
	// binary).
	PeakPhaseRSSAnonBytes int64 `json:"peak_phase_rss_anon_bytes"`
	PeakPhaseRSSFileBytes int64 `json:"peak_phase_rss_file_bytes"`
	// QuotaNote says how the projects' quotas were set.
	QuotaNote    string   `json:"quota_note,omitempty"`
	Errors       int      `json:"errors"`
	FirstErrors  []string `json:"first_errors"`
	TotalSeconds float64  `json:"total_seconds"`
	CPUProfile   string   `json:"cpu_profile,omitempty"`
}

// Phase names, in order.
const (
	phaseProjectCreate = "project-create"
	phaseUserCreate    = "user-create"
	phaseRoleGrant     = "role-grant"
	phaseQuotaSet      = "quota-set"
	phaseTokenIssue    = "token-issue"
	phaseNetworkCreate = "network-create"
	phaseSubnetCreate  = "subnet-create"
	phasePortCreate    = "port-create"
	phaseListByNetwork = "port-list network_id="
	phaseListByIP      = "port-list fixed_ips=ip_address="
	phasePortGet       = "port-get"
	phasePortDelete    = "port-delete"
	phaseSubnetDelete  = "subnet-delete"
	phaseNetworkDelete = "network-delete"
)

var phaseNames = []string{
	phaseProjectCreate, phaseUserCreate, phaseRoleGrant, phaseQuotaSet, phaseTokenIssue,
	phaseNetworkCreate, phaseSubnetCreate, phasePortCreate, phaseListByNetwork, phaseListByIP,
	phasePortGet, phasePortDelete, phaseSubnetDelete, phaseNetworkDelete,
}

// bench is one run in progress.
type bench struct {
	opts      Options
	ctx       context.Context // the run's; once done, failures are not counted
	t         *target
	c         *httpClient
	errs      *errorLog
	res       *Result
	workers   []*worker
	adminTok  string
	memberID  string
	runID     string
	livePorts atomic.Int64
	// noQuotaAPI is set when the server answers 404 to a quota update.
	noQuotaAPI atomic.Bool
	progMu     sync.Mutex
	profiling  bool
}

// worker is one client: its project, user, token and resources.
type worker struct {
	idx               int
	projectID, userID string
	password, token   string
	nets              []*netState
	ports             []*portRef // every port it created, in order
	failed            bool       // setup failed: later phases skip this client
}

type netState struct {
	id, name, subnetID, cidr string
	ports                    []*portRef
}

type portRef struct {
	id, ip string
}

func (b *bench) progress(format string, args ...any) {
	if b.opts.Progress == nil {
		return
	}
	b.progMu.Lock()
	defer b.progMu.Unlock()
	fmt.Fprintf(b.opts.Progress, "bench: "+format+"\n", args...)
}

// validate checks options and fills defaults.
func (o *Options) validate() error {
	if o.Clients < 1 || o.Clients > 256 {
		return errors.New("--clients must be between 1 and 256")
	}
	if o.NetworksPerClient < 1 {
		return errors.New("--networks must be at least 1")
	}
	if o.Clients*o.NetworksPerClient > maxNetworks {
		return fmt.Errorf("clients x networks must be at most %d (one /20 each in 10.0.0.0/8)", maxNetworks)
	}
	if o.Ports < 0 || o.Ports > 1_000_000 {
		return errors.New("--ports must be between 0 and 1000000")
	}
	perNet := (o.Ports + o.Clients*o.NetworksPerClient - 1) / (o.Clients * o.NetworksPerClient)
	if perNet > portsPerSubnet {
		return fmt.Errorf("%d ports per network do not fit a /20 (at most %d): add clients or networks", perNet, portsPerSubnet)
	}
	if o.Lists < 0 || o.Lists > 100_000 {
		return errors.New("--lists must be between 0 and 100000")
	}
	if o.PortQuota < -1 {
		return errors.New("--port-quota must be -1 (unlimited), 0 (automatic) or a limit")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.ProfilePhase == "" {
		o.ProfilePhase = phasePortCreate
	}
	if (o.CPUProfile != "" || o.MemProfile != "") && o.ProfilePhase != "all" && !slices.Contains(phaseNames, o.ProfilePhase) {
		return fmt.Errorf("--profile-phase %q is none of: all, %s", o.ProfilePhase, strings.Join(phaseNames, ", "))
	}
	return nil
}

const (
	maxNetworks    = 4096 // /20s in 10.0.0.0/8
	portsPerSubnet = 4000 // of a /20's 4093 usable addresses
)

// subnetCIDR is network g's /20: 10.(g/16).((g%16)*16).0/20.
func subnetCIDR(g int) string {
	return fmt.Sprintf("10.%d.%d.0/20", g/16, (g%16)*16)
}

// Run runs the benchmark. The server it started (if any) is stopped and its
// directory removed before Run returns, whatever happens. A run with failed
// requests still returns its Result, with the failures counted in it.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	b := &bench{opts: opts, ctx: ctx, runID: randomPassword()[:6]}
	b.errs = &errorLog{print: func(s string) { b.progress("%s", s) }}
	b.res = &Result{
		Date: time.Now().UTC().Format(time.RFC3339), Clients: opts.Clients, Ports: opts.Ports,
		NetworksPerClient: opts.NetworksPerClient, Lists: opts.Lists,
		NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(),
	}
	started := time.Now()
	defer func() { b.res.TotalSeconds = time.Since(started).Seconds() }()

	var profFile *os.File
	if opts.CPUProfile != "" {
		f, err := os.Create(opts.CPUProfile)
		if err != nil {
			return nil, err
		}
		profFile = f
		defer f.Close()
		b.res.CPUProfile = opts.CPUProfile
	}

	if opts.Baseline {
		bl, err := b.runBaselines(ctx)
		b.res.Baselines = bl
		if err != nil {
			return b.finish(), fmt.Errorf("baseline: %w", err)
		}
	}

	if !opts.API {
		return b.finish(), nil
	}
	var err error
	switch {
	case opts.Server != "":
		b.t, err = external(ctx, opts.Server, opts.AdminPassword, opts.Clients)
		if b.t != nil {
			b.t.pid = opts.ServerPID
		}
		b.res.Server = opts.Server
	case opts.InProcess:
		b.t, err = startInProcess(ctx, opts.Clients)
		b.res.Server = "in-process"
	default:
		b.t, err = startChild(ctx, opts.Vland, opts.Clients)
		b.res.Server = opts.Vland
		if b.res.Server == "" {
			b.res.Server, _ = os.Executable()
		}
	}
	if err != nil {
		return b.finish(), err
	}
	defer b.t.close()
	b.res.Mode = b.t.mode
	b.progress("server %s (%s, pid %d, etcd metrics %q)", b.t.url, b.t.mode, b.t.pid, b.t.etcdMetrics)
	b.c = newHTTPClient(b.t.url, opts.Clients)
	defer b.c.close()

	err = b.runAPI(ctx, profFile)
	if b.profiling {
		pprof.StopCPUProfile()
	}
	if b.t.mode == modeExternal {
		b.cleanupIdentity(context.WithoutCancel(ctx))
	}
	return b.finish(), err
}

func (b *bench) finish() *Result {
	b.errs.mu.Lock()
	defer b.errs.mu.Unlock()
	b.res.Errors = b.errs.total
	b.res.FirstErrors = append([]string{}, b.errs.first...)
	return b.res
}

// phase runs fn for every client that is still in the game, released at
// once by a barrier, and records the phase's figures.
func (b *bench) phase(ctx context.Context, prof *os.File, name string, fn func(ctx context.Context, w *worker, rec *recorder)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.progress("phase %s", name)
	if prof != nil && !b.profiling && (b.opts.ProfilePhase == name || b.opts.ProfilePhase == "all") {
		if err := pprof.StartCPUProfile(prof); err != nil {
			return err
		}
		b.profiling = true
	}
	etcd0 := b.t.readEtcd()
	srv0, cli0, all0 := procCPU(b.t.pid), selfCPU(), machineCPU()
	recs := make([]*recorder, len(b.workers))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, w := range b.workers {
		rec := &recorder{}
		recs[i] = rec
		if w.failed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(ctx, w, rec)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	if b.profiling && b.opts.ProfilePhase == name {
		pprof.StopCPUProfile()
		b.profiling = false
	}
	if b.opts.MemProfile != "" && (b.opts.ProfilePhase == name || b.opts.ProfilePhase == "all" && name == phaseNames[len(phaseNames)-1]) {
		if err := writeHeapProfile(b.opts.MemProfile); err != nil {
			return err
		}
	}
	st := summarize(name, recs, wall)
	srvCPU, cliCPU, allCPU := procCPU(b.t.pid)-srv0, selfCPU()-cli0, machineCPU()-all0
	switch b.t.mode {
	case modeChild:
		st.ServerCPUSeconds, st.ClientCPUSeconds = srvCPU, cliCPU
	case modeInProcess: // one process: server and client together
		st.ServerCPUSeconds = cliCPU
	default:
		st.ServerCPUSeconds, st.ClientCPUSeconds = srvCPU, cliCPU
	}
	if b.t.mode == modeInProcess || b.t.pid != 0 {
		st.OtherCPUSeconds = max(0, allCPU-st.ServerCPUSeconds-st.ClientCPUSeconds)
	}
	if st.Count > 0 {
		st.ServerCPUMsPerOp = st.ServerCPUSeconds * 1000 / float64(st.Count)
	}
	mem := procStatus(b.t.pid)
	st.ServerRSSBytes = mem.rss
	if mem.hwm > b.res.PeakRSSBytes {
		b.res.PeakRSSBytes, b.res.PeakRSSPhase, b.res.PeakRSSPorts = mem.hwm, name, b.livePorts.Load()
		b.res.PeakPhaseRSSAnonBytes, b.res.PeakPhaseRSSFileBytes = mem.anon, mem.file
	}
	if etcd0 != nil {
		st.Etcd = etcdDelta(etcd0, b.t.readEtcd(), st.Count)
	}
	b.res.Phases = append(b.res.Phases, st)
	b.progress("  %s: %d ok, %d errors, %.0f/s, p50 %.1f ms, p99 %.1f ms", name, st.Count, st.Errors, st.OpsPerSec, st.P50Ms, st.P99Ms)
	if err := b.t.childExited(); err != nil {
		return err
	}
	return ctx.Err()
}

// call runs one request and records its latency or its failure.
func (b *bench) call(w *worker, rec *recorder, op string, f func() (response, error)) bool {
	r, err := f()
	if err != nil {
		if b.ctx.Err() != nil {
			return false // interrupted or timed out: reported once by Run
		}
		rec.errors++
		b.errs.add(fmt.Sprintf("%s (client %d)", op, w.idx), err)
		return false
	}
	rec.ok(r.latency)
	return true
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
