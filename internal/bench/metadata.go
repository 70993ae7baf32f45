package bench

// `vland bench metadata` measures the agent's metadata service
// (internal/dataplane/metadata) as the agent runs it, without a cluster:
// one Server listening on 169.254.169.254:80 inside a service namespace (a
// qdhcp-/qrouter- namespace's stand-in), and VMs in a second namespace
// across a veth, one source address each (VMs addresses on one eth0, each
// mapped by the Lookup to its own instance), with a route to the metadata
// address. Every socket of the load generator is opened inside the VM
// namespace; nothing touches the root namespace.
//
//  1. throughput: every VM asks for the paths cloud-init reads at boot,
//     for a fixed time: paced, all VMs together at --rate (5,000/s; 50/s
//     each, under the default rate limit, which is on), a new connection
//     per request as cloud-init's requests and curl open: the latency at
//     that rate; then in closed loops, a connection per request and then
//     on kept-alive connections: the capacity (with the rate limit off, as
//     it would cap each VM at 100/s and measure itself; a closed loop's
//     latency is queueing, VMs / rate).
//  2. fairness, with the default rate limit: a quiet VM's latency at a
//     steady 50 requests/s, alone, while another VM sends 1,000 requests/s,
//     and while another VM floods as fast as 16 connections can.
//
// The server and the load generator share this process (and the machine's
// CPUs), so the figures are a lower bound for the server alone.

import (
	"bufio"
	"bytes"
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
	"net/netip"
	"os"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/dataplane/metadata"
	"github.com/vland/vland/internal/namedns"
)

// MetadataOptions configure `vland bench metadata`.
type MetadataOptions struct {
	VMs         int // source addresses, one instance each
	Rate        int // paced throughput load: requests/s over all VMs
	Seconds     int // length of each throughput load
	FairSeconds int // length of each fairness load
	QuietRate   int // requests/s of the quiet VM
	HammerRate  int // requests/s of the hammering VM
	Timeout     time.Duration
	Progress    io.Writer
}

// DefaultMetadataOptions are the sizes the benchmark is documented with.
func DefaultMetadataOptions() MetadataOptions {
	return MetadataOptions{VMs: 100, Rate: 5000, Seconds: 10, FairSeconds: 10, QuietRate: 50, HammerRate: 1000, Timeout: 10 * time.Minute}
}

func (o *MetadataOptions) validate() error {
	switch {
	case o.VMs < 2 || o.VMs > 5000:
		return errors.New("--vms must be between 2 and 5000")
	case o.Rate < 1 || o.Rate > 100*o.VMs:
		return errors.New("--rate must be between 1 and 100 x --vms (the default rate limit of each VM)")
	case o.Seconds < 1 || o.Seconds > 600 || o.FairSeconds < 1 || o.FairSeconds > 600:
		return errors.New("--seconds and --fair-seconds must be 1-600")
	case o.QuietRate < 1 || o.QuietRate > 1000 || o.HammerRate < 1 || o.HammerRate > 100000:
		return errors.New("--quiet-rate must be 1-1000 and --hammer-rate 1-100000")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	return nil
}

// MetadataResult is the outcome of `vland bench metadata`.
type MetadataResult struct {
	Machine
	LoadAvg      float64           `json:"loadavg_1m"`
	VMs          int               `json:"vms"`
	Throughput   []*MetadataLoad   `json:"throughput,omitempty"`
	Fairness     *MetadataFairness `json:"fairness,omitempty"`
	Errors       []string          `json:"errors,omitempty"`
	TotalSeconds float64           `json:"total_seconds"`
}

// MetadataLoad is one throughput load.
type MetadataLoad struct {
	Mode       string  `json:"mode"`
	TargetRate int     `json:"target_rate,omitempty"` // paced load: requests/s offered; 0: closed loops
	Clients    int     `json:"clients"`
	Seconds    float64 `json:"seconds"`
	Requests   int64   `json:"requests"` // answered 200 with the right instance's data
	Failed     int64   `json:"failed"`
	ReqPerSec  float64 `json:"requests_per_sec"`
	Latency    Dist    `json:"latency"`
	// CPU is this process's CPU (server and load generator) over the load,
	// in percent of one CPU.
	CPU       float64  `json:"process_cpu_percent"`
	FirstErrs []string `json:"first_errors,omitempty"`
}

// MetadataFairness is phase 2: the quiet VM's latency in three conditions.
type MetadataFairness struct {
	QuietRate  int                `json:"quiet_rate"`
	HammerRate int                `json:"hammer_rate"`
	Alone      Dist               `json:"alone"`
	Hammered   *MetadataNeighbour `json:"hammered"`
	Flooded    *MetadataNeighbour `json:"flooded"`
	QuietFails int64              `json:"quiet_failures"`
}

// MetadataNeighbour is the quiet VM's latency beside one noisy VM.
type MetadataNeighbour struct {
	Quiet      Dist    `json:"quiet"`
	P50Ratio   float64 `json:"p50_ratio"` // quiet p50 / alone p50
	P99Ratio   float64 `json:"p99_ratio"`
	SentPerSec float64 `json:"noisy_sent_per_sec"`
	OK         int64   `json:"noisy_ok"`
	Limited    int64   `json:"noisy_429"`
	Failed     int64   `json:"noisy_failed"`
}

// crawlPaths are what cloud-init's OpenStack datasource reads at boot
// (the OpenStack documents, then part of the EC2 crawl).
var crawlPaths = []string{
	"/openstack", "/openstack/2018-08-27/meta_data.json", "/openstack/2018-08-27/user_data",
	"/openstack/2018-08-27/vendor_data.json", "/openstack/2018-08-27/vendor_data2.json",
	"/openstack/2018-08-27/network_data.json", "/latest/meta-data/", "/latest/meta-data/instance-id",
	"/latest/meta-data/local-ipv4", "/latest/meta-data/public-keys/0/openssh-key", "/latest/meta-data/placement/availability-zone",
	"/latest/user-data",
}

const instanceIDPath = "/latest/meta-data/instance-id"

var metadataNSName = regexp.MustCompile(`^bmd([0-9]+)-`)

// mdBench is one benchmark in progress.
type mdBench struct {
	opts        MetadataOptions
	svcNS, vmNS string
	vms         []netip.Addr
	want        map[netip.Addr]string // instance-id per VM
	lookup      metadata.Lookup
	dial        *nsDialer
	server      string // 169.254.169.254:80
	progressLog
}

// RunMetadata builds the two namespaces, runs both phases and removes the
// namespaces, whatever happens.
func RunMetadata(ctx context.Context, opts MetadataOptions) (res *MetadataResult, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the metadata benchmark needs root: it builds network namespaces")
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	started := time.Now()
	res = &MetadataResult{Machine: thisMachine(started), LoadAvg: loadAvg(), VMs: opts.VMs}
	defer func() { res.TotalSeconds = time.Since(started).Seconds() }()
	b := &mdBench{opts: opts, server: "169.254.169.254:80", progressLog: progressLog{w: opts.Progress, label: "bench metadata"}}
	sweepNamespaces("bmd", metadataNSName, b.progress)
	var rb [2]byte
	_, _ = rand.Read(rb[:])
	prefix := fmt.Sprintf("bmd%d-%s-", os.Getpid(), hex.EncodeToString(rb[:]))
	b.svcNS, b.vmNS = prefix+"svc", prefix+"vm"
	defer func() {
		if b.dial != nil {
			b.dial.close()
		}
		for _, ns := range []string{b.svcNS, b.vmNS} {
			if derr := namedns.Delete(ns); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	b.progress("namespaces %s and %s: %d VM addresses on one veth", b.svcNS, b.vmNS, opts.VMs)
	if err := b.build(); err != nil {
		return res, err
	}
	if b.dial, err = newNSDialer(b.vmNS, 32); err != nil {
		return res, err
	}
	for _, ls := range []loadSpec{{rate: opts.Rate}, {}, {keepAlive: true}} {
		if ctx.Err() != nil {
			break
		}
		l, err := b.throughput(ctx, ls)
		if l != nil {
			res.Throughput = append(res.Throughput, l)
		}
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		}
	}
	if ctx.Err() == nil {
		f, err := b.fairness(ctx)
		res.Fairness = f
		if err != nil {
			res.Errors = append(res.Errors, "fairness: "+err.Error())
		}
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if len(res.Errors) > 0 {
		return res, errors.New(res.Errors[0])
	}
	return res, nil
}

// build makes the namespaces, the veth, the addresses and the route, and
// the instances the Lookup answers.
func (b *mdBench) build() error {
	for _, ns := range []string{b.svcNS, b.vmNS} {
		if err := namedns.Create(ns); err != nil {
			return err
		}
	}
	svc, err := namedns.Handle(b.svcNS)
	if err != nil {
		return err
	}
	defer svc.Close()
	vm, err := namedns.Handle(b.vmNS)
	if err != nil {
		return err
	}
	defer vm.Close()
	vmFd, err := netns.GetFromName(b.vmNS)
	if err != nil {
		return err
	}
	defer vmFd.Close()
	if err := svc.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ns-md"}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(vmFd))}); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	addAddr := func(h *netlink.Handle, dev, cidr string) error {
		l, err := h.LinkByName(dev)
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", cidr, dev, err)
		}
		return nil
	}
	for _, a := range []string{"10.60.0.1/16", "169.254.169.254/32"} {
		if err := addAddr(svc, "ns-md", a); err != nil {
			return err
		}
	}
	b.want = map[netip.Addr]string{}
	insts := map[netip.Addr]metadata.Instance{}
	for i := range b.opts.VMs {
		ip := netip.AddrFrom4([4]byte{10, 60, byte(1 + i/250), byte(1 + i%250)})
		if err := addAddr(vm, "eth0", ip.String()+"/16"); err != nil {
			return err
		}
		b.vms = append(b.vms, ip)
		in := benchInstance(i, ip)
		insts[ip] = in
		b.want[ip] = metadata.EC2InstanceID(in.ID)
	}
	b.lookup = metadata.LookupFunc(func(key string, src netip.Addr) (metadata.Instance, bool) {
		in, ok := insts[src]
		return in, ok && key == "bench"
	})
	for _, x := range []struct {
		h   *netlink.Handle
		dev string
	}{{svc, "lo"}, {svc, "ns-md"}, {vm, "lo"}, {vm, "eth0"}} {
		if err := linkUp(x.h, x.dev); err != nil {
			return err
		}
	}
	eth0, err := vm.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := vm.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: netlink.NewIPNet(net.ParseIP("169.254.169.254")),
		Gw: net.ParseIP("10.60.0.1")}); err != nil {
		return fmt.Errorf("route to the metadata address: %w", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, _ := svc.LinkByName("ns-md")
		c, _ := vm.LinkByName("eth0")
		if a != nil && c != nil && a.Attrs().OperState == netlink.OperUp && c.Attrs().OperState == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("veth not up after 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// benchInstance is VM i's instance: as much as a real one carries.
func benchInstance(i int, ip netip.Addr) metadata.Instance {
	id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1)
	mac := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, byte(i >> 8), byte(i)}
	sub := metadata.Subnet{ID: "5a0e4b8e-6c1f-4d22-9d1b-3b6b0a4f1c01", CIDR: netip.MustParsePrefix("10.60.0.0/16"),
		Gateway: netip.MustParseAddr("10.60.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.60.0.2")}, DHCP: true}
	return metadata.Instance{
		ID: id, Name: fmt.Sprintf("vm%d", i), Hostname: fmt.Sprintf("vm%d", i), AvailabilityZone: "nova",
		ProjectID: "6d1f2a3b4c5d4e6f8a9b0c1d2e3f4a5b", UserData: bytes.Repeat([]byte("#cloud-config\n"), 100),
		Meta:           map[string]string{"role": "bench"},
		PublicKeys:     map[string]string{"bench": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBENCHBENCHBENCHBENCHBENCHBENCHBENCHBENCH bench"},
		SecurityGroups: []string{"default"},
		Ports: []metadata.Port{{ID: fmt.Sprintf("%08x-1111-4111-8111-%012x", i+1, i+1), MAC: mac, NetworkID: "net-bench", MTU: 1450,
			FixedIPs: []metadata.FixedIP{{Address: ip, Subnet: sub}}}},
	}
}

// startServer serves the metadata address in the service namespace.
func (b *mdBench) startServer(rl metadata.RateLimit) (*metadata.Listener, error) {
	s, err := metadata.NewServer(metadata.Options{Lookup: b.lookup, RateLimit: rl,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	return s.Listen(b.svcNS, b.server, "bench")
}

// loadSpec is one load of phase 1.
type loadSpec struct {
	keepAlive bool
	rate      int // total requests/s, spread evenly over the VMs; 0: closed loops
}

func (ls loadSpec) mode() string {
	m := "new connection per request"
	if ls.keepAlive {
		m = "kept-alive connections"
	}
	if ls.rate > 0 {
		return fmt.Sprintf("paced at %d requests/s, %s", ls.rate, m)
	}
	return "closed loops, " + m
}

// throughput is one load of phase 1. Closed loops measure capacity (their
// latency is queueing: VMs / rate), with the rate limit off since every VM
// asks far more than 100/s; the paced load measures latency at a given
// rate, with the default rate limit, as the agent runs.
func (b *mdBench) throughput(ctx context.Context, ls loadSpec) (*MetadataLoad, error) {
	rl := metadata.RateLimit{Rate: -1}
	var interval time.Duration
	if ls.rate > 0 {
		rl = metadata.RateLimit{}
		interval = time.Duration(float64(time.Second) * float64(len(b.vms)) / float64(ls.rate))
	}
	l, err := b.startServer(rl)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	b.progress("throughput: %d VMs, %s, %d s", len(b.vms), ls.mode(), b.opts.Seconds)
	r := &MetadataLoad{Mode: ls.mode(), Clients: len(b.vms), TargetRate: ls.rate}
	var errMu sync.Mutex
	lat := make([][]time.Duration, len(b.vms))
	var failed atomic.Int64
	dur := time.Duration(b.opts.Seconds) * time.Second
	lctx, cancel := context.WithTimeout(ctx, dur)
	defer cancel()
	cpu0 := agentCPUSeconds(os.Getpid())
	start := time.Now()
	var wg sync.WaitGroup
	for i, ip := range b.vms {
		wg.Go(func() {
			c := &mdClient{b: b, src: ip, keepAlive: ls.keepAlive}
			defer c.close()
			// Paced VMs start staggered, so the load is even, not in bursts.
			next := start.Add(interval * time.Duration(i) / time.Duration(len(b.vms)))
			for k := i; lctx.Err() == nil; k++ {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						select {
						case <-time.After(d):
						case <-lctx.Done():
							return
						}
					}
					next = next.Add(interval)
				}
				p := crawlPaths[k%len(crawlPaths)]
				t0 := time.Now()
				code, body, err := c.get(lctx, p)
				if lctx.Err() != nil {
					return // cut by the end of the load: not counted
				}
				if err == nil && code != http.StatusOK {
					err = fmt.Errorf("%s: HTTP %d", p, code)
				}
				if err == nil && p == instanceIDPath && string(body) != b.want[ip] {
					err = fmt.Errorf("%s from %s: %q, want %q", p, ip, body, b.want[ip])
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
				lat[i] = append(lat[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r.Seconds, r.Requests, r.Failed = el.Seconds(), int64(len(all)), failed.Load()
	r.ReqPerSec = float64(r.Requests) / r.Seconds
	r.Latency = distOf(all)
	if cpu1 := agentCPUSeconds(os.Getpid()); cpu0 >= 0 && cpu1 >= cpu0 {
		r.CPU = 100 * (cpu1 - cpu0) / r.Seconds
	}
	b.progress("  %.0f requests/s, p50 %.2f ms, p99 %.2f ms, %d failed", r.ReqPerSec, r.Latency.P50Ms, r.Latency.P99Ms, r.Failed)
	if r.Requests == 0 {
		return r, fmt.Errorf("throughput (%s): no request answered: %v", ls.mode(), r.FirstErrs)
	}
	if r.Failed > 0 {
		return r, fmt.Errorf("throughput (%s): %d requests failed, the first: %v", ls.mode(), r.Failed, r.FirstErrs[0])
	}
	return r, nil
}

// fairness is phase 2, with the default rate limit.
func (b *mdBench) fairness(ctx context.Context) (*MetadataFairness, error) {
	l, err := b.startServer(metadata.RateLimit{})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	f := &MetadataFairness{QuietRate: b.opts.QuietRate, HammerRate: b.opts.HammerRate}
	quiet, noisy := b.vms[0], b.vms[1]
	dur := time.Duration(b.opts.FairSeconds) * time.Second
	var quietFails atomic.Int64

	b.progress("fairness: quiet VM at %d/s alone, %d s", b.opts.QuietRate, b.opts.FairSeconds)
	alone := b.quietLoad(ctx, quiet, dur, &quietFails)
	f.Alone = distOf(alone)
	for _, flood := range []bool{false, true} {
		if ctx.Err() != nil {
			break
		}
		what := fmt.Sprintf("another VM sending %d/s", b.opts.HammerRate)
		if flood {
			what = "another VM flooding on 16 connections"
		}
		b.progress("fairness: quiet VM at %d/s beside %s, %d s", b.opts.QuietRate, what, b.opts.FairSeconds)
		nctx, stop := context.WithCancel(ctx)
		n := &MetadataNeighbour{}
		var ok, limited, failed, sent atomic.Int64
		var wg sync.WaitGroup
		wg.Go(func() { b.noisyLoad(nctx, noisy, flood, &sent, &ok, &limited, &failed) })
		time.Sleep(300 * time.Millisecond) // the noisy VM empties its bucket first
		t0 := time.Now()
		q := b.quietLoad(ctx, quiet, dur, &quietFails)
		el := time.Since(t0) + 300*time.Millisecond
		stop()
		wg.Wait()
		n.Quiet = distOf(q)
		n.SentPerSec = float64(sent.Load()) / el.Seconds()
		n.OK, n.Limited, n.Failed = ok.Load(), limited.Load(), failed.Load()
		if f.Alone.P50Ms > 0 {
			n.P50Ratio = n.Quiet.P50Ms / f.Alone.P50Ms
			n.P99Ratio = n.Quiet.P99Ms / f.Alone.P99Ms
		}
		if flood {
			f.Flooded = n
		} else {
			f.Hammered = n
		}
	}
	f.QuietFails = quietFails.Load()
	if f.QuietFails > 0 {
		return f, fmt.Errorf("the quiet VM had %d failed requests", f.QuietFails)
	}
	return f, nil
}

// quietLoad sends requests at the quiet rate, each on a new connection (as
// a booting guest's cloud-init does), and returns their latencies.
func (b *mdBench) quietLoad(ctx context.Context, src netip.Addr, dur time.Duration, fails *atomic.Int64) []time.Duration {
	c := &mdClient{b: b, src: src}
	defer c.close()
	tick := time.NewTicker(time.Second / time.Duration(b.opts.QuietRate))
	defer tick.Stop()
	end := time.Now().Add(dur)
	var out []time.Duration
	for k := 0; time.Now().Before(end) && ctx.Err() == nil; k++ {
		<-tick.C
		t0 := time.Now()
		code, _, err := c.get(ctx, crawlPaths[k%len(crawlPaths)])
		if err != nil || code != http.StatusOK {
			fails.Add(1)
			continue
		}
		out = append(out, time.Since(t0))
	}
	return out
}

// noisyLoad is the other VM: HammerRate requests/s dispatched to 16
// workers (flood false), or 16 workers as fast as they go (flood true).
func (b *mdBench) noisyLoad(ctx context.Context, src netip.Addr, flood bool, sent, ok, limited, failed *atomic.Int64) {
	jobs := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			c := &mdClient{b: b, src: src}
			defer c.close()
			for ctx.Err() == nil {
				if !flood {
					select {
					case <-jobs:
					case <-ctx.Done():
						return
					}
				}
				sent.Add(1)
				code, _, err := c.get(ctx, "/openstack/latest/meta_data.json")
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					failed.Add(1)
				case code == http.StatusOK:
					ok.Add(1)
				case code == http.StatusTooManyRequests:
					limited.Add(1)
				default:
					failed.Add(1)
				}
			}
		})
	}
	if !flood {
		// A ticker for the rate; ticks nobody takes (all workers busy) are
		// dropped, so the rate is an upper bound, and the report gives what
		// was actually sent.
		tick := time.NewTicker(time.Second / time.Duration(b.opts.HammerRate))
		for ctx.Err() == nil {
			select {
			case <-tick.C:
				select {
				case jobs <- struct{}{}:
				default:
				}
			case <-ctx.Done():
			}
		}
		tick.Stop()
	}
	wg.Wait()
}

// mdClient is one VM's HTTP/1.1 client: raw requests, the connection
// opened inside the VM namespace from the VM's address.
type mdClient struct {
	b         *mdBench
	src       netip.Addr
	keepAlive bool
	conn      net.Conn
	br        *bufio.Reader
}

func (c *mdClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// get fetches one path and returns the status and body.
func (c *mdClient) get(ctx context.Context, p string) (int, []byte, error) {
	if c.conn == nil {
		conn, err := c.b.dial.dial(ctx, c.src, c.b.server)
		if err != nil {
			return 0, nil, err
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	code, body, closing, err := c.roundTrip(p)
	if err != nil || !c.keepAlive || closing {
		c.close()
	}
	return code, body, err
}

// roundTrip sends one request on the open connection; closing reports
// that the server will close it.
func (c *mdClient) roundTrip(p string) (code int, body []byte, closing bool, err error) {
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	hdr := "\r\n"
	if !c.keepAlive {
		hdr = "Connection: close\r\n\r\n"
	}
	if _, err := io.WriteString(c.conn, "GET "+p+" HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: vland-bench\r\n"+hdr); err != nil {
		return 0, nil, false, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, nil, false, err
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, nil, false, err
	}
	return resp.StatusCode, body, resp.Close, nil
}

// nsDialer opens TCP connections inside a network namespace: its workers
// are goroutines locked to threads switched into it for good (a socket
// belongs to the namespace of the thread that creates it). A worker waits
// for its connect, so there are enough of them (32) that dialling is not
// what limits the load. The threads are
// never switched back: when the dialer closes, the goroutines exit still
// locked and the runtime retires their threads.
type nsDialer struct {
	jobs chan dialJob
}

type dialJob struct {
	ctx   context.Context
	src   netip.Addr
	addr  string
	reply chan dialReply
}

type dialReply struct {
	conn net.Conn
	err  error
}

func newNSDialer(ns string, workers int) (*nsDialer, error) {
	d := &nsDialer{jobs: make(chan dialJob)}
	ready := make(chan error, workers)
	for range workers {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
			h, err := netns.GetFromName(ns)
			if err == nil {
				err = netns.Set(h)
				h.Close()
			}
			ready <- err
			if err != nil {
				return
			}
			for j := range d.jobs {
				nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: j.src.AsSlice()}, Timeout: 5 * time.Second}
				conn, err := nd.DialContext(j.ctx, "tcp4", j.addr)
				j.reply <- dialReply{conn, err}
			}
		}()
	}
	var errs []error
	for range workers {
		if err := <-ready; err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		close(d.jobs)
		return nil, fmt.Errorf("dialer in namespace %s: %w", ns, errors.Join(errs...))
	}
	return d, nil
}

func (d *nsDialer) dial(ctx context.Context, src netip.Addr, addr string) (net.Conn, error) {
	reply := make(chan dialReply, 1)
	select {
	case d.jobs <- dialJob{ctx, src, addr, reply}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r := <-reply
	return r.conn, r.err
}

func (d *nsDialer) close() { close(d.jobs) }

// WriteJSON writes the result machine-readably.
func (r *MetadataResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result for people.
func (r *MetadataResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "vland bench metadata  %s  %d CPUs  kernel %s  %s  load %.2f\n", r.Date, r.NumCPU, r.Kernel, r.GoVersion, r.LoadAvg)
	fmt.Fprintf(w, "one metadata.Server on 169.254.169.254:80 in a namespace; %d VMs (source addresses) across a veth; load generator in the same process\n", r.VMs)
	for _, l := range r.Throughput {
		limit := "rate limit off"
		if l.TargetRate > 0 {
			limit = "default rate limit"
		}
		fmt.Fprintf(w, "\nthroughput, %s: %d VMs, %.1f s, %s\n", l.Mode, l.Clients, l.Seconds, limit)
		fmt.Fprintf(w, "  %.0f requests/s (%d answered, %d failed); latency p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms; process CPU %.0f%%\n",
			l.ReqPerSec, l.Requests, l.Failed, l.Latency.P50Ms, l.Latency.P90Ms, l.Latency.P99Ms, l.Latency.MaxMs, l.CPU)
		for _, e := range l.FirstErrs {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
	if f := r.Fairness; f != nil {
		fmt.Fprintf(w, "\nfairness, default rate limit: a quiet VM at %d requests/s (new connection each)\n", f.QuietRate)
		fmt.Fprintf(w, "  %-34s p50 %6.2f ms  p99 %6.2f ms  (n=%d)\n", "alone", f.Alone.P50Ms, f.Alone.P99Ms, f.Alone.N)
		for _, x := range []struct {
			name string
			n    *MetadataNeighbour
		}{{fmt.Sprintf("beside a VM sending %d/s", f.HammerRate), f.Hammered}, {"beside a VM flooding (16 conns)", f.Flooded}} {
			if x.n == nil {
				continue
			}
			fmt.Fprintf(w, "  %-34s p50 %6.2f ms  p99 %6.2f ms  (n=%d)  = %.2fx / %.2fx alone; the noisy VM sent %.0f/s: %d answered, %d got 429, %d failed\n",
				x.name, x.n.Quiet.P50Ms, x.n.Quiet.P99Ms, x.n.Quiet.N, x.n.P50Ratio, x.n.P99Ratio, x.n.SentPerSec, x.n.OK, x.n.Limited, x.n.Failed)
		}
		if f.QuietFails > 0 {
			fmt.Fprintf(w, "  the quiet VM had %d failed requests\n", f.QuietFails)
		}
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nerror: %s\n", e)
	}
	fmt.Fprintf(w, "\ntotal %.1f s\n", r.TotalSeconds)
	return nil
}
