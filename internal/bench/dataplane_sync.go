package bench

import (
	"context"
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/dataplane/l2"
	"github.com/vland/vland/internal/devcluster"
)

// SyncResult is the agent cold-sync phase. Ports are created through the
// API bound to one host (spread over several networks, each with one more
// port bound elsewhere so that its vxlan device has l2population entries);
// the host's agent is killed; each port gets its tap, a veth whose peer lies
// in one scratch namespace (what the agent sees is exactly what `vland dev`
// VMs give it; a namespace per peer would only add 1,000 namespaces for the
// kernel to create and tear down); the bridges and vxlan devices are
// deleted; and a fresh agent is started. Then a warm restart: the agent is
// killed and started again with everything in place but one new port.
type SyncResult struct {
	Host        string `json:"host"`
	Ports       int    `json:"ports"`
	Networks    int    `json:"networks"`
	RemotePorts int    `json:"remote_ports"`
	// Set-up costs: the API creates (with binding) of the ports, and the
	// creation of their taps through netlink.
	PortCreateSeconds float64 `json:"port_create_seconds"`
	TapCreateSeconds  float64 `json:"tap_create_seconds"`
	// RemovedLinks is how many bridges and vxlan devices were deleted before
	// the cold start.
	RemovedLinks int         `json:"removed_links"`
	Cold         SyncMeasure `json:"cold"`
	Warm         SyncMeasure `json:"warm"`
	ActivePollMs float64     `json:"active_poll_ms"`
}

// SyncMeasure is one agent start, timed from the moment it was launched.
type SyncMeasure struct {
	// AliveSeconds: the agent reported alive (GET /v2.0/agents, polled every
	// 200 ms by devcluster).
	AliveSeconds float64 `json:"alive_seconds"`
	// FirstWiredSeconds and AllWiredSeconds: the first and last tap seen
	// enslaved (netlink events in the host's namespace); Wired counts them.
	FirstWiredSeconds float64 `json:"first_wired_seconds"`
	AllWiredSeconds   float64 `json:"all_wired_seconds"`
	Wired             int     `json:"wired"`
	// AllActiveSeconds: every port ACTIVE in the API (polled every
	// ActivePollMs once the kernel side was done, by listing the host's
	// ports still DOWN); Active counts them.
	AllActiveSeconds float64 `json:"all_active_seconds"`
	Active           int     `json:"active"`
	// CPU seconds the new agent and the server used, until all were ACTIVE.
	AgentCPUSeconds  float64 `json:"agent_cpu_seconds"`
	ServerCPUSeconds float64 `json:"server_cpu_seconds"`
	// Warm restart only: link events on links other than the new port's tap
	// and its bridge, changes of the permanent FDB and neighbour entries on
	// the vxlan devices (l2population), and links whose ifindex changed.
	OtherLinkEvents int `json:"other_link_events"`
	// OtherLinkEventLinks names a few of those links, with their counts.
	OtherLinkEventLinks []string `json:"other_link_event_links,omitempty"`
	VXLANEntryChanges   int      `json:"vxlan_entry_changes"`
	Recreated           []string `json:"recreated,omitempty"`
}

const (
	syncTimeout = 120 * time.Second
	// activePoll is how often the API is asked, once the kernel side is
	// done, whether every port is ACTIVE.
	activePoll = 50 * time.Millisecond
)

// syncPort is a port of the cold sync with its tap.
type syncPort struct {
	id, tap string
	mac     net.HardwareAddr
	mtu     int
}

func (d *dataplane) coldSync(ctx context.Context, e *env) (*SyncResult, error) {
	host, hostNS := e.syncHost, e.hostNS[e.syncHost]
	res := &SyncResult{Host: host, Ports: d.opts.Ports, Networks: d.opts.SyncNetworks, ActivePollMs: ms(activePoll)}
	d.progress("cold sync: %d ports on %d networks bound to %s", d.opts.Ports, d.opts.SyncNetworks, host)
	var nets []benchNet
	for i := range d.opts.SyncNetworks {
		n, err := e.newNetwork(ctx, "bench-sync-"+strconv.Itoa(i), fmt.Sprintf("10.%d.0.0/20", 20+i))
		if err != nil {
			return res, err
		}
		nets = append(nets, n)
	}
	t := time.Now()
	ports, err := e.createBound(ctx, nets, d.opts.Ports, host)
	if err != nil {
		return res, err
	}
	res.PortCreateSeconds = time.Since(t).Seconds()
	// One port per network elsewhere: a remote VTEP for l2population.
	if _, err := e.createBound(ctx, nets, len(nets), e.compute[0]); err != nil {
		return res, err
	}
	res.RemotePorts = len(nets)
	d.progress("  %d ports created and bound in %.1f s", len(ports), res.PortCreateSeconds)

	if err := killAgent(e.c, host); err != nil {
		return res, err
	}
	sink := e.prefix + "-sink"
	if err := namedns.Create(sink); err != nil {
		return res, err
	}
	// Peers send nothing (no IPv6 link-local chatter) the bridges could learn.
	for _, k := range []string{"ipv6/conf/default/disable_ipv6", "ipv6/conf/all/disable_ipv6"} {
		if err := setSysctl(sink, k, "1"); err != nil {
			return res, err
		}
	}
	t = time.Now()
	if err := createTaps(hostNS, sink, ports, "p"); err != nil {
		return res, err
	}
	res.TapCreateSeconds = time.Since(t).Seconds()
	d.progress("  %d taps (veth pairs, peers in %s) created in %.2f s", len(ports), sink, res.TapCreateSeconds)
	if res.RemovedLinks, err = removeOwnedLinks(hostNS); err != nil {
		return res, err
	}
	w, err := watchNS(hostNS)
	if err != nil {
		return res, err
	}
	defer w.close()
	taps := make([]string, len(ports))
	ids := map[string]bool{}
	for i, p := range ports {
		taps[i], ids[p.id] = p.tap, true
	}

	// Cold start. No port may be ACTIVE yet: their taps appeared while the
	// agent was dead.
	if n, err := e.activeOn(ctx, host, ids); err != nil || n > 0 {
		return res, fmt.Errorf("before the cold start %d ports are ACTIVE already (%v)", n, err)
	}
	w.reset()
	coldStart := time.Now()
	res.Cold, err = d.startAgent(ctx, e, w, taps, func(ctx context.Context) (int, error) { return e.activeOn(ctx, host, ids) }, len(ports))
	d.progress("  cold: all %d taps wired after %.2f s, all ACTIVE after %.2f s (agent alive after %.2f s)",
		res.Cold.Wired, res.Cold.AllWiredSeconds, res.Cold.AllActiveSeconds, res.Cold.AliveSeconds)
	if err != nil {
		return res, fmt.Errorf("cold start: %w", err)
	}
	if res.Cold.VXLANEntryChanges, err = vxlanEntryChanges(w, hostNS); err != nil {
		return res, err
	}

	// Warm restart, with one new port so that the end of the agent's first
	// pass shows in the API. devcluster knows the new agent has reported
	// by its started_at, in whole seconds: start it in a later second.
	time.Sleep(time.Until(coldStart.Add(1100 * time.Millisecond)))
	marker, err := e.createBound(ctx, nets[:1], 1, host)
	if err != nil {
		return res, err
	}
	before, err := linkIndexes(hostNS)
	if err != nil {
		return res, err
	}
	if err := killAgent(e.c, host); err != nil {
		return res, err
	}
	if err := createTaps(hostNS, sink, marker, "m"); err != nil {
		return res, err
	}
	w.reset()
	markerTap, markerBridge := marker[0].tap, l2.BridgeName(nets[0].ID)
	res.Warm, err = d.startAgent(ctx, e, w, []string{markerTap}, func(ctx context.Context) (int, error) {
		st, err := portStatus(ctx, e.admin, marker[0].id)
		if err != nil || st != "ACTIVE" {
			return 0, err
		}
		return 1, nil
	}, 1)
	if err != nil {
		return res, fmt.Errorf("warm restart: %w", err)
	}
	time.Sleep(500 * time.Millisecond) // let any late change show
	evs, _, lost := w.counts()
	if lost != nil {
		return res, fmt.Errorf("warm restart: link events lost: %w", lost)
	}
	after, err := linkIndexes(hostNS)
	if err != nil {
		return res, err
	}
	for _, name := range slices.Sorted(maps.Keys(evs)) {
		if n := evs[name]; name != markerTap && name != markerBridge {
			res.Warm.OtherLinkEvents += n
			if len(res.Warm.OtherLinkEventLinks) < 5 {
				res.Warm.OtherLinkEventLinks = append(res.Warm.OtherLinkEventLinks, fmt.Sprintf("%s:%d", name, n))
			}
		}
	}
	if res.Warm.VXLANEntryChanges, err = vxlanEntryChanges(w, hostNS); err != nil {
		return res, err
	}
	for name, idx := range before {
		if after[name] != idx {
			res.Warm.Recreated = append(res.Warm.Recreated, name)
		}
	}
	slices.Sort(res.Warm.Recreated)
	d.progress("  warm: new port wired after %.2f s, ACTIVE after %.2f s; %d other link events, %d FDB/neighbour changes on vxlan devices, %d links recreated",
		res.Warm.AllWiredSeconds, res.Warm.AllActiveSeconds, res.Warm.OtherLinkEvents, res.Warm.VXLANEntryChanges, len(res.Warm.Recreated))
	return res, nil
}

// startAgent starts the host's agent afresh and times it until the taps are
// enslaved (from the watch) and active reports want ports ACTIVE.
func (d *dataplane) startAgent(ctx context.Context, e *env, w *linkWatch, taps []string, active func(context.Context) (int, error), want int) (SyncMeasure, error) {
	var m SyncMeasure
	host := e.syncHost
	st := e.c.State()
	srv0 := procCPU(st.Server.PID)
	t0 := time.Now()
	aliveErr := make(chan error, 1)
	go func() {
		err := e.c.RestartAgent(ctx, host)
		m.AliveSeconds = time.Since(t0).Seconds()
		aliveErr <- err
	}()
	n, last, werr := w.waitWired(ctx, taps, syncTimeout)
	m.Wired = n
	if n > 0 {
		m.AllWiredSeconds = last.Sub(t0).Seconds()
		m.FirstWiredSeconds = w.firstWired(taps).Sub(t0).Seconds()
	}
	var aerr error
	deadline := time.Now().Add(syncTimeout)
	for {
		got, err := active(ctx)
		if err == nil {
			m.Active = got
			if got >= want {
				m.AllActiveSeconds = time.Since(t0).Seconds()
				break
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			aerr = fmt.Errorf("%d of %d ports ACTIVE within %s (last error: %v)", m.Active, want, syncTimeout, err)
			break
		}
		time.Sleep(activePoll)
	}
	st = e.c.State()
	for _, h := range st.Hosts {
		if h.Name == host {
			m.AgentCPUSeconds = procCPU(h.Agent.PID)
		}
	}
	m.ServerCPUSeconds = procCPU(st.Server.PID) - srv0
	rerr := <-aliveErr
	return m, errors.Join(werr, aerr, rerr)
}

// createBound creates n ports spread round-robin over the networks, in the
// demo project, bound to host, with a few concurrent clients.
func (e *env) createBound(ctx context.Context, nets []benchNet, n int, host string) ([]syncPort, error) {
	ports := make([]syncPort, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				nw := nets[i%len(nets)]
				p, err := createPortAPI(ctx, e.admin, map[string]any{"network_id": nw.ID, "project_id": e.projectID,
					"binding:host_id": host, "name": "sync-" + strconv.Itoa(i)})
				if err == nil && p.VIFType != "bridge" {
					err = fmt.Errorf("port %s bound to %s has vif_type %q", p.ID, host, p.VIFType)
				}
				if err != nil {
					errs[i] = err
					continue
				}
				mac, err := net.ParseMAC(p.MAC)
				ports[i], errs[i] = syncPort{id: p.ID, tap: l2.TapName(p.ID), mac: mac, mtu: nw.MTU}, err
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("create ports bound to %s: %w", host, err)
	}
	return ports, nil
}

// activeOn counts the ports of ids that the API shows ACTIVE on host. It
// first asks which are still DOWN, an answer that shrinks as they turn
// ACTIVE, and lists the ACTIVE ones only once none is: the polling itself
// loads the server it measures.
func (e *env) activeOn(ctx context.Context, host string, ids map[string]bool) (int, error) {
	list := func(status string) (int, error) {
		q := url.Values{"binding:host_id": {host}, "status": {status}, "fields": {"id"}}
		var out struct {
			Ports []struct {
				ID string `json:"id"`
			} `json:"ports"`
		}
		if err := e.admin.Do(ctx, http.MethodGet, "/v2.0/ports?"+q.Encode(), nil, &out); err != nil {
			return 0, err
		}
		n := 0
		for _, p := range out.Ports {
			if ids[p.ID] {
				n++
			}
		}
		return n, nil
	}
	down, err := list("DOWN")
	if err != nil || down > 0 {
		return len(ids) - down, err
	}
	return list("ACTIVE")
}

// killAgent kills a host's agent (SIGKILL, by its recorded pid and start
// time) and waits until it is gone.
func killAgent(c *devcluster.Cluster, host string) error {
	for _, h := range c.State().Hosts {
		if h.Name != host {
			continue
		}
		if !h.Agent.Running() {
			return nil
		}
		if err := syscall.Kill(h.Agent.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("kill the agent of %s: %w", host, err)
		}
		for deadline := time.Now().Add(5 * time.Second); h.Agent.Running(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				return fmt.Errorf("the agent of %s (pid %d) does not die", host, h.Agent.PID)
			}
		}
		return nil
	}
	return fmt.Errorf("cluster has no host %s", host)
}

// createTaps creates each port's tap in the host namespace as a veth pair
// whose peer (named peerPrefix<i>, with the port's MAC) is in sink, both up
// and at the network's MTU, as a hypervisor would before the agent runs.
func createTaps(hostNS, sink string, ports []syncPort, peerPrefix string) error {
	h, err := namedns.Handle(hostNS)
	if err != nil {
		return err
	}
	defer h.Close()
	sinkFd, err := netns.GetFromName(sink)
	if err != nil {
		return err
	}
	defer sinkFd.Close()
	sh, err := netlink.NewHandleAt(sinkFd)
	if err != nil {
		return err
	}
	defer sh.Close()
	for i, p := range ports {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.HardwareAddr, la.Flags = p.tap, p.mtu, tapMAC(p.mac), net.FlagUp
		veth := &netlink.Veth{LinkAttrs: la, PeerName: peerPrefix + strconv.Itoa(i), PeerHardwareAddr: p.mac, PeerNamespace: netlink.NsFd(sinkFd)}
		if err := h.LinkAdd(veth); err != nil {
			return fmt.Errorf("create %s: %w", p.tap, err)
		}
	}
	links, err := listLinks(sh)
	if err != nil {
		return err
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, peerPrefix) && l.Attrs().Flags&net.FlagUp == 0 {
			if err := sh.LinkSetUp(l); err != nil {
				return fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
			}
		}
	}
	return nil
}

// removeOwnedLinks deletes the bridges (brq*) and vxlan devices (vxlan-*)
// of a host namespace: the state before an agent's very first start.
func removeOwnedLinks(ns string) (int, error) {
	h, err := namedns.Handle(ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	links, err := listLinks(h)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range links {
		name := l.Attrs().Name
		if (strings.HasPrefix(name, l2.BridgePrefix) && l.Type() == "bridge") || (strings.HasPrefix(name, l2.VXLANPrefix) && l.Type() == "vxlan") {
			if err := h.LinkDel(l); err != nil {
				return n, fmt.Errorf("delete %s: %w", name, err)
			}
			n++
		}
	}
	return n, nil
}

// linkIndexes maps the agent's links of a namespace (bridges, vxlan
// devices, taps) to their ifindexes.
func linkIndexes(ns string) (map[string]int, error) {
	h, err := namedns.Handle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := listLinks(h)
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, l := range links {
		name := l.Attrs().Name
		if strings.HasPrefix(name, l2.BridgePrefix) || strings.HasPrefix(name, l2.VXLANPrefix) || strings.HasPrefix(name, l2.TapPrefix) {
			m[name] = l.Attrs().Index
		}
	}
	return m, nil
}

// vxlanEntryChanges sums the permanent FDB and neighbour changes the watch
// saw since its reset on the namespace's vxlan devices.
func vxlanEntryChanges(w *linkWatch, ns string) (int, error) {
	_, perm, lost := w.counts()
	if lost != nil {
		return 0, fmt.Errorf("events lost: %w", lost)
	}
	idx, err := linkIndexes(ns)
	if err != nil {
		return 0, err
	}
	n := 0
	for name, i := range idx {
		if strings.HasPrefix(name, l2.VXLANPrefix) {
			n += perm[i]
		}
	}
	return n, nil
}
