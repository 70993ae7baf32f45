package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	mnl "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/dataplane/nlutil"
	"github.com/vland/vland/internal/namedns"
)

// Manager converges the router namespaces of one host. Its methods are safe
// for concurrent use; reconciles are serialized.
type Manager struct {
	prefix string
	hostNS netns.NsHandle
	h      *netlink.Handle // in the host's namespace
	log    *slog.Logger

	// bg carries the background gratuitous ARP repeats; Close stops them.
	bg     context.Context
	stopBG context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // serializes Reconcile and Close
	closed bool

	stateMu sync.Mutex // guards fips, swept and checked, which routers update in parallel
	// fips is each router's floating IP mapping as last applied, to
	// announce re-associations; empty after a restart, when every floating
	// IP of a table that changes is announced again.
	fips map[string]map[netip.Addr]netip.Addr
	// swept has the namespace (inode) whose stale NAT flows were deleted
	// since this Manager started, by router: a restarted agent sweeps each
	// router once, in case its predecessor died between a table change and
	// the sweep.
	swept map[string]uint64
	// checked has, by router, the namespace (inode) whose sysctls were
	// last verified and when.
	checked map[string]sysctlCheck
}

// sysctlCheck is when a namespace's sysctls were last verified.
type sysctlCheck struct {
	inode uint64
	at    time.Time
}

// sysctlRecheck bounds how long a router namespace's sysctls go unverified.
// Reading them is the costliest part of a reconcile that changes nothing
// (/proc lookups), and they change only by hand, so they are verified when
// the Manager first sees a namespace, when it creates devices in it, and
// then at this interval: a sysctl changed by hand is repaired within it.
const sysctlRecheck = time.Minute

// NewManager returns a Manager for the host namespace o.HostNS, which it
// holds open until Close.
func NewManager(o Options) (*Manager, error) {
	if strings.ContainsAny(o.NamespacePrefix, "/\x00") {
		return nil, fmt.Errorf("namespace prefix %q cannot start a file name", o.NamespacePrefix)
	}
	h, err := namedns.Open(o.HostNS)
	if err != nil {
		return nil, err
	}
	nh, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink handle in namespace %q: %w", o.HostNS, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	bg, stop := context.WithCancel(context.Background())
	return &Manager{prefix: o.NamespacePrefix, hostNS: h, h: nh, log: log, bg: bg, stopBG: stop,
		fips: map[string]map[netip.Addr]netip.Addr{}, swept: map[string]uint64{},
		checked: map[string]sysctlCheck{}}, nil
}

// Close stops the background announcements and releases the Manager's
// handles. Namespaces, links and tables stay as they are, forwarding, for
// the next agent to find.
func (m *Manager) Close() error {
	// Under m.mu: a Reconcile in progress finishes (and adds its
	// announcements) before the wait for them starts.
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.stopBG()
	m.wg.Wait()
	m.h.Close()
	return m.hostNS.Close()
}

// Result is what one Reconcile achieved.
type Result struct {
	// Routers has the outcome of every wanted router, by ID.
	Routers map[string]Status
	// Stale joins the failures to remove namespaces no router wants.
	Stale error
	// Changes are the kernel modifications made, in order; empty when the
	// kernel was right.
	Changes []string
}

// Status is the outcome for one router.
type Status struct {
	Namespace string // <prefix>qrouter-<router id>
	// Ready: the namespace, its devices, addresses, routes, sysctls and NAT
	// table are as the router wants, except for the Skipped items.
	Ready bool
	// Err is what kept the router from Ready.
	Err error
	// Skipped are the items that were left out, each with its reason: a
	// floating IP or forward that cannot be served, a route the kernel
	// refused. They do not make the router not Ready.
	Skipped []error
	// FloatingIPErrs has, by floating address, the floating IPs that are
	// not served and why (Neutron's floating IP status ERROR).
	FloatingIPErrs map[netip.Addr]error
	// FlushedFlows counts the conntrack entries deleted because their NAT
	// no longer holds.
	FlushedFlows uint
}

// Err joins the errors of every router and of the cleanup.
func (r Result) Err() error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(r.Routers)) {
		if err := r.Routers[id].Err; err != nil {
			errs = append(errs, fmt.Errorf("router %s: %w", id, err))
		}
	}
	if r.Stale != nil {
		errs = append(errs, fmt.Errorf("cleanup: %w", r.Stale))
	}
	return errors.Join(errs...)
}

// Reconcile makes the host's router namespaces what d describes and removes
// the namespaces of this Manager's prefix that no router wants. It reads
// the kernel and changes only what differs. Addresses leave before any
// arrive: first the namespaces of routers no longer here go, then every
// router gives up the qg- addresses it no longer serves, and only then are
// the routers built, so that a floating IP moving between routers is never
// held by two at once. One router's failure does not stop the others; the
// returned error is reserved for a done ctx.
func (m *Manager) Reconcile(ctx context.Context, d Desired) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := Result{Routers: map[string]Status{}}
	if m.closed {
		return res, errors.New("router manager is closed")
	}
	want := map[string]Router{}
	var dups []string
	for _, rt := range d.Routers {
		if _, ok := want[rt.ID]; ok {
			dups = append(dups, rt.ID)
			continue
		}
		want[rt.ID] = rt
	}
	// Each router's work runs on its own run, several at once; their
	// changes are joined in router order at the end.
	cleanup := &run{m: m}
	res.Stale = cleanup.cleanup(ctx, want)
	if res.Stale != nil {
		m.log.Warn("stale router namespaces not removed", "err", res.Stale)
	}

	ids := slices.Sorted(maps.Keys(want))
	plans := map[string]*plan{}
	for _, id := range ids {
		p, err := newPlan(m.prefix, want[id])
		if err != nil {
			res.Routers[id] = Status{Namespace: NamespaceName(m.prefix, id), Err: err}
			continue
		}
		plans[id] = p
	}
	ids = slices.DeleteFunc(ids, func(id string) bool { return plans[id] == nil })
	withdraws, ensures := map[string]*run{}, map[string]*run{}
	opened := map[string]*routerNS{}
	failed := map[string]error{}
	var mu sync.Mutex // guards the maps above while the workers fill them
	defer func() {
		for _, rn := range opened {
			rn.close()
		}
	}()
	err := parallel(ctx, ids, func(id string) {
		r := &run{m: m}
		rn, err := openRouterNS(NamespaceName(m.prefix, id), false)
		if err == nil && rn != nil {
			err = r.withdraw(rn, plans[id])
		}
		mu.Lock()
		defer mu.Unlock()
		withdraws[id] = r
		if rn != nil {
			opened[id] = rn
		}
		if err != nil {
			failed[id] = err
		}
	})
	if err != nil {
		return res, err
	}
	err = parallel(ctx, ids, func(id string) {
		mu.Lock()
		rn, werr := opened[id], failed[id]
		mu.Unlock()
		st := Status{Namespace: NamespaceName(m.prefix, id), Err: werr}
		r := &run{m: m}
		if werr == nil {
			st = r.ensure(plans[id], rn)
		}
		if st.Err != nil {
			m.log.Warn("router not ready", "router", id, "err", st.Err)
		}
		for _, err := range st.Skipped {
			m.log.Warn("router item not served", "router", id, "err", err)
		}
		mu.Lock()
		defer mu.Unlock()
		res.Routers[id] = st
		ensures[id] = r
	})
	res.Changes = cleanup.changes
	for _, id := range ids {
		if r := withdraws[id]; r != nil {
			res.Changes = append(res.Changes, r.changes...)
		}
	}
	for _, id := range ids {
		if r := ensures[id]; r != nil {
			res.Changes = append(res.Changes, r.changes...)
		}
	}
	if err != nil {
		return res, err
	}
	for _, id := range dups {
		st := res.Routers[id]
		st.Err = errors.Join(st.Err, errors.New("the router is given twice; the first is built"))
		res.Routers[id] = st
	}
	return res, nil
}

// workers bounds how many routers a Reconcile works on at once. Most of a
// router's time is spent waiting on the kernel (namespace and veth creation
// and deletion wait for RCU grace periods), so a few more than the CPUs
// overlap those waits without crowding the machine.
func workers() int { return min(8, max(2, 2*runtime.GOMAXPROCS(0))) }

// parallel calls f for each id, a few at once, and waits for them all.
// Once ctx is done it starts no more and returns ctx's error.
func parallel(ctx context.Context, ids []string, f func(id string)) error {
	sem := make(chan struct{}, workers())
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, id := range ids {
		select {
		case <-ctx.Done():
			return fmt.Errorf("reconcile: %w", ctx.Err())
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(id)
		}()
	}
	return nil
}

// run collects the changes of one part of a Reconcile (one router's, or the
// cleanup's), in the order they were made.
type run struct {
	m       *Manager
	changes []string
}

func (r *run) changed(format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	r.changes = append(r.changes, what)
	r.m.log.Info("router changed", "what", what)
}

// routerNS is an open router namespace and its netlink handle.
type routerNS struct {
	name  string
	nsh   netns.NsHandle
	nh    *netlink.Handle // route family
	links []netlink.Link  // as withdraw found them, when it changed none
	// addrs are the namespace's addresses by link index, read once and
	// kept while nothing changes them; nil: not read.
	addrs        map[int][]netlink.Addr
	pairsCreated int // veth pairs created by this reconcile
	inode        uint64
	created      bool // by this reconcile: nothing to withdraw or sweep
}

// openRouterNS opens the named namespace, creating it when create is set;
// it returns nil (and no error) for a missing namespace otherwise.
func openRouterNS(name string, create bool) (*routerNS, error) {
	nsh, ok, err := namedns.OpenBound(name)
	if err != nil {
		return nil, err
	}
	created := false
	if !ok {
		if !create {
			return nil, nil
		}
		if nsh, err = createNamespace(name); err != nil {
			return nil, err
		}
		created = true
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(nsh), &st); err != nil {
		nsh.Close()
		return nil, fmt.Errorf("stat namespace %s: %w", name, err)
	}
	nh, err := netlink.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		nsh.Close()
		return nil, fmt.Errorf("netlink handle in %s: %w", name, err)
	}
	return &routerNS{name: name, nsh: nsh, nh: nh, inode: st.Ino, created: created}, nil
}

func (rn *routerNS) close() {
	rn.nh.Close()
	rn.nsh.Close()
}

// withdraw makes an existing router namespace give up what it must no
// longer hold before any router takes anything: gateway devices that are
// not the router's gateway (with their addresses) and qg- addresses that are
// not the router's any more.
func (r *run) withdraw(rn *routerNS, p *plan) error {
	links, err := nlutil.ListLinks(rn.nh)
	if err != nil {
		return fmt.Errorf("links of %s: %w", rn.name, err)
	}
	want := ""
	if p.Gateway != nil {
		want = GatewayDeviceName(p.Gateway.PortID)
	}
	rn.links = links
	for _, l := range links {
		name := l.Attrs().Name
		if !strings.HasPrefix(name, GatewayPrefix) || !ours(l) {
			continue
		}
		if name != want {
			if err := nlutil.IgnoreNotFound(rn.nh.LinkDel(l)); err != nil {
				return fmt.Errorf("delete stale %s in %s: %w", name, rn.name, err)
			}
			rn.links = nil
			r.changed("delete stale %s in %s (not the router's gateway)", name, rn.name)
			continue
		}
		if _, err := r.syncAddrs(rn, l, p.gatewayAddrs(), true); err != nil {
			return err
		}
	}
	return nil
}

// ensure converges one router. rn is its namespace when it exists.
func (r *run) ensure(p *plan, rn *routerNS) Status {
	m := r.m
	name := NamespaceName(m.prefix, p.ID)
	st := Status{Namespace: name, Skipped: p.skipped}
	if len(p.fipErrs) > 0 {
		st.FloatingIPErrs = p.fipErrs
	}
	if rn == nil {
		var err error
		if rn, err = openRouterNS(name, true); err != nil {
			st.Err = err
			return st
		}
		defer rn.close()
		r.changed("create namespace %s", name)
	}
	// Sysctls first, so that the devices made next inherit the defaults;
	// what was missing (a device's not made yet, conntrack's before the
	// kernel loaded it) is tried again once the devices and table exist.
	list := slices.Clone(routerSysctls)
	for _, d := range p.devices() {
		list = append(list, deviceSysctls(d.name)...)
	}
	m.stateMu.Lock()
	c := m.checked[p.ID]
	m.stateMu.Unlock()
	check := rn.created || c.inode != rn.inode || time.Since(c.at) > sysctlRecheck
	var missing []sysctl
	if check {
		var err error
		if missing, err = r.sysctls(rn, list); err != nil {
			st.Err = err
			return st
		}
	}
	links, err := r.ensureDevices(rn, p)
	if err != nil {
		st.Err = err
		return st
	}
	if !check && rn.pairsCreated > 0 {
		check, missing = true, list
	}
	var announce []netip.Addr
	for _, itf := range p.Interfaces {
		if _, err := r.syncAddrs(rn, links[InternalDeviceName(itf.PortID)], itf.Addrs, false); err != nil {
			st.Err = err
			return st
		}
	}
	if p.Gateway != nil {
		added, err := r.syncAddrs(rn, links[GatewayDeviceName(p.Gateway.PortID)], p.gatewayAddrs(), false)
		announce = append(announce, added...)
		if err != nil {
			st.Err = err
			return st
		}
	}
	routeErrs, err := r.syncRoutes(rn, p, links)
	if err != nil {
		st.Err = err
		return st
	}
	st.Skipped = append(slices.Clone(st.Skipped), routeErrs...)

	replaced, err := r.ensureTable(rn, p)
	if err != nil {
		st.Err = err
		return st
	}
	if len(missing) > 0 {
		if missing, err = r.sysctls(rn, missing); err != nil {
			st.Err = err
			return st
		}
	}
	// What is still missing the kernel does not have (IPv6 disabled):
	// nothing to verify until the next check.
	if check {
		m.stateMu.Lock()
		m.checked[p.ID] = sysctlCheck{inode: rn.inode, at: time.Now()}
		m.stateMu.Unlock()
	}
	m.stateMu.Lock()
	swept, last := m.swept[p.ID] == rn.inode, m.fips[p.ID]
	m.fips[p.ID] = p.byFIP
	m.stateMu.Unlock()
	if !rn.created && (replaced || !swept) {
		n, err := flushStaleNAT(rn.nsh, p)
		st.FlushedFlows = n
		if n > 0 {
			r.changed("delete %d conntrack entries of stale NAT in %s", n, name)
		}
		if err != nil {
			st.Err = err // not marked swept: the next Reconcile tries again
			return st
		}
	}
	m.stateMu.Lock()
	m.swept[p.ID] = rn.inode
	m.stateMu.Unlock()

	// Announce floating IPs that are new here (their address was added
	// above) or mapped to another fixed IP since the last table.
	if replaced {
		for _, f := range p.fips {
			if fixed, ok := last[f.FloatingIP]; !ok || fixed != f.FixedIP {
				announce = append(announce, f.FloatingIP)
			}
		}
	}
	if p.Gateway != nil && len(announce) > 0 {
		r.announce(rn, links[GatewayDeviceName(p.Gateway.PortID)], p.Gateway, announce)
	}
	st.Ready = true
	return st
}

// sysctls sets sysctls of a router namespace where they differ and returns
// the optional ones the kernel does not have (yet).
func (r *run) sysctls(rn *routerNS, list []sysctl) ([]sysctl, error) {
	changed, missing, err := ensureSysctls(rn.nsh, list)
	for _, c := range changed {
		r.changed("set %s in %s", c, rn.name)
	}
	if err != nil {
		return nil, fmt.Errorf("sysctls of %s: %w", rn.name, err)
	}
	return missing, nil
}

// ensureTable replaces the namespace's NAT table when it is not the plan's
// rendering, and reports whether it did.
func (r *run) ensureTable(rn *routerNS, p *plan) (bool, error) {
	rs := render(p)
	digest := rs.digest()
	opts := []nftables.ConnOption{nftables.WithNetNSFd(int(rn.nsh)), nftables.AsLasting()}
	if n := rs.sendBuffer(); n > 0 {
		opts = append(opts, nftables.WithSockOptions(forceSendBuffer(n)))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return false, fmt.Errorf("nftables in %s: %w", rn.name, err)
	}
	defer c.CloseLasting()
	have, err := installedDigest(c)
	if err != nil {
		return false, fmt.Errorf("%s: %w", rn.name, err)
	}
	if have == digest {
		return false, nil
	}
	if err := rs.replace(c, digest); err != nil {
		return false, fmt.Errorf("table %s in %s: %w", TableName, rn.name, err)
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("replace table %s in %s: %w", TableName, rn.name, err)
	}
	r.changed("replace table %s in %s (%d floating IPs, %d port forwards, snat %v)", TableName, rn.name,
		len(p.fips), len(p.fwds), p.Gateway != nil && p.Gateway.EnableSNAT)
	return true, nil
}

// forceSendBuffer sets a netlink socket's send buffer beyond the sysctl
// limit (SO_SNDBUFFORCE, which needs CAP_NET_ADMIN like everything here),
// and makes the kernel's acknowledgements carry only the header of the
// message they acknowledge (NETLINK_CAP_ACK), not the whole batch, which
// would overflow the receive buffer.
func forceSendBuffer(n int) nftables.SockOption {
	return func(c *mnl.Conn) error {
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, n)
			if serr == nil {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
			}
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("netlink socket for a batch of %d bytes: %w", n, serr)
		}
		return nil
	}
}

// announce sends gratuitous ARPs for addrs from the gateway device: once
// now, the rest in the background.
func (r *run) announce(rn *routerNS, qg netlink.Link, g *Gateway, addrs []netip.Addr) {
	m := r.m
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	a, err := newAnnouncer(rn.nsh, qg.Attrs().Index, g.MAC, addrs)
	if err == nil && a != nil {
		err = a.send()
		if err != nil {
			a.close()
		} else {
			m.wg.Add(1)
			a.repeat(m.bg, m.wg.Done)
		}
	}
	if err != nil {
		// The L2 side may not have set the tap up yet; the addresses are
		// still served, the outside learns them when it asks.
		m.log.Info("gratuitous ARP not sent", "namespace", rn.name, "addresses", addrs, "err", err)
	}
}

// cleanup removes the namespaces named <prefix>qrouter-* that no router
// wants, and forgets their state.
func (r *run) cleanup(ctx context.Context, want map[string]Router) error {
	m := r.m
	m.stateMu.Lock()
	for id := range m.fips {
		if _, ok := want[id]; !ok {
			delete(m.fips, id)
			delete(m.swept, id)
			delete(m.checked, id)
		}
	}
	m.stateMu.Unlock()
	names, err := namedns.WithPrefix(m.prefix + NamespaceInfix)
	if err != nil {
		return err
	}
	names = slices.DeleteFunc(names, func(name string) bool {
		_, ok := want[strings.TrimPrefix(name, m.prefix+NamespaceInfix)]
		return ok
	})
	runs := make([]*run, len(names))
	errs := make([]error, len(names))
	idx := map[string]int{}
	for i, n := range names {
		idx[n] = i
	}
	perr := parallel(ctx, names, func(name string) {
		i := idx[name]
		runs[i] = &run{m: m}
		errs[i] = runs[i].deleteNamespace(name)
	})
	for _, x := range runs {
		if x != nil {
			r.changes = append(r.changes, x.changes...)
		}
	}
	return errors.Join(append(errs, perr)...)
}

// deleteNamespace removes a router namespace: its veths first (their host
// ends, the taps, go with them at once, even should something else still
// hold the namespace), then the binding.
func (r *run) deleteNamespace(name string) error {
	rn, err := openRouterNS(name, false)
	if err != nil {
		return err
	}
	var errs []error
	if rn != nil {
		links, err := nlutil.ListLinks(rn.nh)
		errs = append(errs, err)
		for _, l := range links {
			if l.Type() == "veth" {
				if err := nlutil.IgnoreNotFound(rn.nh.LinkDel(l)); err != nil {
					errs = append(errs, fmt.Errorf("delete %s in %s: %w", l.Attrs().Name, name, err))
				}
			}
		}
		rn.close()
	}
	if err := namedns.Delete(name); err != nil {
		return errors.Join(append(errs, err)...)
	}
	r.changed("delete namespace %s (no router wants it)", name)
	return errors.Join(errs...)
}
