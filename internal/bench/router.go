package bench

// `vland bench router` measures the router data plane (package
// dataplane/router) on namespaces it builds itself, named with a prefix of
// its own (brt<pid>-<hex>-) and removed at the end, on error and on
// interrupt; leftovers of a killed run are swept by the next one:
//
//  1. cold: a Manager programs N routers with M floating IPs each from
//     nothing (one Reconcile, timed to its return), then a second Reconcile
//     that finds everything right, then the teardown; repeated, medians
//     reported. Each router has one tenant interface, a gateway with SNAT
//     and M floating IPs; their taps stay unplugged (no L2), so that their
//     addresses, the same in every router as in identical tenants, never
//     meet on a wire.
//  2. associate: with the N routers in place, a probe router wired to real
//     bridges (a tenant network with VMs, the external network with an
//     "outside" namespace at 203.0.113.1) gets a floating IP for a VM; timed
//     from the start of the Reconcile that associates it to the first TCP
//     connection from the outside that reaches the VM; the floating IP is
//     then removed again. A fresh address each trial, as a new association.
//  3. throughput: iperf3, one TCP stream, VM -> outside through SNAT and
//     outside -> VM through a floating IP, and a plain veth pair between two
//     fresh namespaces in the same run; each path repeated, interleaved;
//     medians and their ratios to the veth pair reported.
//
// The agent's L2 work (enslaving taps to bridges) is done by the benchmark
// for the probe router only; nothing is created in the root namespace.

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
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/dataplane/router"
	"github.com/vland/vland/internal/namedns"
)

// Router benchmark phases.
const (
	RouterPhaseCold       = "cold"
	RouterPhaseAssociate  = "associate"
	RouterPhaseThroughput = "throughput"
)

// RouterPhases are all phases, in the order they run.
var RouterPhases = []string{RouterPhaseCold, RouterPhaseAssociate, RouterPhaseThroughput}

// Targets of issue 6.
const (
	targetRouterColdSec     = 10
	targetAssociateP99Ms    = 500
	targetRouterNATVethRate = 0.85
)

// RouterOptions configure `vland bench router`.
type RouterOptions struct {
	Routers      int // cold: routers programmed at once
	FloatingIPs  int // cold: floating IPs per router
	ColdRuns     int // cold: programs from nothing (median reported)
	Trials       int // associate: associations timed
	IperfSeconds int
	IperfRepeats int
	Phases       []string
	Timeout      time.Duration
	Progress     io.Writer
	LogChanges   bool // log every kernel change of the Manager to Progress
}

// DefaultRouterOptions are the sizes the benchmark is documented with.
func DefaultRouterOptions() RouterOptions {
	return RouterOptions{Routers: 100, FloatingIPs: 10, ColdRuns: 3, Trials: 50, IperfSeconds: 10, IperfRepeats: 3,
		Phases: slices.Clone(RouterPhases), Timeout: 30 * time.Minute}
}

func (o *RouterOptions) validate() error {
	switch {
	case o.Routers < 1 || o.Routers > 2000:
		return errors.New("--routers must be between 1 and 2000")
	case o.FloatingIPs < 0 || o.FloatingIPs > 200:
		return errors.New("--floating-ips must be between 0 and 200")
	case o.ColdRuns < 1 || o.ColdRuns > 20:
		return errors.New("--cold-runs must be between 1 and 20")
	case o.Trials < 1 || o.Trials > 1000:
		return errors.New("--trials must be between 1 and 1000")
	case o.IperfSeconds < 1 || o.IperfSeconds > 600 || o.IperfRepeats < 1 || o.IperfRepeats > 20:
		return errors.New("--iperf-seconds must be 1-600 and --iperf-repeats 1-20")
	}
	for _, p := range o.Phases {
		if !slices.Contains(RouterPhases, p) {
			return fmt.Errorf("unknown phase %q (%s)", p, strings.Join(RouterPhases, ", "))
		}
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	return nil
}

// RouterResult is the outcome of `vland bench router`.
type RouterResult struct {
	Machine
	LoadAvg      float64                 `json:"loadavg_1m"`
	Prefix       string                  `json:"prefix"`
	Cold         *RouterColdResult       `json:"cold,omitempty"`
	Associate    *RouterAssocResult      `json:"associate,omitempty"`
	Throughput   *RouterThroughputResult `json:"throughput,omitempty"`
	Errors       []string                `json:"errors,omitempty"`
	TotalSeconds float64                 `json:"total_seconds"`
}

// RouterColdResult is phase 1.
type RouterColdResult struct {
	Routers     int `json:"routers"`
	FloatingIPs int `json:"floating_ips_per_router"`
	// ProgramSeconds: Reconcile from nothing to its return, per run;
	// NoopSeconds: the next Reconcile (everything right); TeardownSeconds:
	// Reconcile of no routers.
	ProgramSeconds  []float64 `json:"program_seconds"`
	NoopSeconds     []float64 `json:"noop_seconds"`
	TeardownSeconds []float64 `json:"teardown_seconds"`
	Changes         []int     `json:"changes"` // kernel changes of each program
	MedianProgram   float64   `json:"median_program_seconds"`
	MedianNoop      float64   `json:"median_noop_seconds"`
	MedianTeardown  float64   `json:"median_teardown_seconds"`
}

// RouterAssocResult is phase 2.
type RouterAssocResult struct {
	BackgroundRouters int `json:"background_routers"`
	// ToConnect: from the start of the associating Reconcile to the first
	// TCP connection from outside that the VM accepted; Reconcile: that
	// Reconcile alone (all routers of the host are reconciled).
	ToConnect Dist `json:"association_to_connection"`
	Reconcile Dist `json:"reconcile"`
	Failed    int  `json:"failed"`
}

// RouterThroughputResult is phase 3.
type RouterThroughputResult struct {
	Seconds int          `json:"seconds"`
	Repeats int          `json:"repeats"`
	Paths   []PathResult `json:"paths"`
	// SNATRatio and FloatingIPRatio divide the paths' medians by the veth
	// pair's.
	SNATRatio       float64 `json:"snat_ratio"`
	FloatingIPRatio float64 `json:"floating_ip_ratio"`
}

// Router throughput path names.
const (
	PathRouterSNAT = "snat"
	PathRouterFIP  = "floating-ip"
)

type routerBench struct {
	progressLog
	opts   RouterOptions
	log    *slog.Logger
	prefix string
}

// routerPrefix matches the namespaces of a benchmark run.
var routerPrefix = regexp.MustCompile(`^brt([0-9]+)-[0-9a-f]+-`)

// RunRouter runs the phases on namespaces it builds and removes them all,
// whatever happens.
func RunRouter(ctx context.Context, opts RouterOptions) (res *RouterResult, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the router benchmark needs root: it builds network namespaces")
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	level := slog.LevelWarn
	if opts.LogChanges {
		level = slog.LevelInfo
	}
	b := &routerBench{progressLog: progressLog{w: opts.Progress, label: "bench router"}, opts: opts,
		prefix: fmt.Sprintf("brt%d-%s-", os.Getpid(), hex.EncodeToString(rnd[:])), log: benchLogger(opts.Progress, level)}
	sweepNamespaces("brt", routerPrefix, b.progress)
	res = &RouterResult{Machine: thisMachine(time.Now()), LoadAvg: loadAvg(), Prefix: b.prefix}
	started := time.Now()
	defer func() {
		res.TotalSeconds = time.Since(started).Seconds()
		if cerr := deleteNamespaces(b.prefix); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	b.progress("namespaces prefixed %s; %d CPUs, load %.2f", b.prefix, res.NumCPU, res.LoadAvg)

	env, err := b.newEnv()
	if err != nil {
		return res, err
	}
	defer env.close()
	fail := func(phase string, err error) {
		res.Errors = append(res.Errors, phase+": "+err.Error())
		b.progress("%s failed: %v", phase, err)
	}
	if slices.Contains(opts.Phases, RouterPhaseCold) {
		r, err := b.cold(ctx, env)
		res.Cold = r
		if err != nil {
			fail(RouterPhaseCold, err)
		}
	}
	if ctx.Err() == nil && slices.Contains(opts.Phases, RouterPhaseAssociate) {
		r, err := b.associate(ctx, env)
		res.Associate = r
		if err != nil {
			fail(RouterPhaseAssociate, err)
		}
	}
	if ctx.Err() == nil && slices.Contains(opts.Phases, RouterPhaseThroughput) {
		r, err := b.throughput(ctx, env)
		res.Throughput = r
		if err != nil {
			fail(RouterPhaseThroughput, err)
		}
	}
	return res, runError(ctx, res.Errors)
}

// routerEnv is the host namespace, the probe router's networks and nodes,
// and the Manager.
type routerEnv struct {
	b       *routerBench
	host    string
	hostH   *netlink.Handle
	m       *router.Manager
	vm1     string // SNAT client
	vm2     string // floating IP target
	outside string
}

// Addresses of the probe router's networks.
var (
	rbTenantGW = netip.MustParseAddr("10.1.0.1")
	rbVM1      = netip.MustParseAddr("10.1.0.11")
	rbVM2      = netip.MustParseAddr("10.1.0.12")
	rbOutside  = netip.MustParseAddr("203.0.113.1")
	rbGateway  = netip.MustParseAddr("203.0.113.10")
	rbIperfFIP = netip.MustParseAddr("203.0.113.50")
	rbFirstFIP = 100 // trial floating IPs: 203.0.113.100 and up
	rbFIPCount = 150
	rbProbeID  = "0b0b0b0b-0000-4000-8000-0000000000ff"
	rbProbeQR  = "0b0b0b01-0000-4000-8000-000000000001"
	rbProbeQG  = "0b0b0b02-0000-4000-8000-000000000002"
	rbTenantBr = "brq-tenant"
	rbExtBr    = "brq-ext"
)

// rbAcceptPort is where VM2 accepts the associate phase's connections.
const rbAcceptPort uint16 = 80

func (b *routerBench) newEnv() (*routerEnv, error) {
	e := &routerEnv{b: b, host: b.prefix + "host", vm1: b.prefix + "vm1", vm2: b.prefix + "vm2", outside: b.prefix + "outside"}
	if err := namedns.Create(e.host); err != nil {
		return nil, err
	}
	h, err := namedns.Handle(e.host)
	if err != nil {
		return nil, err
	}
	e.hostH = h
	if err := linkUp(h, "lo"); err != nil {
		return nil, err
	}
	for _, br := range []string{rbTenantBr, rbExtBr} {
		la := netlink.NewLinkAttrs()
		la.Name = br
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", br, err)
		}
		l, err := h.LinkByName(br)
		if err != nil {
			return nil, err
		}
		_ = h.LinkSetIP6AddrGenMode(l, nl.IN6_ADDR_GEN_MODE_NONE)
		if err := h.LinkSetUp(l); err != nil {
			return nil, err
		}
	}
	nodes := []struct {
		ns, dev, br string
		addr        netip.Prefix
		gw          netip.Addr
	}{
		{e.vm1, "hvm1", rbTenantBr, netip.PrefixFrom(rbVM1, 24), rbTenantGW},
		{e.vm2, "hvm2", rbTenantBr, netip.PrefixFrom(rbVM2, 24), rbTenantGW},
		{e.outside, "hout", rbExtBr, netip.PrefixFrom(rbOutside, 24), netip.Addr{}},
	}
	for _, n := range nodes {
		if err := e.node(n.ns, n.dev, n.br, n.addr, n.gw); err != nil {
			return nil, err
		}
	}
	m, err := router.NewManager(router.Options{HostNS: e.host, NamespacePrefix: b.prefix, Logger: b.log})
	if err != nil {
		return nil, err
	}
	e.m = m
	return e, nil
}

func (e *routerEnv) close() {
	if e.m != nil {
		e.m.Close()
	}
	if e.hostH != nil {
		e.hostH.Close()
	}
}

// node creates namespace ns whose eth0 pairs with dev on bridge br.
func (e *routerEnv) node(ns, dev, br string, addr netip.Prefix, gw netip.Addr) error {
	if err := namedns.Create(ns); err != nil {
		return err
	}
	fd, err := netns.GetFromName(ns)
	if err != nil {
		return err
	}
	defer fd.Close()
	la := netlink.NewLinkAttrs()
	la.Name = dev
	if err := e.hostH.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0", PeerNamespace: netlink.NsFd(fd)}); err != nil {
		return fmt.Errorf("%s: veth: %w", ns, err)
	}
	if err := e.plug(dev, br); err != nil {
		return err
	}
	h, err := namedns.Handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	for _, l := range []string{"lo", "eth0"} {
		if err := linkUp(h, l); err != nil {
			return err
		}
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := h.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}}); err != nil {
		return fmt.Errorf("%s: address: %w", ns, err)
	}
	if gw.IsValid() {
		if err := h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: gw.AsSlice()}); err != nil {
			return fmt.Errorf("%s: default route: %w", ns, err)
		}
	}
	return nil
}

// plug enslaves a host device to a bridge and sets it up (the L2 work).
func (e *routerEnv) plug(dev, br string) error {
	l, err := e.hostH.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("plug %s: %w", dev, err)
	}
	bl, err := e.hostH.LinkByName(br)
	if err != nil {
		return fmt.Errorf("plug %s: %w", dev, err)
	}
	if err := e.hostH.LinkSetMaster(l, bl); err != nil {
		return fmt.Errorf("enslave %s to %s: %w", dev, br, err)
	}
	return e.hostH.LinkSetUp(l)
}

// backgroundRouters are the cold phase's routers: router i has one tenant
// interface, a gateway with SNAT and n floating IPs, the same addresses in
// each (their taps stay unplugged).
func backgroundRouters(count, n int) []router.Router {
	out := make([]router.Router, count)
	for i := range out {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", 0xb0000000+i, i)
		port := func(kind int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", 0xc0000000+kind<<24+i, i) }
		mac := func(kind int) net.HardwareAddr {
			return net.HardwareAddr{0xfa, 0x16, 0x3e, byte(kind), byte(i >> 8), byte(i)}
		}
		r := router.Router{
			ID:         id,
			Interfaces: []router.Interface{{PortID: port(1), MAC: mac(1), Addrs: []netip.Prefix{netip.MustParsePrefix("10.0.0.1/24")}}},
			Gateway: &router.Gateway{PortID: port(2), MAC: mac(2), Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.10/24")},
				DefaultGateways: []netip.Addr{netip.MustParseAddr("198.51.100.1")}, EnableSNAT: true},
			MetadataPort: 9697,
		}
		for j := range n {
			r.FloatingIPs = append(r.FloatingIPs, router.FloatingIP{
				FloatingIP: netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + j)}),
				FixedIP:    netip.AddrFrom4([4]byte{10, 0, 0, byte(20 + j)})})
		}
		out[i] = r
	}
	return out
}

// probeRouter is the router wired to the bridges, with the given floating
// IPs for VM2.
func probeRouter(fips ...netip.Addr) router.Router {
	r := router.Router{
		ID: rbProbeID,
		Interfaces: []router.Interface{{PortID: rbProbeQR, MAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0xff, 0, 1},
			Addrs: []netip.Prefix{netip.PrefixFrom(rbTenantGW, 24)}}},
		Gateway: &router.Gateway{PortID: rbProbeQG, MAC: net.HardwareAddr{0xfa, 0x16, 0x3e, 0xff, 0, 2},
			Addrs: []netip.Prefix{netip.PrefixFrom(rbGateway, 24)}, DefaultGateways: []netip.Addr{rbOutside}, EnableSNAT: true},
	}
	for i, f := range fips {
		fixed := rbVM2
		if i > 0 {
			fixed = rbVM1
		}
		r.FloatingIPs = append(r.FloatingIPs, router.FloatingIP{FloatingIP: f, FixedIP: fixed})
	}
	return r
}

// reconcile runs one Reconcile and turns router errors into an error.
func (e *routerEnv) reconcile(ctx context.Context, routers []router.Router) (router.Result, time.Duration, error) {
	t0 := time.Now()
	res, err := e.m.Reconcile(ctx, router.Desired{Routers: routers})
	d := time.Since(t0)
	if err == nil {
		err = res.Err()
	}
	return res, d, err
}

// cold is phase 1.
func (b *routerBench) cold(ctx context.Context, e *routerEnv) (*RouterColdResult, error) {
	o := b.opts
	res := &RouterColdResult{Routers: o.Routers, FloatingIPs: o.FloatingIPs}
	routers := backgroundRouters(o.Routers, o.FloatingIPs)
	b.progress("cold: %d routers with %d floating IPs each, %d runs", o.Routers, o.FloatingIPs, o.ColdRuns)
	for run := range o.ColdRuns {
		r, d, err := e.reconcile(ctx, routers)
		if err != nil {
			return res, fmt.Errorf("program: %w", err)
		}
		res.ProgramSeconds = append(res.ProgramSeconds, d.Seconds())
		res.Changes = append(res.Changes, len(r.Changes))
		r, dn, err := e.reconcile(ctx, routers)
		if err != nil {
			return res, fmt.Errorf("second reconcile: %w", err)
		}
		if len(r.Changes) > 0 {
			return res, fmt.Errorf("the second reconcile changed %d things, first %q", len(r.Changes), r.Changes[0])
		}
		res.NoopSeconds = append(res.NoopSeconds, dn.Seconds())
		_, dt, err := e.reconcile(ctx, nil)
		if err != nil {
			return res, fmt.Errorf("teardown: %w", err)
		}
		res.TeardownSeconds = append(res.TeardownSeconds, dt.Seconds())
		b.progress("  run %d: program %.2f s (%d changes), no-op %.3f s, teardown %.2f s", run+1, d.Seconds(), res.Changes[run], dn.Seconds(), dt.Seconds())
	}
	res.MedianProgram, res.MedianNoop, res.MedianTeardown = median(res.ProgramSeconds), median(res.NoopSeconds), median(res.TeardownSeconds)
	return res, nil
}

// associate is phase 2.
func (b *routerBench) associate(ctx context.Context, e *routerEnv) (*RouterAssocResult, error) {
	o := b.opts
	res := &RouterAssocResult{BackgroundRouters: o.Routers}
	bg := backgroundRouters(o.Routers, o.FloatingIPs)
	all := func(fips ...netip.Addr) []router.Router { return append(slices.Clone(bg), probeRouter(fips...)) }
	if _, _, err := e.reconcile(ctx, all()); err != nil {
		return res, err
	}
	if err := e.plugProbe(); err != nil {
		return res, err
	}
	ln, err := listenIn(e.vm2, fmt.Sprintf(":%d", rbAcceptPort))
	if err != nil {
		return res, err
	}
	defer ln.Close()
	go acceptAndClose(ln)
	// The outside reaches the VM through SNAT's reverse path before the
	// trials: the wiring works.
	if err := dialUntil(ctx, e.outside, netip.AddrPortFrom(rbGateway, 9), 0, 2*time.Second, true); err != nil {
		b.progress("associate: note: %v", err)
	}
	b.progress("associate: %d trials, each a fresh floating IP for a VM behind a router, %d other routers on the host", o.Trials, o.Routers)
	var toConn, rec []time.Duration
	var firstErr error
	for i := range o.Trials {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		fip := netip.AddrFrom4([4]byte{203, 0, 113, byte(rbFirstFIP + i%rbFIPCount)})
		t0 := time.Now()
		_, d, err := e.reconcile(ctx, all(fip))
		if err == nil {
			err = dialUntil(ctx, e.outside, netip.AddrPortFrom(fip, rbAcceptPort), 0, 5*time.Second, false)
		}
		total := time.Since(t0)
		if err != nil {
			res.Failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("trial %d (%s): %w", i, fip, err)
			}
		} else {
			toConn = append(toConn, total)
			rec = append(rec, d)
		}
		if _, _, err := e.reconcile(ctx, all()); err != nil {
			return res, fmt.Errorf("disassociate %s: %w", fip, err)
		}
	}
	res.ToConnect, res.Reconcile = distOf(toConn), distOf(rec)
	b.progress("associate: to connection p50 %.1f ms, p99 %.1f ms; reconcile p50 %.1f ms; %d failed",
		res.ToConnect.P50Ms, res.ToConnect.P99Ms, res.Reconcile.P50Ms, res.Failed)
	return res, firstErr
}

// plugProbe enslaves the probe router's taps (the L2 work).
func (e *routerEnv) plugProbe() error {
	p := probeRouter()
	if err := e.plug(router.TapName(p.Interfaces[0].PortID), rbTenantBr); err != nil {
		return err
	}
	return e.plug(router.TapName(p.Gateway.PortID), rbExtBr)
}

// listenIn opens a TCP listener inside a namespace.
func listenIn(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := namedns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

func acceptAndClose(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// dialUntil connects from namespace ns to dst again and again (each attempt
// bounded by attempt, 50 ms when 0) until one succeeds or total passes;
// refused counts as reached when refusedOK.
func dialUntil(ctx context.Context, ns string, dst netip.AddrPort, attempt, total time.Duration, refusedOK bool) error {
	if attempt == 0 {
		attempt = 50 * time.Millisecond
	}
	deadline := time.Now().Add(total)
	var last error
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, attempt)
		var c net.Conn
		err := namedns.Do(ns, func() (err error) {
			c, err = (&net.Dialer{}).DialContext(actx, "tcp", dst.String())
			return err
		})
		cancel()
		if err == nil {
			c.Close()
			return nil
		}
		if refusedOK && errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		last = err
		if !errors.Is(err, context.DeadlineExceeded) {
			time.Sleep(5 * time.Millisecond) // refused or unreachable: do not spin
		}
	}
	return fmt.Errorf("no connection to %s within %v: %w", dst, total, last)
}

// throughput is phase 3.
func (b *routerBench) throughput(ctx context.Context, e *routerEnv) (*RouterThroughputResult, error) {
	o := b.opts
	res := &RouterThroughputResult{Seconds: o.IperfSeconds, Repeats: o.IperfRepeats}
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		return res, errors.New("iperf3 is not installed (apt-get install iperf3)")
	}
	var routers []router.Router
	if slices.Contains(o.Phases, RouterPhaseAssociate) {
		routers = backgroundRouters(o.Routers, o.FloatingIPs)
	}
	routers = append(routers, probeRouter(rbIperfFIP))
	if _, _, err := e.reconcile(ctx, routers); err != nil {
		return res, err
	}
	if err := e.plugProbe(); err != nil { // idempotent when already plugged
		return res, err
	}
	vethA, vethB := b.prefix+"vetha", b.prefix+"vethb"
	vethIP, _, err := baselinePair(vethA, vethB, 1500)
	if err != nil {
		return res, err
	}
	res.Paths = []PathResult{
		{Name: PathRouterSNAT, MTU: 1500, Description: "VM to outside through the router with SNAT: veth, bridge, veth, NAT + forwarding, veth, bridge, veth"},
		{Name: PathRouterFIP, MTU: 1500, Description: "outside to VM through a floating IP (DNAT): veth, bridge, veth, NAT + forwarding, veth, bridge, veth"},
		{Name: PathVeth, MTU: 1500, Description: "plain veth pair between two fresh namespaces"},
	}
	paths := []struct {
		res            *PathResult
		client, server string
		bind, dst      netip.Addr
	}{
		{&res.Paths[0], e.vm1, e.outside, rbOutside, rbOutside},
		{&res.Paths[1], e.outside, e.vm2, rbVM2, rbIperfFIP},
		{&res.Paths[2], vethA, vethB, vethIP, vethIP},
	}
	b.progress("throughput: iperf3 through SNAT, through a floating IP and over a veth pair; %d x %d s each", o.IperfRepeats, o.IperfSeconds)
	for r := range o.IperfRepeats {
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			out, err := runIperfVia(ctx, iperf, p.client, p.server, p.bind, p.dst, o.IperfSeconds)
			if err != nil {
				return res, fmt.Errorf("iperf3 over %s: %w", p.res.Name, err)
			}
			p.res.Gbps = append(p.res.Gbps, out.gbps)
			p.res.Retransmits = append(p.res.Retransmits, out.retransmits)
			p.res.SenderCPU = append(p.res.SenderCPU, out.senderCPU)
			p.res.ReceiverCPU = append(p.res.ReceiverCPU, out.receiverCPU)
			p.res.MachineBusy = append(p.res.MachineBusy, out.machineBusy)
			b.progress("  run %d %-12s %6.2f Gbit/s (%d retransmits, machine busy %.2f CPUs)", r+1, p.res.Name, out.gbps, out.retransmits, out.machineBusy)
		}
	}
	for i := range res.Paths {
		res.Paths[i].MedianGbps = median(res.Paths[i].Gbps)
	}
	if v := res.Paths[2].MedianGbps; v > 0 {
		res.SNATRatio = res.Paths[0].MedianGbps / v
		res.FloatingIPRatio = res.Paths[1].MedianGbps / v
	}
	b.progress("throughput: snat %.2f, floating IP %.2f, veth %.2f Gbit/s: ratios %.2f and %.2f",
		res.Paths[0].MedianGbps, res.Paths[1].MedianGbps, res.Paths[2].MedianGbps, res.SNATRatio, res.FloatingIPRatio)
	return res, nil
}

// WriteJSON writes the result machine-readably.
func (r *RouterResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result for people, with the targets of issue 6.
func (r *RouterResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "vland bench router: %d CPUs; kernel %s; %s; %s; load %.2f; %.0f s in all\n",
		r.NumCPU, r.Kernel, r.GoVersion, r.Date, r.LoadAvg, r.TotalSeconds)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\t")
	if c := r.Cold; c != nil && len(c.ProgramSeconds) > 0 {
		fmt.Fprintf(tw, "cold program: %d routers x %d floating IPs (median of %d)\t%s\t< %d s: %s\t\n", c.Routers, c.FloatingIPs,
			len(c.ProgramSeconds), fig("%.2f s", c.MedianProgram, c.ProgramSeconds), targetRouterColdSec, verdict(c.MedianProgram < targetRouterColdSec))
		fmt.Fprintf(tw, "  next reconcile (nothing to change)\t%s\t\t\n", fig("%.3f s", c.MedianNoop, c.NoopSeconds))
		fmt.Fprintf(tw, "  teardown of all\t%s\t\t\n", fig("%.2f s", c.MedianTeardown, c.TeardownSeconds))
	}
	if a := r.Associate; a != nil && a.ToConnect.N > 0 {
		fmt.Fprintf(tw, "floating IP association to first connection (%d trials, %d other routers)\tp50 %.1f ms, p99 %.1f ms, max %.1f ms\tp99 < %d ms: %s\t\n",
			a.ToConnect.N, a.BackgroundRouters, a.ToConnect.P50Ms, a.ToConnect.P99Ms, a.ToConnect.MaxMs, targetAssociateP99Ms, verdict(a.ToConnect.P99Ms < targetAssociateP99Ms))
		fmt.Fprintf(tw, "  of which the Reconcile\tp50 %.1f ms, p99 %.1f ms\t\t\n", a.Reconcile.P50Ms, a.Reconcile.P99Ms)
		if a.Failed > 0 {
			fmt.Fprintf(tw, "  failed trials\t%d\t\t\n", a.Failed)
		}
	}
	if t := r.Throughput; t != nil && len(t.Paths) == 3 {
		for _, p := range t.Paths {
			fmt.Fprintf(tw, "iperf3 %s (median of %d x %d s)\t%s\t\t\n", p.Name, len(p.Gbps), t.Seconds, fig("%.2f Gbit/s", p.MedianGbps, p.Gbps))
		}
		fmt.Fprintf(tw, "SNAT / veth\t%.2f\t>= %.2f: %s\t\n", t.SNATRatio, targetRouterNATVethRate, verdict(t.SNATRatio >= targetRouterNATVethRate))
		fmt.Fprintf(tw, "floating IP / veth\t%.2f\t>= %.2f: %s\t\n", t.FloatingIPRatio, targetRouterNATVethRate, verdict(t.FloatingIPRatio >= targetRouterNATVethRate))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	return nil
}
