package bench

// `vland bench dhcp` measures the DHCP service of the network host agent on
// a dev cluster it builds itself (2 compute hosts + 1 network host, under a
// unique name, removed with devcluster.Down at the end, on error and on
// interrupt):
//
//  1. lease: VMs created one after another on one DHCP network (its DHCP
//     port ACTIVE first), each timed from the API port create to the port
//     ACTIVE and to its lease (busybox udhcpc, started by CreateVM, bound);
//  2. throughput: DHCP networks, each with a load-generator VM and ports
//     created through the API with known MACs; Go clients (nclient4) in the
//     load-generator VMs run complete DISCOVER-OFFER-REQUEST-ACK exchanges
//     for those MACs for a fixed time, counted, with the agent's CPU.
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
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/vland/vland/internal/devcluster"
	"github.com/vland/vland/internal/namedns"
)

// DHCPOptions configure `vland bench dhcp`.
type DHCPOptions struct {
	VMs            int // lease: VMs created one after another
	Networks       int // throughput: DHCP networks, one load generator each
	ClientsPerNet  int // throughput: ports (MACs), one Go client each, per network
	Seconds        int // throughput: length of the load
	BaselineSecond int // throughput: length of the one-network baseline load
	Vland          string
	Dir            string
	Logs           string
	Timeout        time.Duration
	Progress       io.Writer
}

// DefaultDHCPOptions are the sizes the benchmark is documented with.
func DefaultDHCPOptions() DHCPOptions {
	return DHCPOptions{VMs: 100, Networks: 50, ClientsPerNet: 4, Seconds: 10, BaselineSecond: 5,
		Dir: filepath.Join(os.TempDir(), "vland-bench-dhcp"), Timeout: 30 * time.Minute}
}

func (o *DHCPOptions) validate() error {
	switch {
	case o.VMs < 0 || o.VMs > 1000:
		return errors.New("--vms must be between 0 and 1000")
	case o.Networks < 0 || o.Networks > 200:
		return errors.New("--networks must be between 0 and 200")
	case o.ClientsPerNet < 1 || o.ClientsPerNet > 200:
		return errors.New("--clients-per-net must be between 1 and 200")
	case o.Seconds < 1 || o.Seconds > 600 || o.BaselineSecond < 0 || o.BaselineSecond > 600:
		return errors.New("--seconds must be 1-600 and --baseline-seconds 0-600")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Dir == "" {
		o.Dir = DefaultDHCPOptions().Dir
	}
	return nil
}

// DHCPResult is the outcome of `vland bench dhcp`.
type DHCPResult struct {
	Machine
	Cluster       string           `json:"cluster"`
	Prefix        string           `json:"prefix"`
	UpSeconds     float64          `json:"up_seconds"`
	LoadAvg       float64          `json:"loadavg_1m"`
	VMs           int              `json:"vms"`
	Networks      int              `json:"networks"`
	ClientsPerNet int              `json:"clients_per_net"`
	Seconds       int              `json:"seconds"`
	Lease         *DHCPLeaseResult `json:"lease,omitempty"`
	Load          *DHCPLoadResult  `json:"load,omitempty"`
	Baseline      *DHCPLoadResult  `json:"baseline_one_network,omitempty"`
	Errors        []string         `json:"errors,omitempty"`
	TotalSeconds  float64          `json:"total_seconds"`
}

// DHCPLeaseResult is phase 1.
type DHCPLeaseResult struct {
	// CreateToActive: port create to the port ACTIVE (seen by polling the
	// API every 10 ms); CreateToLease: to udhcpc's lease record (the bound
	// event's file time); ActiveToLease: the difference, per VM.
	CreateToActive Dist `json:"create_to_active"`
	CreateToLease  Dist `json:"create_to_lease"`
	ActiveToLease  Dist `json:"active_to_lease"`
	Failed         int  `json:"failed"`
}

// DHCPLoadResult is one load of phase 2.
type DHCPLoadResult struct {
	Networks  int     `json:"networks"`
	Clients   int     `json:"clients"`
	Seconds   float64 `json:"seconds"`
	Exchanges int64   `json:"exchanges"` // complete DISCOVER-OFFER-REQUEST-ACK
	Failed    int64   `json:"failed"`
	// ExchangesPerSec counts complete DORA exchanges; TxPerSec counts
	// request/reply transactions (two per exchange), as the server's
	// package benchmark does.
	ExchangesPerSec float64 `json:"exchanges_per_sec"`
	TxPerSec        float64 `json:"tx_per_sec"`
	// AgentCPU is the network host agent's CPU (user+system) over the load,
	// in percent of one CPU.
	AgentCPU  float64  `json:"agent_cpu_percent"`
	FirstErrs []string `json:"first_errors,omitempty"`
}

type dhcpBench struct {
	progressLog
	opts DHCPOptions
	log  *slog.Logger
}

var dhcpClusterName = regexp.MustCompile(`^bdh([0-9]+)-[0-9a-f]+$`)

// RunDHCP builds a cluster, runs both phases on it and removes it, whatever
// happens.
func RunDHCP(ctx context.Context, opts DHCPOptions) (res *DHCPResult, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the DHCP benchmark needs root: it builds a dev cluster")
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
	d := &dhcpBench{progressLog: progressLog{w: opts.Progress, label: "bench dhcp"}, opts: opts, log: benchLogger(opts.Progress, slog.LevelWarn)}
	d.sweep()
	var b [2]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("bdh%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
	dir := filepath.Join(opts.Dir, name)
	res = &DHCPResult{Machine: thisMachine(time.Now()), Cluster: name, Prefix: devcluster.Prefix(name), LoadAvg: loadAvg(),
		VMs: opts.VMs, Networks: opts.Networks, ClientsPerNet: opts.ClientsPerNet, Seconds: opts.Seconds}
	started := time.Now()
	defer func() { res.TotalSeconds = time.Since(started).Seconds() }()
	d.progress("cluster %s (prefix %s): 2 compute hosts + 1 network host, in %s", name, res.Prefix, dir)
	c, err := devcluster.Up(ctx, devcluster.Options{Name: name, Dir: dir, Hosts: 2, NetworkHosts: 1, Binary: opts.Vland, Logger: d.log})
	if err != nil {
		return res, fmt.Errorf("dev cluster: %w", err)
	}
	defer func() {
		if opts.Logs != "" {
			if err := copyDir(filepath.Join(dir, "logs"), filepath.Join(opts.Logs, name)); err != nil {
				d.progress("copying the logs: %v", err)
			}
		}
		d.progress("removing cluster %s", name)
		if derr := c.Down(); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing the cluster: %w", derr))
		}
	}()
	res.UpSeconds = time.Since(started).Seconds()
	d.progress("cluster up in %.1f s", res.UpSeconds)
	demo, err := c.Client(name + "-demo")
	if err != nil {
		return res, err
	}
	projectID, err := demo.ProjectID(ctx)
	if err != nil {
		return res, err
	}
	body := map[string]any{"quota": map[string]any{"port": -1, "network": -1, "subnet": -1}}
	if err := c.Admin().Do(ctx, http.MethodPut, "/v2.0/quotas/"+projectID, body, nil); err != nil {
		return res, fmt.Errorf("lift the demo project's quotas: %w", err)
	}
	if opts.VMs > 0 {
		r, err := d.leases(ctx, c)
		res.Lease = r
		if err != nil {
			res.Errors = append(res.Errors, "lease: "+err.Error())
			d.progress("lease failed: %v", err)
		}
	}
	if ctx.Err() == nil && opts.Networks > 0 {
		load, base, err := d.throughput(ctx, c, demo)
		res.Load, res.Baseline = load, base
		if err != nil {
			res.Errors = append(res.Errors, "throughput: "+err.Error())
			d.progress("throughput failed: %v", err)
		}
	}
	return res, runError(ctx, res.Errors)
}

// sweep removes the clusters of earlier benchmark processes that are gone.
func (d *dhcpBench) sweep() {
	entries, _ := os.ReadDir(d.opts.Dir)
	for _, e := range entries {
		if !leftByDeadRun(dhcpClusterName, e.Name()) {
			continue
		}
		d.progress("removing cluster %s left by an earlier run", e.Name())
		if err := devcluster.Down(e.Name(), filepath.Join(d.opts.Dir, e.Name()), d.log); err != nil {
			d.progress("  %v", err)
		}
	}
}

// dhcpNetwork creates a network with a DHCP-enabled subnet and waits for its
// DHCP port to be ACTIVE.
func dhcpNetwork(ctx context.Context, c *devcluster.Cluster, name, cidr string) (string, error) {
	id, err := c.CreateNetwork(ctx, c.Name()+"-demo", name, cidr)
	if err != nil {
		return "", err
	}
	q := "/v2.0/ports?device_owner=network%3Adhcp&network_id=" + url.QueryEscape(id)
	deadline := time.Now().Add(60 * time.Second)
	last := "none"
	for {
		var out struct {
			Ports []struct {
				Status string `json:"status"`
			} `json:"ports"`
		}
		if err := c.Admin().Do(ctx, http.MethodGet, q, nil, &out); err != nil {
			return "", err
		}
		if len(out.Ports) > 0 {
			last = out.Ports[0].Status
			if last == "ACTIVE" {
				return id, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("network %s: DHCP port not ACTIVE after 60 s (status %s)", name, last)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// leases is phase 1.
func (d *dhcpBench) leases(ctx context.Context, c *devcluster.Cluster) (*DHCPLeaseResult, error) {
	netID, err := dhcpNetwork(ctx, c, "lease", "10.100.0.0/20")
	if err != nil {
		return nil, err
	}
	d.progress("lease: network's DHCP port ACTIVE; creating %d VMs one after another", d.opts.VMs)
	var toActive, toLease, activeToLease []time.Duration
	r := &DHCPLeaseResult{}
	var firstErr error
	for i := range d.opts.VMs {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		name := fmt.Sprintf("l%d", i)
		wctx, stop := context.WithCancel(ctx)
		activeAt := make(chan time.Time, 1)
		t0 := time.Now()
		go watchActive(wctx, c, name, activeAt)
		_, err := c.CreateVM(ctx, devcluster.VMOptions{Name: name, Network: netID, DHCPTimeout: 10 * time.Second})
		done := time.Now()
		stop()
		if err != nil {
			r.Failed++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		leased := done
		if st, err := os.Stat(filepath.Join(c.Dir(), "dhcp", name+".lease")); err == nil && st.ModTime().After(t0) && st.ModTime().Before(done) {
			leased = st.ModTime()
		}
		var active time.Time
		select {
		case active = <-activeAt:
		default:
		}
		toLease = append(toLease, leased.Sub(t0))
		if !active.IsZero() {
			if active.After(leased) { // seen late by the 10 ms poll
				active = leased
			}
			toActive = append(toActive, active.Sub(t0))
			activeToLease = append(activeToLease, leased.Sub(active))
		}
		if (i+1)%20 == 0 {
			d.progress("lease: %d VMs", i+1)
		}
	}
	r.CreateToActive, r.CreateToLease, r.ActiveToLease = distOf(toActive), distOf(toLease), distOf(activeToLease)
	if r.Failed > 0 {
		return r, fmt.Errorf("%d of %d VMs failed, the first: %w", r.Failed, d.opts.VMs, firstErr)
	}
	return r, nil
}

// watchActive sends the time the VM's port was first seen ACTIVE: it polls
// the cluster's state for the port id, then the API every 10 ms.
func watchActive(ctx context.Context, c *devcluster.Cluster, vm string, out chan<- time.Time) {
	portID := ""
	for ctx.Err() == nil {
		if portID == "" {
			if v, err := c.VM(vm); err == nil && v.PortID != "" {
				portID = v.PortID
				continue
			}
		} else {
			var p struct {
				Port struct {
					Status string `json:"status"`
				} `json:"port"`
			}
			if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/ports/"+portID, nil, &p); err == nil && p.Port.Status == "ACTIVE" {
				out <- time.Now()
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// loadNet is a network of phase 2 with its load generator and clients.
type loadNet struct {
	id      string
	lg      devcluster.VM
	macs    []net.HardwareAddr
	ips     []net.IP
	clients []*nclient4.Client
}

// throughput is phase 2: the load on all networks, and the baseline, the
// same load on one network.
func (d *dhcpBench) throughput(ctx context.Context, c *devcluster.Cluster, demo *devcluster.Client) (*DHCPLoadResult, *DHCPLoadResult, error) {
	d.progress("throughput: %d DHCP networks, each with a load-generator VM and %d ports", d.opts.Networks, d.opts.ClientsPerNet)
	nets := make([]*loadNet, d.opts.Networks)
	defer func() {
		for _, n := range nets {
			if n == nil {
				continue
			}
			for _, cl := range n.clients {
				cl.Close()
			}
		}
	}()
	var mu sync.Mutex
	var errs []error
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= d.opts.Networks || ctx.Err() != nil {
					return
				}
				n, err := d.loadNetwork(ctx, c, demo, i)
				mu.Lock()
				nets[i] = n
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%d networks failed to set up, the first: %w", len(errs), errs[0])
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	agent := 0
	for _, h := range c.State().Hosts {
		if h.Role == devcluster.RoleNetwork {
			agent = h.Agent.PID
		}
	}
	var base *DHCPLoadResult
	if d.opts.BaselineSecond > 0 {
		d.progress("throughput: baseline, one network, %d s", d.opts.BaselineSecond)
		base = runLoad(ctx, nets[:1], time.Duration(d.opts.BaselineSecond)*time.Second, agent)
	}
	d.progress("throughput: %d networks, %d clients, %d s", len(nets), len(nets)*d.opts.ClientsPerNet, d.opts.Seconds)
	load := runLoad(ctx, nets, time.Duration(d.opts.Seconds)*time.Second, agent)
	if load.Exchanges == 0 {
		return load, base, fmt.Errorf("no exchange completed: %v", load.FirstErrs)
	}
	return load, base, nil
}

// loadNetwork creates network i with its DHCP subnet, its ports with known
// MACs, the load-generator VM, and the Go clients inside it.
func (d *dhcpBench) loadNetwork(ctx context.Context, c *devcluster.Cluster, demo *devcluster.Client, i int) (*loadNet, error) {
	name := fmt.Sprintf("load%d", i)
	id, err := dhcpNetwork(ctx, c, name, fmt.Sprintf("10.%d.%d.0/24", 110+i/256, i%256))
	if err != nil {
		return nil, err
	}
	n := &loadNet{id: id}
	for k := range d.opts.ClientsPerNet {
		mac := net.HardwareAddr{0xfa, 0x16, 0x3f, byte(i >> 8), byte(i), byte(k)}
		body := map[string]any{"port": map[string]any{"network_id": id, "name": fmt.Sprintf("%s-c%d", name, k),
			"mac_address": mac.String(), "device_owner": "compute:bench"}}
		var out struct {
			Port struct {
				FixedIPs []struct {
					IPAddress string `json:"ip_address"`
				} `json:"fixed_ips"`
			} `json:"port"`
		}
		if err := demo.Do(ctx, http.MethodPost, "/v2.0/ports", body, &out); err != nil {
			return n, fmt.Errorf("port of %s: %w", mac, err)
		}
		if len(out.Port.FixedIPs) == 0 {
			return n, fmt.Errorf("port of %s has no address", mac)
		}
		n.macs = append(n.macs, mac)
		n.ips = append(n.ips, net.ParseIP(out.Port.FixedIPs[0].IPAddress))
	}
	vm, err := c.CreateVM(ctx, devcluster.VMOptions{Name: fmt.Sprintf("g%d", i), Network: id})
	if err != nil {
		return n, err
	}
	n.lg = *vm
	err = namedns.Do(vm.Namespace, func() error {
		for _, m := range n.macs {
			cl, err := nclient4.New("eth0", nclient4.WithHWAddr(m), nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
			if err != nil {
				return err
			}
			n.clients = append(n.clients, cl)
		}
		return nil
	})
	return n, err
}

// runLoad runs every client of the networks in a loop of complete exchanges
// for the duration.
func runLoad(ctx context.Context, nets []*loadNet, dur time.Duration, agentPID int) *DHCPLoadResult {
	r := &DHCPLoadResult{Networks: len(nets)}
	var ok, failed atomic.Int64
	var errMu sync.Mutex
	lctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	cpu0 := agentCPUSeconds(agentPID)
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range nets {
		for k, cl := range n.clients {
			r.Clients++
			want := n.ips[k]
			wg.Go(func() {
				for lctx.Err() == nil {
					lease, err := cl.Request(lctx)
					if lctx.Err() != nil {
						return // cut by the end of the load: not counted
					}
					if err == nil && !lease.ACK.YourIPAddr.Equal(want) {
						err = fmt.Errorf("leased %s, want %s", lease.ACK.YourIPAddr, want)
					}
					if err != nil {
						failed.Add(1)
						errMu.Lock()
						if len(r.FirstErrs) < 5 {
							r.FirstErrs = append(r.FirstErrs, err.Error())
						}
						errMu.Unlock()
						continue
					}
					ok.Add(1)
				}
			})
		}
	}
	wg.Wait()
	el := time.Since(start)
	cpu1 := agentCPUSeconds(agentPID)
	r.Seconds = el.Seconds()
	r.Exchanges, r.Failed = ok.Load(), failed.Load()
	r.ExchangesPerSec = float64(r.Exchanges) / r.Seconds
	r.TxPerSec = 2 * r.ExchangesPerSec
	if cpu0 >= 0 && cpu1 >= cpu0 {
		r.AgentCPU = 100 * (cpu1 - cpu0) / r.Seconds
	}
	return r
}

// agentCPUSeconds is a process's user+system CPU time in seconds (-1: unknown).
func agentCPUSeconds(pid int) float64 {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100 // USER_HZ
}

// WriteJSON writes the result machine-readably.
func (r *DHCPResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result for people.
func (r *DHCPResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "vland bench dhcp  %s  %d CPUs  kernel %s  %s  cluster %s (up %.1f s, load %.2f)\n",
		r.Date, r.NumCPU, r.Kernel, r.GoVersion, r.Cluster, r.UpSeconds, r.LoadAvg)
	if l := r.Lease; l != nil {
		fmt.Fprintf(w, "\nlease: %d VMs one after another on one DHCP network (%d failed)\n", r.VMs, l.Failed)
		for _, x := range []struct {
			n string
			d Dist
		}{{"create -> port ACTIVE", l.CreateToActive}, {"create -> lease", l.CreateToLease}, {"port ACTIVE -> lease", l.ActiveToLease}} {
			fmt.Fprintf(w, "  %-22s n=%-4d p50 %7.1f ms  p90 %7.1f ms  p99 %7.1f ms  max %7.1f ms\n", x.n, x.d.N, x.d.P50Ms, x.d.P90Ms, x.d.P99Ms, x.d.MaxMs)
		}
	}
	for _, x := range []struct {
		n string
		l *DHCPLoadResult
	}{{"baseline (1 network)", r.Baseline}, {"load", r.Load}} {
		if x.l == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s: %d networks, %d clients, %.1f s: %d exchanges (%d failed)\n", x.n, x.l.Networks, x.l.Clients, x.l.Seconds, x.l.Exchanges, x.l.Failed)
		fmt.Fprintf(w, "  %.0f DORA exchanges/s = %.0f tx/s (request/reply pairs); network agent CPU %.0f%%\n", x.l.ExchangesPerSec, x.l.TxPerSec, x.l.AgentCPU)
		for _, e := range x.l.FirstErrs {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nerror: %s\n", e)
	}
	fmt.Fprintf(w, "\ntotal %.1f s\n", r.TotalSeconds)
	return nil
}
