// Package agent is vland's host agent: it follows the host's view from the
// server (list, then watch), converges the kernel to it with the data-plane
// packages, and reports heartbeats and port wiring back. It is
// level-triggered: every reconcile compares the whole desired state with the
// kernel, so a lost event, a restart or a half-applied change is repaired by
// the next one, and a restart disturbs nothing that is already right.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/dhcp"
	"github.com/vland/vland/internal/dataplane/dns"
	"github.com/vland/vland/internal/dataplane/l2"
	"github.com/vland/vland/internal/dataplane/qdhcp"
	"github.com/vland/vland/internal/dataplane/router"
	"github.com/vland/vland/internal/dataplane/secgroup"
)

// Config is an agent's configuration.
type Config struct {
	Host   string
	Server string
	Token  string
	// NetNS is the namespace whose data plane the agent manages ("" = its own).
	NetNS             string
	LocalIP           netip.Addr
	InterfaceMappings map[string]string
	Roles             []string
	AvailabilityZone  string
	// NamespacePrefix goes before the names of the namespaces the agent
	// creates (qdhcp-, qrouter-), so dev clusters on one machine never
	// collide; production agents leave it empty and use Neutron's names.
	NamespacePrefix string
	ReportInterval  time.Duration
	// DHCPLeaseTime is the lease the agent's DHCP servers offer: 0 means
	// 24 hours (Neutron's dhcp_lease_duration), negative an infinite lease.
	DHCPLeaseTime time.Duration
	// DNSDomain is the domain handed out by DHCP (option 15); empty means
	// "openstacklocal".
	DNSDomain string
	// DNSUpstreams are the resolvers ("ip" or "ip:port") the agent's DNS
	// servers forward names outside the network to; none means such names
	// are refused.
	DNSUpstreams []string
	// RouterMetadata and IsolatedMetadata switch the metadata service on
	// for networks behind routers and for networks without one (network
	// hosts only).
	RouterMetadata, IsolatedMetadata bool
	Logger                           *slog.Logger
}

// Agent is a running host agent.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	client *Client
	l2     *l2.Manager
	qdhcp  *qdhcp.Manager
	dns    *dns.Manager
	l3     *router.Manager   // nil: the host has no network role
	fw     *secgroup.Manager // nil: the firewall could not be set up (logged)
	meta   *metadataService  // nil: not a network host, or metadata off
	ras    advertisers       // router interfaces' RAs
	zones  zoneMap
	start  time.Time
	dhcp   dhcpConfig
	// dhcpNetworks counts the networks whose DHCP service was ready after
	// the last reconcile, for the heartbeat.
	dhcpNetworks atomic.Int64

	mu       sync.Mutex
	rev      int64
	networks map[string]agentapi.Network
	subnets  map[string]agentapi.Subnet
	ports    map[string]agentapi.Port
	routers  map[string]agentapi.Router
	groups   map[string]agentapi.SecurityGroup
	agroups  map[string]agentapi.AddressGroup
	inst     map[string]agentapi.Instance
	synced   bool // the first list has been applied

	kick     chan struct{} // wakes the reconciler
	reported map[string]string
}

// New prepares an agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = 10 * time.Second
	}
	if cfg.Host == "" {
		return nil, errors.New("agent needs a host name")
	}
	log := cfg.Logger.With("host", cfg.Host)
	m, err := l2.New(cfg.NetNS, l2.Options{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	q, err := qdhcp.New(cfg.NetNS, qdhcp.Options{Prefix: cfg.NamespacePrefix, Logger: log})
	if err != nil {
		m.Close()
		return nil, err
	}
	var l3 *router.Manager
	if slices.Contains(cfg.Roles, "network") {
		if l3, err = router.NewManager(router.Options{HostNS: cfg.NetNS, NamespacePrefix: cfg.NamespacePrefix, Logger: log}); err != nil {
			q.Close()
			m.Close()
			return nil, err
		}
	}
	var meta *metadataService
	if l3 != nil && (cfg.RouterMetadata || cfg.IsolatedMetadata) {
		if meta, err = newMetadataService(log); err != nil {
			l3.Close()
			q.Close()
			m.Close()
			return nil, err
		}
	}
	fw, err := newFirewall(cfg.NetNS, log)
	if err != nil {
		// Without a firewall ports would pass unfiltered: refuse to run.
		if l3 != nil {
			l3.Close()
		}
		q.Close()
		m.Close()
		return nil, err
	}
	return &Agent{
		cfg: cfg, log: log, client: NewClient(cfg.Server, cfg.Host, cfg.Token), l2: m, qdhcp: q, l3: l3, fw: fw,
		dns:   dns.NewManager(dns.ManagerOptions{Upstreams: cfg.DNSUpstreams, Logger: log}),
		dhcp:  dhcpConfig{LeaseTime: cfg.DHCPLeaseTime, Domain: normalizeDomain(cfg.DNSDomain)},
		start: time.Now().UTC(), networks: map[string]agentapi.Network{}, subnets: map[string]agentapi.Subnet{}, ports: map[string]agentapi.Port{},
		routers: map[string]agentapi.Router{}, groups: map[string]agentapi.SecurityGroup{}, agroups: map[string]agentapi.AddressGroup{},
		inst: map[string]agentapi.Instance{}, meta: meta,
		kick: make(chan struct{}, 1), reported: map[string]string{}, ras: advertisers{log: log},
	}, nil
}

// Close stops the agent's DNS and DHCP servers and releases its netlink
// handles; the data plane (namespaces and links) stays as it is, for the
// next agent.
func (a *Agent) Close() error {
	errs := []error{a.dns.Close(), a.qdhcp.Close(), a.l2.Close(), a.fw.Close()}
	if a.meta != nil {
		errs = append(errs, a.meta.close())
	}
	errs = append(errs, a.ras.stop())
	if a.l3 != nil {
		errs = append(errs, a.l3.Close())
	}
	return errors.Join(errs...)
}

// Run follows the server and converges the host until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	links, err := l2.WatchLinks(ctx, a.cfg.NetNS)
	if err != nil {
		return fmt.Errorf("watch links: %w", err)
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); a.follow(ctx) }()
	go func() { defer wg.Done(); a.reconcileLoop(ctx) }()
	go func() { defer wg.Done(); a.heartbeatLoop(ctx) }()
	for ev := range links {
		if ev.Resync || strings.HasPrefix(ev.Name, l2.TapPrefix) {
			a.trigger()
		}
	}
	wg.Wait()
	return ctx.Err()
}

func (a *Agent) trigger() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// follow lists the view and watches it, listing again whenever the watch
// cannot resume; failures back off up to a few seconds.
func (a *Agent) follow(ctx context.Context) {
	backoff := 100 * time.Millisecond
	listed := false
	for ctx.Err() == nil {
		if !listed {
			v, err := a.client.View(ctx)
			if err != nil {
				a.log.Warn("listing the host view failed", "err", err)
				sleep(ctx, &backoff)
				continue
			}
			a.replace(v)
			listed = true
		}
		a.mu.Lock()
		since := a.rev
		a.mu.Unlock()
		err := a.client.Watch(ctx, since, a.apply)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrGone) {
			a.log.Info("watch cannot resume; listing again", "since", since)
			listed = false
			continue
		}
		a.log.Warn("watch broke; resuming", "since", since, "err", err)
		sleep(ctx, &backoff)
	}
}

func sleep(ctx context.Context, d *time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(*d):
	}
	*d = min(*d*2, 5*time.Second)
}

// replace installs a freshly listed view.
func (a *Agent) replace(v agentapi.View) {
	a.mu.Lock()
	a.rev = v.Revision
	a.networks = make(map[string]agentapi.Network, len(v.Networks))
	for _, n := range v.Networks {
		a.networks[n.ID] = n
	}
	a.subnets = make(map[string]agentapi.Subnet, len(v.Subnets))
	for _, sn := range v.Subnets {
		a.subnets[sn.ID] = sn
	}
	a.ports = make(map[string]agentapi.Port, len(v.Ports))
	for _, p := range v.Ports {
		a.ports[p.ID] = p
	}
	a.routers = byID(v.Routers, func(r agentapi.Router) string { return r.ID })
	a.groups = byID(v.SecurityGroups, func(g agentapi.SecurityGroup) string { return g.ID })
	a.agroups = byID(v.AddressGroups, func(g agentapi.AddressGroup) string { return g.ID })
	a.inst = byID(v.Instances, func(in agentapi.Instance) string { return in.DeviceID })
	a.synced = true
	a.mu.Unlock()
	a.trigger()
}

// apply applies one watch event.
func (a *Agent) apply(ev agentapi.Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch ev.Type {
	case agentapi.EventBookmark:
		a.rev = max(a.rev, ev.Revision)
		a.trigger()
		return nil
	case agentapi.EventDelete:
		switch ev.Kind {
		case agentapi.KindNetwork:
			delete(a.networks, ev.ID)
		case agentapi.KindPort:
			delete(a.ports, ev.ID)
		case agentapi.KindSubnet:
			delete(a.subnets, ev.ID)
		case agentapi.KindRouter:
			delete(a.routers, ev.ID)
		case agentapi.KindSecurityGroup:
			delete(a.groups, ev.ID)
		case agentapi.KindAddressGroup:
			delete(a.agroups, ev.ID)
		case agentapi.KindInstance:
			delete(a.inst, ev.ID)
		}
	case agentapi.EventPut:
		if err := a.put(ev); err != nil {
			return err
		}
	default:
		return nil
	}
	a.rev = max(a.rev, ev.Revision)
	return nil
}

func (a *Agent) put(ev agentapi.Event) error {
	switch ev.Kind {
	case agentapi.KindNetwork:
		var n agentapi.Network
		if err := jsonUnmarshal(ev.Object, &n); err != nil {
			return err
		}
		a.networks[n.ID] = n
	case agentapi.KindPort:
		var p agentapi.Port
		if err := jsonUnmarshal(ev.Object, &p); err != nil {
			return err
		}
		a.ports[p.ID] = p
	case agentapi.KindSubnet:
		var sn agentapi.Subnet
		if err := jsonUnmarshal(ev.Object, &sn); err != nil {
			return err
		}
		a.subnets[sn.ID] = sn
	case agentapi.KindRouter:
		return putJSON(ev.Object, a.routers, func(r agentapi.Router) string { return r.ID })
	case agentapi.KindSecurityGroup:
		return putJSON(ev.Object, a.groups, func(g agentapi.SecurityGroup) string { return g.ID })
	case agentapi.KindAddressGroup:
		return putJSON(ev.Object, a.agroups, func(g agentapi.AddressGroup) string { return g.ID })
	case agentapi.KindInstance:
		return putJSON(ev.Object, a.inst, func(in agentapi.Instance) string { return in.DeviceID })
	}
	return nil
}

// byID indexes a list by its objects' IDs.
func byID[T any](list []T, id func(T) string) map[string]T {
	m := make(map[string]T, len(list))
	for _, x := range list {
		m[id(x)] = x
	}
	return m
}

// putJSON decodes an object into m under its ID.
func putJSON[T any](b []byte, m map[string]T, id func(T) string) error {
	var x T
	if err := jsonUnmarshal(b, &x); err != nil {
		return err
	}
	m[id(x)] = x
	return nil
}

// reconcileLoop converges the kernel whenever something may have changed.
func (a *Agent) reconcileLoop(ctx context.Context) {
	// A periodic pass repairs what nobody reported (a link changed by hand).
	resync := time.NewTicker(60 * time.Second)
	defer resync.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		case <-resync.C:
		}
		a.reconcile(ctx)
	}
}

// desired is what the host should be, in the data-plane packages' terms.
type desired struct {
	l2 l2.Desired
	// taps maps the tap of every local port to the port's ID.
	taps map[string]string
	// dhcp are the DHCP services of the host; dhcpPorts maps the ID of
	// every local DHCP port to its network's.
	dhcp      []qdhcp.Service
	dhcpPorts map[string]string
	// dns are the DNS services that go with the DHCP services.
	dns []dns.Service
	// routers are the routers of the host; routerPorts maps the ID of
	// every local router port to its router's.
	routers     router.Desired
	routerPorts map[string]string
	// ras are the router interfaces that send RAs.
	ras []raWant
	// meta is the metadata index and listeners of this pass (nil: off).
	meta      *metaIndex
	metaWants []metaWant
	firewall  secgroup.Desired
	synced    bool
}

// desired translates the host view into the data plane's terms. Every local
// port's tap, DHCP ports' included, is in the L2 plan: the L2 reconcile
// enslaves the host end of a DHCP port's veth pair like a VM's tap.
func (a *Agent) desired() desired {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := desired{
		dhcp:      dhcpServices(a.networks, a.subnets, a.ports, a.dhcp),
		dhcpPorts: map[string]string{},
		synced:    a.synced,
	}
	var metaNets []string
	if a.meta != nil && a.cfg.IsolatedMetadata {
		metaNets = dhcpMetadata(out.dhcp, a.ports)
	}
	out.dns = dnsServices(a.cfg.NamespacePrefix, out.dhcp, a.subnets, a.ports, a.dhcp)
	var metaPort uint16
	if a.meta != nil && a.cfg.RouterMetadata {
		metaPort = MetadataPort
	}
	out.routers = routerDesired(a.routers, a.networks, a.subnets, a.ports, metaPort)
	if a.l3 != nil {
		out.ras = routerAdvertisements(a.cfg.NamespacePrefix, a.routers, a.networks, a.subnets, a.ports)
	}
	if a.meta != nil {
		routers, served := a.routers, out.routers
		if !a.cfg.RouterMetadata {
			routers, served = nil, router.Desired{}
		}
		out.meta = newMetaIndex(viewMaps{networks: a.networks, subnets: a.subnets, ports: a.ports, routers: routers, instances: a.inst, groups: a.groups}, metaNets)
		out.metaWants = metadataWants(a.cfg.NamespacePrefix, served, metaNets)
	}
	out.routerPorts = map[string]string{}
	for _, r := range out.routers.Routers {
		for _, itf := range r.Interfaces {
			out.routerPorts[itf.PortID] = r.ID
		}
		if r.Gateway != nil {
			out.routerPorts[r.Gateway.PortID] = r.ID
		}
	}
	out.firewall = firewallDesired(a.groups, a.agroups, a.ports, &a.zones)
	for _, p := range a.ports {
		if p.Local && p.DeviceOwner == OwnerDHCP {
			out.dhcpPorts[p.ID] = p.NetworkID
		}
	}
	d := l2.Desired{LocalIP: a.cfg.LocalIP}
	taps := map[string]string{} // tap -> port id
	byNet := map[string]*l2.Network{}
	for _, id := range slices.Sorted(maps.Keys(a.networks)) {
		n := a.networks[id]
		d.Networks = append(d.Networks, l2.Network{
			ID: n.ID, Type: n.Type, SegmentationID: n.SegmentationID, MTU: n.MTU,
			PhysicalInterface: a.cfg.InterfaceMappings[n.PhysicalNetwork],
		})
	}
	for i := range d.Networks {
		byNet[d.Networks[i].ID] = &d.Networks[i]
	}
	for _, id := range slices.Sorted(maps.Keys(a.ports)) {
		p := a.ports[id]
		n := byNet[p.NetworkID]
		if n == nil {
			continue
		}
		if p.Local {
			tap := l2.TapName(p.ID)
			n.Taps = append(n.Taps, tap)
			taps[tap] = p.ID
			continue
		}
		mac, err := net.ParseMAC(p.MACAddress)
		if err != nil || !p.VTEP.IsValid() || p.VTEP == a.cfg.LocalIP {
			continue
		}
		r := l2.Remote{MAC: mac, VTEP: p.VTEP}
		for _, f := range p.FixedIPs {
			r.IPs = append(r.IPs, f.IPAddress)
		}
		n.Remotes = append(n.Remotes, r)
	}
	out.l2, out.taps = d, taps
	return out
}

// reconcile converges once and reports what changed for local ports.
//
// DHCP comes first: running servers get their new tables at once, and a new
// DHCP port's veth pair exists before the L2 reconcile, which then enslaves
// its tap in the same pass. On an agent restart this is also where the
// servers start again, before the L2 plan is even read.
func (a *Agent) reconcile(ctx context.Context) {
	want := a.desired()
	if !want.synced {
		// Before the first list the agent knows nothing: touching the
		// kernel now could tear down what is right.
		return
	}
	taps := want.taps
	qres, err := a.qdhcp.Reconcile(ctx, want.dhcp)
	if err != nil {
		a.log.Error("DHCP reconcile failed", "err", err)
	} else if err := qres.Err(); err != nil {
		a.log.Warn("DHCP reconcile incomplete; retrying soon", "err", err)
		time.AfterFunc(2*time.Second, a.trigger)
	}
	ready := 0
	for _, st := range qres.Services {
		if st.Ready {
			ready++
		}
	}
	// DNS servers run next to the DHCP services that are ready (their
	// namespaces exist and hold the DHCP port's addresses).
	var dnsWant []dns.Service
	for _, s := range want.dns {
		if qres.Services[s.NetworkID].Ready {
			dnsWant = append(dnsWant, s)
		}
	}
	if err := a.dns.Reconcile(dnsWant); err != nil {
		a.log.Warn("DNS reconcile incomplete; retrying soon", "err", err)
		time.AfterFunc(2*time.Second, a.trigger)
	}
	a.dhcpNetworks.Store(int64(ready))
	// Routers next, for the same reason as DHCP: their veth pairs must exist
	// before the L2 reconcile enslaves their taps.
	var rres router.Result
	if a.l3 != nil {
		if rres, err = a.l3.Reconcile(ctx, want.routers); err != nil {
			a.log.Error("router reconcile failed", "err", err)
		} else if err := rres.Err(); err != nil {
			a.log.Warn("router reconcile incomplete; retrying soon", "err", err)
			time.AfterFunc(2*time.Second, a.trigger)
		}
	}
	if a.l3 != nil {
		if err := a.ras.sync(want.ras); err != nil {
			a.log.Warn("router advertisements incomplete; retrying soon", "err", err)
			time.AfterFunc(2*time.Second, a.trigger)
		}
	}
	if a.meta != nil {
		a.meta.index.Store(want.meta)
		if err := a.meta.sync(want.metaWants); err != nil {
			a.log.Warn("metadata listeners incomplete; retrying soon", "err", err)
			time.AfterFunc(2*time.Second, a.trigger)
		}
	}
	res, err := a.l2.Reconcile(ctx, want.l2)
	if err != nil {
		a.log.Error("reconcile failed", "err", err)
	} else if err := res.Err(); err != nil {
		a.log.Warn("reconcile incomplete", "err", err)
	}
	if fres, err := a.fw.Reconcile(want.firewall); err != nil {
		a.log.Error("firewall reconcile failed; retrying soon", "err", err)
		time.AfterFunc(2*time.Second, a.trigger)
	} else if len(fres.Skipped) > 0 {
		a.log.Warn("firewall rules skipped", "skipped", fres.Skipped)
	}
	statuses := map[string]string{}
	for tap, id := range taps {
		st := "DOWN"
		if ts, ok := res.Taps[tap]; ok && ts.Wired {
			st = "ACTIVE"
		}
		// A DHCP port is ACTIVE once its tap is wired and its namespace
		// and server are ready.
		if netID, ok := want.dhcpPorts[id]; ok {
			if qs, ok := qres.Services[netID]; !ok || !qs.Ready || qs.Tap != tap {
				st = "DOWN"
			}
		}
		// A router port is ACTIVE once its router's namespace is ready.
		if rid, ok := want.routerPorts[id]; ok && !rres.Routers[rid].Ready {
			st = "DOWN"
		}
		if a.reported[id] != st {
			statuses[id] = st
		}
	}
	if len(statuses) == 0 {
		return
	}
	if err := a.client.Report(ctx, agentapi.Status{Agent: a.info(), Ports: statuses}); err != nil {
		a.log.Warn("port status report failed; will retry", "err", err)
		time.AfterFunc(time.Second, a.trigger)
		return
	}
	for id, st := range statuses {
		a.reported[id] = st
	}
	// Forget ports no longer local so a returning one is reported again.
	local := map[string]bool{}
	for _, id := range taps {
		local[id] = true
	}
	for id := range a.reported {
		if !local[id] {
			delete(a.reported, id)
		}
	}
}

// info is the agent's self-description sent with every report.
func (a *Agent) info() agentapi.AgentInfo {
	roles := a.cfg.Roles
	if len(roles) == 0 {
		roles = []string{"compute"}
	}
	return agentapi.AgentInfo{
		Binary: "vland-agent", LocalIP: a.cfg.LocalIP, Roles: roles, StartedAt: a.start.Format(time.RFC3339),
		AvailabilityZone: a.cfg.AvailabilityZone, InterfaceMappings: a.cfg.InterfaceMappings, VLANSupported: a.l2.SupportsVLAN(),
		Configurations: map[string]any{
			"interface_mappings": orEmpty(a.cfg.InterfaceMappings), "tunnel_types": tunnelTypes(a.cfg.LocalIP),
			"l2_population": true, "vlan_supported": a.l2.SupportsVLAN(), "local_ip": ipString(a.cfg.LocalIP),
			"roles": roles, "hostname": hostname(),
			"dhcp_lease_duration": leaseSeconds(a.dhcp.LeaseTime), "dns_domain": a.dhcp.Domain,
			"dhcp_networks": a.dhcpNetworks.Load(),
		},
	}
}

// leaseSeconds is a lease time as Neutron's dhcp_lease_duration: seconds,
// -1 for infinite.
func leaseSeconds(d time.Duration) int64 {
	switch {
	case d < 0:
		return -1
	case d == 0:
		return int64(dhcp.DefaultLeaseTime / time.Second)
	}
	return int64(d / time.Second)
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func tunnelTypes(ip netip.Addr) []string {
	if ip.IsValid() {
		return []string{"vxlan"}
	}
	return []string{}
}

func ipString(ip netip.Addr) string {
	if ip.IsValid() {
		return ip.String()
	}
	return ""
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// heartbeatLoop reports the agent alive every interval.
func (a *Agent) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReportInterval)
	defer t.Stop()
	for {
		if err := a.client.Report(ctx, agentapi.Status{Agent: a.info()}); err != nil && ctx.Err() == nil {
			a.log.Warn("heartbeat failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
