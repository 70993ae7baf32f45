package bench

// `vland bench dataplane` measures the host agent and the L2 data plane on
// a dev cluster it builds itself (devcluster.Up under a unique name, removed
// with devcluster.Down at the end, on error and on interrupt):
//
//  1. port bring-up: VMs created one after another, each timed from the
//     API port create (and bind) to the port ACTIVE and to the first ping
//     from a probe VM on the same network answered;
//  2. agent cold sync: ports bound to one host with their taps present and
//     no bridge or vxlan device, the agent started fresh, timed until every
//     tap is enslaved and every port ACTIVE; then a warm restart;
//  3. TCP throughput (iperf3, one stream) between VMs on different hosts
//     over VXLAN, against a plain veth pair between two fresh namespaces
//     measured in the same run.
//
// Everything happens inside namespaces named with the cluster's prefix.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vland/vland/internal/devcluster"
)

// Phases of the data-plane benchmark.
const (
	PhaseBringUp    = "bringup"
	PhaseSync       = "sync"
	PhaseThroughput = "throughput"
)

// DataplanePhases are all phases, in the order they run.
var DataplanePhases = []string{PhaseBringUp, PhaseThroughput, PhaseSync}

// DataplaneOptions configure `vland bench dataplane`.
type DataplaneOptions struct {
	VMs          int // bring-up: VMs created one after another
	Hosts        int // compute hosts the VMs and the throughput VMs use (the sync host is one more)
	Ports        int // cold sync: ports bound to the sync host
	SyncNetworks int // networks those ports are spread over
	IperfSeconds int // length of each iperf3 run
	IperfRepeats int // runs of each path
	// Runs repeats the whole benchmark, each time on a fresh cluster; the
	// report gives the median of the runs and each run's value.
	Runs   int
	Phases []string
	// Vland is the binary the cluster runs as server and agents (default:
	// this executable). Dir holds the clusters' directories.
	Vland string
	Dir   string
	// Logs, when set, receives a copy of each cluster's logs (server and
	// agents) before the cluster is removed: <Logs>/<cluster>/.
	Logs    string
	Timeout time.Duration // bound on the whole benchmark
	// Progress receives progress lines (nil: none).
	Progress io.Writer
}

// DefaultDataplaneOptions are the sizes the benchmark is documented with.
func DefaultDataplaneOptions() DataplaneOptions {
	return DataplaneOptions{VMs: 100, Hosts: 2, Ports: 1000, SyncNetworks: 10, IperfSeconds: 10, IperfRepeats: 3,
		Runs: 1, Phases: slices.Clone(DataplanePhases), Dir: filepath.Join(os.TempDir(), "vland-bench-dataplane"),
		Timeout: 60 * time.Minute}
}

// Limits of the options: one /20 subnet per network.
const maxPortsPerNet = 4000

func (o *DataplaneOptions) validate() error {
	switch {
	case o.VMs < 1 || o.VMs > maxPortsPerNet:
		return fmt.Errorf("--vms must be between 1 and %d", maxPortsPerNet)
	case o.Hosts < 2 || o.Hosts > 20:
		return errors.New("--hosts must be between 2 and 20 (VXLAN needs two)")
	case o.Ports < 1 || o.SyncNetworks < 1 || o.SyncNetworks > 100:
		return errors.New("--ports must be positive and --sync-networks between 1 and 100")
	case (o.Ports+o.SyncNetworks-1)/o.SyncNetworks > maxPortsPerNet:
		return fmt.Errorf("at most %d ports per sync network", maxPortsPerNet)
	case o.IperfSeconds < 1 || o.IperfSeconds > 600 || o.IperfRepeats < 1 || o.IperfRepeats > 20:
		return errors.New("--iperf-seconds must be 1-600 and --iperf-repeats 1-20")
	case o.Runs < 1 || o.Runs > 20:
		return errors.New("--runs must be between 1 and 20")
	}
	if len(o.Phases) == 0 {
		o.Phases = slices.Clone(DataplanePhases)
	}
	for _, p := range o.Phases {
		if !slices.Contains(DataplanePhases, p) {
			return fmt.Errorf("unknown phase %q (%s)", p, strings.Join(DataplanePhases, ", "))
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Minute
	}
	if o.Dir == "" {
		o.Dir = DefaultDataplaneOptions().Dir
	}
	return nil
}

func (o *DataplaneOptions) has(phase string) bool { return slices.Contains(o.Phases, phase) }

// DataplaneResult is the outcome of `vland bench dataplane`.
type DataplaneResult struct {
	Machine
	Binary string `json:"binary"`
	// Options, as run.
	VMs          int             `json:"vms"`
	Hosts        int             `json:"hosts"`
	Ports        int             `json:"ports"`
	SyncNetworks int             `json:"sync_networks"`
	IperfSeconds int             `json:"iperf_seconds"`
	IperfRepeats int             `json:"iperf_repeats"`
	Phases       []string        `json:"phases"`
	Runs         []*DataplaneRun `json:"runs"`
	TotalSeconds float64         `json:"total_seconds"`
}

// DataplaneRun is one run of the whole benchmark on its own cluster.
type DataplaneRun struct {
	Cluster string `json:"cluster"`
	Prefix  string `json:"prefix"`
	// UpSeconds is how long devcluster.Up took.
	UpSeconds float64 `json:"up_seconds"`
	// LoadAvg is /proc/loadavg's one-minute figure when the run began: the
	// machine is shared.
	LoadAvg      float64           `json:"loadavg_1m"`
	BringUp      *BringUpResult    `json:"bringup,omitempty"`
	Throughput   *ThroughputResult `json:"throughput,omitempty"`
	Sync         *SyncResult       `json:"sync,omitempty"`
	Errors       []string          `json:"errors,omitempty"`
	TotalSeconds float64           `json:"total_seconds"`
}

// Dist is a distribution of durations in milliseconds (nearest rank).
type Dist struct {
	N     int     `json:"n"`
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func distOf(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return Dist{N: len(s), P50Ms: ms(percentile(s, 50)), P90Ms: ms(percentile(s, 90)), P99Ms: ms(percentile(s, 99)), MaxMs: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// dataplane is one benchmark in progress.
type dataplane struct {
	progressLog
	opts DataplaneOptions
	log  *slog.Logger
}

// RunDataplane runs the benchmark opts.Runs times, each on a fresh dev
// cluster that is removed before the next starts, whatever happens. It
// returns the runs done so far with the first error.
func RunDataplane(ctx context.Context, opts DataplaneOptions) (*DataplaneResult, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the data-plane benchmark needs root: it builds a dev cluster (namespaces, veth, bridges, vxlan)")
	}
	if opts.Vland == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opts.Vland = exe
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	d := &dataplane{progressLog: progressLog{w: opts.Progress, label: "bench dataplane"}, opts: opts, log: benchLogger(opts.Progress, slog.LevelWarn)}
	res := &DataplaneResult{
		Machine: thisMachine(time.Now()), Binary: opts.Vland,
		VMs: opts.VMs, Hosts: opts.Hosts, Ports: opts.Ports, SyncNetworks: opts.SyncNetworks,
		IperfSeconds: opts.IperfSeconds, IperfRepeats: opts.IperfRepeats, Phases: opts.Phases,
	}
	started := time.Now()
	defer func() { res.TotalSeconds = time.Since(started).Seconds() }()
	d.sweep()
	for i := range opts.Runs {
		if opts.Runs > 1 {
			d.progress("run %d of %d", i+1, opts.Runs)
		}
		run, err := d.runOnce(ctx)
		if run != nil {
			res.Runs = append(res.Runs, run)
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// clusterName matches the names of the benchmark's clusters:
// bdp<pid of the benchmark>-<random>.
var clusterName = regexp.MustCompile(`^bdp([0-9]+)-[0-9a-f]+$`)

// sweep removes the clusters of earlier benchmark processes that are gone
// (killed before they could clean up).
func (d *dataplane) sweep() {
	entries, _ := os.ReadDir(d.opts.Dir)
	for _, e := range entries {
		if !leftByDeadRun(clusterName, e.Name()) {
			continue // not a cluster, this process's, or its benchmark still runs
		}
		d.progress("removing cluster %s left by an earlier run", e.Name())
		if err := devcluster.Down(e.Name(), filepath.Join(d.opts.Dir, e.Name()), d.log); err != nil {
			d.progress("  %v", err)
		}
	}
}

// runOnce builds a cluster, runs the phases on it, and removes it.
func (d *dataplane) runOnce(ctx context.Context) (run *DataplaneRun, err error) {
	var b [2]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("bdp%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
	dir := filepath.Join(d.opts.Dir, name)
	run = &DataplaneRun{Cluster: name, Prefix: devcluster.Prefix(name), LoadAvg: loadAvg()}
	started := time.Now()
	defer func() { run.TotalSeconds = time.Since(started).Seconds() }()
	d.progress("cluster %s (prefix %s): %d compute hosts + 1 for the cold sync, in %s", name, run.Prefix, d.opts.Hosts, dir)
	c, err := devcluster.Up(ctx, devcluster.Options{
		Name: name, Dir: dir, Hosts: d.opts.Hosts + 1, NetworkHosts: -1, Binary: d.opts.Vland, Logger: d.log,
	})
	if err != nil {
		return run, fmt.Errorf("dev cluster: %w", err)
	}
	defer func() {
		if d.opts.Logs != "" {
			if err := copyDir(filepath.Join(dir, "logs"), filepath.Join(d.opts.Logs, name)); err != nil {
				d.progress("copying the logs: %v", err)
			}
		}
		d.progress("removing cluster %s", name)
		if derr := c.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing the cluster: %w", derr))
		}
	}()
	run.UpSeconds = time.Since(started).Seconds()
	d.progress("cluster up in %.1f s", run.UpSeconds)
	e, err := d.newEnv(ctx, c)
	if err != nil {
		return run, err
	}
	fail := func(phase string, err error) {
		run.Errors = append(run.Errors, phase+": "+err.Error())
		d.progress("%s failed: %v", phase, err)
	}
	for _, phase := range DataplanePhases {
		if !d.opts.has(phase) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return run, err
		}
		switch phase {
		case PhaseBringUp:
			r, err := d.bringUp(ctx, e)
			run.BringUp = r
			if err != nil {
				fail(phase, err)
			}
		case PhaseThroughput:
			r, err := d.throughput(ctx, e)
			run.Throughput = r
			if err != nil {
				fail(phase, err)
			}
		case PhaseSync:
			r, err := d.coldSync(ctx, e)
			run.Sync = r
			if err != nil {
				fail(phase, err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return run, err
	}
	if len(run.Errors) > 0 {
		return run, fmt.Errorf("%d phase(s) failed: %s", len(run.Errors), strings.Join(run.Errors, "; "))
	}
	return run, nil
}

// env is a cluster ready for the phases: its hosts, clients and the
// project everything is created in.
type env struct {
	c         *devcluster.Cluster
	prefix    string
	admin     *devcluster.Client
	demo      *devcluster.Client
	projectID string            // the demo project's
	compute   []string          // hosts for VMs, compute1..K
	syncHost  string            // the last compute host
	hostNS    map[string]string // host -> namespace
}

func (d *dataplane) newEnv(ctx context.Context, c *devcluster.Cluster) (*env, error) {
	st := c.State()
	e := &env{c: c, prefix: st.Prefix, admin: c.Admin(), hostNS: map[string]string{}}
	for _, h := range st.Hosts {
		if h.Role == devcluster.RoleCompute {
			e.compute = append(e.compute, h.Name)
			e.hostNS[h.Name] = h.Namespace
		}
	}
	if len(e.compute) < 3 {
		return nil, fmt.Errorf("cluster has %d compute hosts, want at least 3", len(e.compute))
	}
	e.syncHost, e.compute = e.compute[len(e.compute)-1], e.compute[:len(e.compute)-1]
	var err error
	if e.demo, err = c.Client(st.Name + "-demo"); err != nil {
		return nil, err
	}
	if e.projectID, err = e.demo.ProjectID(ctx); err != nil {
		return nil, err
	}
	// Neutron's default quotas (500 ports) are below the benchmark's sizes.
	body := map[string]any{"quota": map[string]any{"port": -1, "network": -1, "subnet": -1}}
	if err := e.admin.Do(ctx, http.MethodPut, "/v2.0/quotas/"+e.projectID, body, nil); err != nil {
		return nil, fmt.Errorf("lift the demo project's quotas: %w", err)
	}
	return e, nil
}

// network is a network the benchmark created, with its /20 (or given) subnet.
type benchNet struct {
	ID     string
	Subnet string // CIDR
	MTU    int
	VNI    int
}

// newNetwork creates a network in the demo project with one IPv4 subnet
// without DHCP (addresses are configured statically).
func (e *env) newNetwork(ctx context.Context, name, cidr string) (benchNet, error) {
	var out struct {
		Network struct {
			ID   string `json:"id"`
			MTU  int    `json:"mtu"`
			Type string `json:"provider:network_type"`
			VNI  int    `json:"provider:segmentation_id"`
		} `json:"network"`
	}
	if err := e.demo.Do(ctx, http.MethodPost, "/v2.0/networks", map[string]any{"network": map[string]any{"name": name}}, &out); err != nil {
		return benchNet{}, fmt.Errorf("create network %s: %w", name, err)
	}
	n := benchNet{ID: out.Network.ID, Subnet: cidr, MTU: out.Network.MTU}
	body := map[string]any{"subnet": map[string]any{"network_id": n.ID, "name": name, "cidr": cidr, "ip_version": 4,
		"enable_dhcp": false, "gateway_ip": nil}}
	if err := e.demo.Do(ctx, http.MethodPost, "/v2.0/subnets", body, nil); err != nil {
		return benchNet{}, fmt.Errorf("create subnet %s: %w", cidr, err)
	}
	// The provider attributes are the admin's to see.
	if err := e.admin.Do(ctx, http.MethodGet, "/v2.0/networks/"+n.ID, nil, &out); err != nil {
		return benchNet{}, err
	}
	if out.Network.Type != "vxlan" {
		return benchNet{}, fmt.Errorf("network %s is %q, the benchmark wants vxlan", name, out.Network.Type)
	}
	n.VNI = out.Network.VNI
	return n, nil
}

// copyDir copies the regular files of a directory into another (made).
func copyDir(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// kernelRelease is `uname -r`.
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// loadAvg is the one-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// WriteJSON writes the result machine-readably.
func (r *DataplaneResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
