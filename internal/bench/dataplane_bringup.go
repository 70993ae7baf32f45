package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// BringUpResult is the port bring-up phase: VMs created one after another
// on one VXLAN network, spread round-robin over the compute hosts, while a
// probe VM on the first host pings each new VM's address.
type BringUpResult struct {
	VMs       int      `json:"vms"`
	Hosts     []string `json:"hosts"`
	ProbeHost string   `json:"probe_host"`
	MTU       int      `json:"mtu"`
	Failed    int      `json:"failed"`
	// From just before the API port create to the port ACTIVE (seen by
	// polling the API) and to the probe's first echo answered.
	CreateToActive Dist `json:"create_to_active"`
	CreateToPing   Dist `json:"create_to_ping"`
	// The same for VMs on the probe's host (bridge only) and on others
	// (VXLAN, and the l2population entries on the probe's host).
	CreateToPingSameHost  Dist `json:"create_to_ping_same_host"`
	CreateToPingCrossHost Dist `json:"create_to_ping_cross_host"`
	// The steps: POST /v2.0/ports (as the project), PUT binding:host_id (as
	// admin), the hypervisor's plug (namespace, veth, address, up), the
	// agent's reaction (tap created until enslaved, from netlink events of
	// the host), and the status path (enslaved until ACTIVE in the API).
	APICreate     Dist `json:"api_create"`
	APIBind       Dist `json:"api_bind"`
	Plug          Dist `json:"plug"`
	TapToWired    Dist `json:"tap_to_wired"`
	WiredToActive Dist `json:"wired_to_active"`
	CreateToWired Dist `json:"create_to_wired"`
	// Resolution: the API is polled every StatusPollMs, the probe pings
	// every PingIntervalMs; ARP retransmits every ARPRetransMs in the VMs.
	StatusPollMs   float64         `json:"status_poll_ms"`
	PingIntervalMs float64         `json:"ping_interval_ms"`
	ARPRetransMs   int             `json:"arp_retrans_ms"`
	Samples        []BringUpSample `json:"samples"`
}

// BringUpSample is one VM's timeline, in milliseconds after the port create
// was sent (0: did not happen).
type BringUpSample struct {
	VM string `json:"vm"`
	// Start is when the port create was sent (RFC 3339, for the logs).
	Start     string  `json:"start"`
	Host      string  `json:"host"`
	SameHost  bool    `json:"same_host"`
	CreateMs  float64 `json:"created_ms"`
	BoundMs   float64 `json:"bound_ms"`
	TapMs     float64 `json:"tap_created_ms"`
	PluggedMs float64 `json:"plugged_ms"`
	WiredMs   float64 `json:"wired_ms"`
	ActiveMs  float64 `json:"active_ms"`
	PingMs    float64 `json:"ping_ms"`
	Error     string  `json:"error,omitempty"`
}

const (
	statusPoll   = 10 * time.Millisecond
	pingInterval = 5 * time.Millisecond
	vmTimeout    = 20 * time.Second
	bringUpCIDR  = "10.10.0.0/20"
)

func (d *dataplane) bringUp(ctx context.Context, e *env) (*BringUpResult, error) {
	d.progress("bring-up: %d VMs over %v, probe on %s", d.opts.VMs, e.compute, e.compute[0])
	res := &BringUpResult{VMs: d.opts.VMs, Hosts: e.compute, ProbeHost: e.compute[0],
		StatusPollMs: ms(statusPoll), PingIntervalMs: ms(pingInterval), ARPRetransMs: arpRetransMs}
	n, err := e.newNetwork(ctx, "bench-bringup", bringUpCIDR)
	if err != nil {
		return res, err
	}
	res.MTU = n.MTU
	subnet := netip.MustParsePrefix(bringUpCIDR)
	probe, err := e.newVM(ctx, "probe", e.compute[0], n, subnet)
	if err != nil {
		return res, fmt.Errorf("probe VM: %w", err)
	}
	pr, err := openProber(probe.NS)
	if err != nil {
		return res, err
	}
	defer pr.close()
	watches := map[string]*linkWatch{}
	for _, h := range e.compute {
		w, err := watchNS(e.hostNS[h])
		if err != nil {
			return res, err
		}
		defer w.close()
		watches[h] = w
	}
	var create, bind, plug, wired, active, ping, pingSame, pingCross, tapWired, wiredActive []time.Duration
	for i := range d.opts.VMs {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		host := e.compute[i%len(e.compute)]
		s := d.bringUpOne(ctx, e, n, subnet, i, host, pr, watches[host])
		s.SameHost = host == res.ProbeHost
		res.Samples = append(res.Samples, s)
		if s.Error != "" {
			res.Failed++
			d.progress("  VM %s: %s", s.VM, s.Error)
			continue
		}
		at := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
		create = append(create, at(s.CreateMs))
		bind = append(bind, at(s.BoundMs-s.CreateMs))
		plug = append(plug, at(s.PluggedMs-s.BoundMs))
		wired = append(wired, at(s.WiredMs))
		active = append(active, at(s.ActiveMs))
		ping = append(ping, at(s.PingMs))
		if s.SameHost {
			pingSame = append(pingSame, at(s.PingMs))
		} else {
			pingCross = append(pingCross, at(s.PingMs))
		}
		tapWired = append(tapWired, at(s.WiredMs-s.TapMs))
		wiredActive = append(wiredActive, at(s.ActiveMs-s.WiredMs))
		if (i+1)%25 == 0 {
			d.progress("  %d VMs up", i+1)
		}
	}
	res.APICreate, res.APIBind, res.Plug = distOf(create), distOf(bind), distOf(plug)
	res.CreateToWired, res.CreateToActive, res.CreateToPing = distOf(wired), distOf(active), distOf(ping)
	res.CreateToPingSameHost, res.CreateToPingCrossHost = distOf(pingSame), distOf(pingCross)
	res.TapToWired, res.WiredToActive = distOf(tapWired), distOf(wiredActive)
	d.progress("bring-up: create->ACTIVE p50 %.0f p99 %.0f ms; create->ping p50 %.0f p99 %.0f ms; %d failed",
		res.CreateToActive.P50Ms, res.CreateToActive.P99Ms, res.CreateToPing.P50Ms, res.CreateToPing.P99Ms, res.Failed)
	if res.Failed > 0 {
		return res, fmt.Errorf("%d of %d VMs did not come up", res.Failed, d.opts.VMs)
	}
	return res, nil
}

// bringUpOne creates, binds and plugs one VM, timing each step and the
// wiring, status and first ping that follow.
func (d *dataplane) bringUpOne(ctx context.Context, e *env, n benchNet, subnet netip.Prefix, i int, host string, pr *prober, w *linkWatch) BringUpSample {
	name := "bu" + strconv.Itoa(i)
	s := BringUpSample{VM: name, Host: host}
	v := &dpVM{Name: name, NS: e.prefix + "-" + name, Host: host, HostNS: e.hostNS[host], MTU: n.MTU}
	ctx, cancel := context.WithTimeout(ctx, vmTimeout)
	defer cancel()
	since := func(t0, t time.Time) float64 {
		if t.IsZero() {
			return 0
		}
		return ms(t.Sub(t0))
	}
	t0 := time.Now()
	s.Start = t0.UTC().Format(time.RFC3339Nano)
	p, err := createPortAPI(ctx, e.demo, map[string]any{"network_id": n.ID, "name": name})
	if err != nil {
		s.Error = "create port: " + err.Error()
		return s
	}
	s.CreateMs = since(t0, time.Now())
	if err := vmFromPort(v, p, subnet); err != nil {
		s.Error = err.Error()
		return s
	}
	var (
		wg                sync.WaitGroup
		pingAt, activeAt  time.Time
		pingErr, stateErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		pingAt, pingErr = pr.firstReply(ctx, v.Addr.Addr(), pingInterval, vmTimeout)
	}()
	go func() {
		defer wg.Done()
		activeAt, stateErr = waitStatus(ctx, e.admin, v.PortID, "ACTIVE", statusPoll, vmTimeout)
	}()
	fail := func(what string, err error) BringUpSample {
		cancel()
		wg.Wait()
		s.Error = what + ": " + err.Error()
		return s
	}
	if err := bindPortAPI(ctx, e.admin, v.PortID, host); err != nil {
		return fail("bind", err)
	}
	s.BoundMs = since(t0, time.Now())
	tapAt, err := plugVM(v)
	if err != nil {
		return fail("plug", err)
	}
	s.PluggedMs, s.TapMs = since(t0, time.Now()), since(t0, tapAt)
	_, wiredAt, wiredErr := w.waitWired(ctx, []string{v.tap()}, vmTimeout)
	wg.Wait()
	s.WiredMs, s.ActiveMs, s.PingMs = since(t0, wiredAt), since(t0, activeAt), since(t0, pingAt)
	if err := errors.Join(wiredErr, stateErr, pingErr); err != nil {
		s.Error = err.Error()
	}
	return s
}

// newVM creates a port on the network as the project, binds it to the host,
// plugs the VM and waits until the port is ACTIVE.
func (e *env) newVM(ctx context.Context, name, host string, n benchNet, subnet netip.Prefix) (*dpVM, error) {
	v := &dpVM{Name: name, NS: e.prefix + "-" + name, Host: host, HostNS: e.hostNS[host], MTU: n.MTU}
	p, err := createPortAPI(ctx, e.demo, map[string]any{"network_id": n.ID, "name": name})
	if err != nil {
		return nil, fmt.Errorf("create port of %s: %w", name, err)
	}
	if err := vmFromPort(v, p, subnet); err != nil {
		return nil, err
	}
	if err := bindPortAPI(ctx, e.admin, v.PortID, host); err != nil {
		return nil, err
	}
	if _, err := plugVM(v); err != nil {
		return nil, err
	}
	if _, err := waitStatus(ctx, e.admin, v.PortID, "ACTIVE", 50*time.Millisecond, vmTimeout); err != nil {
		return nil, err
	}
	return v, nil
}
