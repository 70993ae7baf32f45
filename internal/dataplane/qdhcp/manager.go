package qdhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/dataplane/dhcp"
	"github.com/vland/vland/internal/dataplane/dhcp6"
	"github.com/vland/vland/internal/dataplane/nlutil"
	"github.com/vland/vland/internal/dataplane/ra"
	"github.com/vland/vland/internal/namedns"
)

// Options tune a Manager.
type Options struct {
	// Prefix goes before "qdhcp-" in the names of the namespaces the Manager
	// creates, and the Manager removes every namespace named
	// <Prefix>qdhcp-* that no service wants: give each agent of a machine
	// its own.
	Prefix string
	// Logger receives what the Manager changes and its servers' events; nil
	// means slog.Default().
	Logger *slog.Logger
}

// Manager converges the DHCP namespaces of one host and runs their servers.
// Its methods are safe for concurrent use; reconciles are serialized.
type Manager struct {
	prefix string
	hostNS netns.NsHandle
	h      *netlink.Handle // in the host's namespace
	log    *slog.Logger

	mu      sync.Mutex
	servers map[string]*instance // by network ID
	closed  bool
}

// instance is a running server and what it was started on.
type instance struct {
	portID  string
	ns      string
	nsID    uint64         // inode of the namespace
	ifindex int            // of ns-<port11> inside it
	srv     *dhcp.Server   // nil: no IPv4 to serve
	srv6    *dhcp6.Server  // nil: no DHCPv6 subnet
	adv     *ra.Advertiser // nil: no router advertisements from here
}

// New returns a Manager for the host namespace hostNS: "" is the caller's
// own, a bare name one made by `ip netns add`, anything with a '/' a path.
// The namespace is held open until Close.
func New(hostNS string, o Options) (*Manager, error) {
	if strings.ContainsAny(o.Prefix, "/\x00") {
		return nil, fmt.Errorf("namespace prefix %q cannot start a file name", o.Prefix)
	}
	h, err := namedns.Open(hostNS)
	if err != nil {
		return nil, err
	}
	nh, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink handle in namespace %q: %w", hostNS, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Manager{prefix: o.Prefix, hostNS: h, h: nh, log: log, servers: map[string]*instance{}}, nil
}

// Close stops every server and releases the Manager's handles. Namespaces
// and links stay as they are, for the next agent to find.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(m.servers)) {
		errs = append(errs, m.stop(id, "the agent stops"))
	}
	if !m.closed {
		m.closed = true
		m.h.Close()
		errs = append(errs, m.hostNS.Close())
	}
	return errors.Join(errs...)
}

// Stats returns the counters of the running servers, by network ID.
func (m *Manager) Stats() map[string]dhcp.Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]dhcp.Stats, len(m.servers))
	for id, inst := range m.servers {
		if inst.srv != nil {
			out[id] = inst.srv.Stats()
		}
	}
	return out
}

// Result is what one Reconcile achieved.
type Result struct {
	// Services has the outcome of every wanted service, by network ID.
	Services map[string]Status
	// Stale joins the failures to remove namespaces no service wants.
	Stale error
	// Changes are the kernel modifications made, in order; empty when the
	// kernel was right.
	Changes []string
	// Started names the networks whose server was (re)started.
	Started []string
}

// Status is the outcome for one network's service.
type Status struct {
	Namespace string // <prefix>qdhcp-<network id>
	Device    string // ns-<port11>, inside it
	Tap       string // tap<port11>, in the host's namespace
	// Serving: a DHCPv4 server answers on Device (false for a network
	// without IPv4 addresses to serve, which needs none).
	Serving bool
	// Ready: the namespace and veth pair are as wanted and the server, if
	// one is needed, runs.
	Ready bool
	Err   error
}

// Err joins the errors of every service and of the cleanup.
func (r Result) Err() error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(r.Services)) {
		if err := r.Services[id].Err; err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", id, err))
		}
	}
	if r.Stale != nil {
		errs = append(errs, fmt.Errorf("cleanup: %w", r.Stale))
	}
	return errors.Join(errs...)
}

// Reconcile makes the host's DHCP namespaces and servers what services
// describe (one per network; a second service for a network is an error in
// its Status) and removes the namespaces of this Manager's prefix that none
// wants. It first hands every running server its new table, then reads the
// kernel and changes only what differs. One service's failure does not stop
// the others; the returned error is reserved for a done ctx.
func (m *Manager) Reconcile(ctx context.Context, services []Service) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := Result{Services: map[string]Status{}}
	if m.closed {
		return res, errors.New("qdhcp manager is closed")
	}
	want := map[string]Service{}
	var dup []Service
	for _, s := range services {
		if _, ok := want[s.NetworkID]; ok {
			dup = append(dup, s)
			continue
		}
		want[s.NetworkID] = s
	}
	// Tables first: a port the agent just learned is served now, not after
	// the kernel has been read for every network.
	for id, s := range want {
		if inst := m.servers[id]; inst != nil && inst.portID == s.PortID {
			if inst.srv != nil && s.serves() {
				inst.srv.SetTable(s.Table)
			}
			if inst.srv6 != nil && !s.Table6.Empty() {
				inst.srv6.SetTable(s.Table6)
			}
			if inst.adv != nil && s.RA != nil {
				inst.adv.SetConfig(*s.RA)
			}
		}
	}
	r := &run{m: m}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("reconcile: %w", err)
		}
		st := r.ensure(want[id])
		if st.Err != nil {
			m.log.Warn("DHCP service not ready", "network", id, "err", st.Err)
		}
		res.Services[id] = st
	}
	for _, s := range dup {
		st := res.Services[s.NetworkID]
		st.Err = errors.Join(st.Err, fmt.Errorf("a second DHCP port %s on this host is ignored (serving with %s)", s.PortID, want[s.NetworkID].PortID))
		res.Services[s.NetworkID] = st
	}
	res.Stale = r.cleanup(want)
	if res.Stale != nil {
		m.log.Warn("stale DHCP namespaces not removed", "err", res.Stale)
	}
	res.Changes, res.Started = r.changes, r.started
	return res, nil
}

// run is the state of one Reconcile.
type run struct {
	m       *Manager
	changes []string
	started []string
}

func (r *run) changed(format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	r.changes = append(r.changes, what)
	r.m.log.Info("qdhcp changed", "what", what)
}

// ensure converges one service: namespace, lo, veth pair, device MAC, MTU
// and addresses, and the server.
func (r *run) ensure(s Service) Status {
	m := r.m
	name := NamespaceName(m.prefix, s.NetworkID)
	st := Status{Namespace: name, Device: DeviceName(s.PortID), Tap: TapName(s.PortID)}
	if err := s.validate(m.prefix); err != nil {
		st.Err = err
		return st
	}
	nsh, ok, err := namedns.OpenBound(name)
	if err != nil {
		st.Err = err
		return st
	}
	if !ok {
		if nsh, err = createNamespace(name); err != nil {
			st.Err = err
			return st
		}
		r.changed("create namespace %s", name)
	}
	defer nsh.Close()
	nsID, err := nsIdentity(nsh)
	if err != nil {
		st.Err = err
		return st
	}
	nh, err := netlink.NewHandleAt(nsh, unix.NETLINK_ROUTE)
	if err != nil {
		st.Err = fmt.Errorf("netlink handle in %s: %w", name, err)
		return st
	}
	defer nh.Close()
	dev, err := r.ensureDevice(s, name, nsh, nh)
	if err != nil {
		st.Err = err
		return st
	}
	if err := r.syncAddrs(nh, dev, s.Addrs); err != nil {
		st.Err = err
		return st
	}
	if err := r.ensureServer(s, name, nsID, dev.Attrs().Index); err != nil {
		st.Err = err
		return st
	}
	st.Serving, st.Ready = s.serves(), true
	return st
}

// ensureDevice makes lo up and the veth pair tap<port11> (host) and
// ns-<port11> (namespace) exist, paired with each other, with the port's MAC
// on ns-<port11>, the network MTU on both, and ns-<port11> up (the L2
// reconcile sets the tap up when it enslaves it). A pair that is wrong in a
// way the kernel cannot change (one end missing, ends not paired, not
// veths) is recreated; other veths named ns-* in the namespace, left by an
// earlier DHCP port of the network, are deleted with their host ends.
func (r *run) ensureDevice(s Service, name string, nsh netns.NsHandle, nh *netlink.Handle) (netlink.Link, error) {
	m := r.m
	tapName, devName := TapName(s.PortID), DeviceName(s.PortID)
	links, err := nlutil.ListLinks(nh)
	if err != nil {
		return nil, fmt.Errorf("links of %s: %w", name, err)
	}
	var dev netlink.Link
	for _, l := range links {
		a := l.Attrs()
		switch {
		case a.Name == "lo":
			if a.Flags&net.FlagUp == 0 {
				if err := nh.LinkSetUp(l); err != nil {
					return nil, fmt.Errorf("set lo up in %s: %w", name, err)
				}
				r.changed("set lo up in %s", name)
			}
		case a.Name == devName:
			dev = l
		case strings.HasPrefix(a.Name, DevicePrefix) && l.Type() == "veth":
			if err := nlutil.IgnoreNotFound(nh.LinkDel(l)); err != nil {
				return nil, fmt.Errorf("delete stale %s in %s: %w", a.Name, name, err)
			}
			r.changed("delete stale %s in %s (the DHCP port is now %s)", a.Name, name, s.PortID)
		}
	}
	tap, err := nlutil.LinkByName(m.h, tapName)
	if err != nil {
		return nil, err
	}
	if !paired(tap, dev) {
		if tap != nil {
			if err := nlutil.IgnoreNotFound(m.h.LinkDel(tap)); err != nil {
				return nil, fmt.Errorf("delete %s (%s) to recreate it: %w", tapName, tap.Type(), err)
			}
			r.changed("delete %s %s in the host namespace (not paired with %s in %s)", tap.Type(), tapName, devName, name)
		}
		if dev != nil {
			if err := nlutil.IgnoreNotFound(nh.LinkDel(dev)); err != nil {
				return nil, fmt.Errorf("delete %s in %s to recreate it: %w", devName, name, err)
			}
			r.changed("delete %s %s in %s (not paired with %s)", dev.Type(), devName, name, tapName)
		}
		if tap, dev, err = r.createPair(s, name, nsh, nh); err != nil {
			return nil, err
		}
	}
	a := dev.Attrs()
	if !bytes.Equal(a.HardwareAddr, s.MAC) {
		if err := nh.LinkSetHardwareAddr(dev, s.MAC); err != nil {
			return nil, fmt.Errorf("set mac %s on %s in %s: %w", s.MAC, devName, name, err)
		}
		r.changed("set %s mac %s in %s (was %s)", devName, s.MAC, name, a.HardwareAddr)
	}
	if s.MTU != 0 && a.MTU != s.MTU {
		if err := nh.LinkSetMTU(dev, s.MTU); err != nil {
			return nil, fmt.Errorf("set mtu %d on %s in %s: %w", s.MTU, devName, name, err)
		}
		r.changed("set %s mtu %d in %s (was %d)", devName, s.MTU, name, a.MTU)
	}
	if s.MTU != 0 && tap.Attrs().MTU != s.MTU {
		if err := m.h.LinkSetMTU(tap, s.MTU); err != nil {
			return nil, fmt.Errorf("set mtu %d on %s: %w", s.MTU, tapName, err)
		}
		r.changed("set %s mtu %d (was %d)", tapName, s.MTU, tap.Attrs().MTU)
	}
	if a.Flags&net.FlagUp == 0 {
		if err := nh.LinkSetUp(dev); err != nil {
			return nil, fmt.Errorf("set %s up in %s: %w", devName, name, err)
		}
		r.changed("set %s up in %s", devName, name)
	}
	return dev, nil
}

// createPair creates tap<port11> in the host namespace with its peer
// ns-<port11> made directly inside the DHCP namespace, and returns both.
// The tap gets no IPv6 address, so the host stays off the tenant network,
// as with the bridges of package l2.
func (r *run) createPair(s Service, name string, nsh netns.NsHandle, nh *netlink.Handle) (tap, dev netlink.Link, err error) {
	m := r.m
	tapName, devName := TapName(s.PortID), DeviceName(s.PortID)
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = tapName, s.MTU
	v := netlink.NewVeth(la)
	v.PeerName, v.PeerHardwareAddr, v.PeerMTU = devName, s.MAC, uint32(s.MTU)
	v.PeerNamespace = netlink.NsFd(int(nsh))
	if err := m.h.LinkAdd(v); err != nil {
		return nil, nil, fmt.Errorf("create veth %s with peer %s in %s: %w", tapName, devName, name, err)
	}
	r.changed("create veth %s with peer %s in %s (mac %s, mtu %d)", tapName, devName, name, s.MAC, s.MTU)
	if tap, err = m.h.LinkByName(tapName); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", tapName, err)
	}
	if err := m.h.LinkSetIP6AddrGenMode(tap, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		return nil, nil, fmt.Errorf("%s: disable IPv6 address generation: %w", tapName, err)
	}
	if dev, err = nh.LinkByName(devName); err != nil {
		return nil, nil, fmt.Errorf("read %s in %s: %w", devName, name, err)
	}
	return tap, dev, nil
}

// paired reports whether tap and dev are the two ends of one veth pair.
// Each end names its peer's ifindex (IFLA_LINK); requiring both directions
// to agree makes a coincidence across namespaces practically impossible.
func paired(tap, dev netlink.Link) bool {
	if tap == nil || dev == nil || tap.Type() != "veth" || dev.Type() != "veth" {
		return false
	}
	return tap.Attrs().ParentIndex == dev.Attrs().Index && dev.Attrs().ParentIndex == tap.Attrs().Index
}

// syncAddrs makes the device's addresses exactly want, leaving IPv6
// link-local ones (the kernel's) alone. IPv6 addresses skip duplicate
// address detection: the port's address is the server's to hold.
func (r *run) syncAddrs(nh *netlink.Handle, dev netlink.Link, want []netip.Prefix) error {
	var list []netlink.Addr
	err := nlutil.RetryDump(func() (err error) {
		list, err = nh.AddrList(dev, netlink.FAMILY_ALL)
		return err
	})
	if err != nil {
		return fmt.Errorf("addresses of %s: %w", dev.Attrs().Name, err)
	}
	wanted := map[netip.Prefix]bool{}
	for _, p := range want {
		wanted[netip.PrefixFrom(p.Addr().Unmap(), p.Bits())] = true
	}
	have := map[netip.Prefix]bool{}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil {
			continue
		}
		ip = ip.Unmap()
		if ip.Is6() && ip.IsLinkLocalUnicast() {
			continue
		}
		ones, _ := a.Mask.Size()
		p := netip.PrefixFrom(ip, ones)
		if wanted[p] {
			have[p] = true
			continue
		}
		if err := nh.AddrDel(dev, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s from %s: %w", p, dev.Attrs().Name, err)
		}
		r.changed("remove address %s from %s", p, dev.Attrs().Name)
	}
	for _, p := range slices.SortedFunc(maps.Keys(wanted), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		if have[p] {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := nh.AddrAdd(dev, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add %s to %s: %w", p, dev.Attrs().Name, err)
		}
		r.changed("add address %s to %s", p, dev.Attrs().Name)
	}
	return nil
}

// ensureServer keeps the network's servers (DHCPv4, DHCPv6, router
// advertisements) running on the device they were started on, restarting
// them when the namespace, the device or the DHCP port changed, starting the
// ones the service needs and stopping the ones it no longer does.
func (r *run) ensureServer(s Service, name string, nsID uint64, ifindex int) error {
	m := r.m
	inst := m.servers[s.NetworkID]
	if inst != nil {
		why := ""
		switch {
		case inst.portID != s.PortID:
			why = "the DHCP port is now " + s.PortID
		case inst.nsID != nsID:
			why = "namespace " + name + " was recreated"
		case inst.ifindex != ifindex:
			why = "device " + DeviceName(s.PortID) + " was recreated"
		}
		if why != "" {
			if err := m.stop(s.NetworkID, why); err != nil {
				m.log.Warn("DHCP server did not stop cleanly", "network", s.NetworkID, "err", err)
			}
			inst = nil
		}
	}
	if inst == nil {
		inst = &instance{portID: s.PortID, ns: name, nsID: nsID, ifindex: ifindex}
	}
	log := m.log.With("network", s.NetworkID)
	started := false
	var errs []error
	switch {
	case s.serves() && inst.srv == nil:
		if err := s.Table.Validate(); err != nil {
			log.Warn("DHCP table has problems; serving what it can", "err", err)
		}
		srv := dhcp.NewServer(s.Table, dhcp.ServerOptions{Logger: log})
		if err := srv.Start(NamespacePath(name), DeviceName(s.PortID)); err != nil {
			errs = append(errs, err)
		} else {
			inst.srv, started = srv, true
		}
	case !s.serves() && inst.srv != nil:
		log.Info("stopping DHCPv4 server", "why", "the network has no IPv4 address to serve")
		errs = append(errs, inst.srv.Stop())
		inst.srv = nil
	}
	switch {
	case !s.Table6.Empty() && inst.srv6 == nil:
		if err := s.Table6.Validate(); err != nil {
			log.Warn("DHCPv6 table has problems; serving what it can", "err", err)
		}
		srv := dhcp6.NewServer(s.Table6, dhcp6.ServerDUID(s.MAC), log)
		if err := srv.Start(NamespacePath(name), DeviceName(s.PortID)); err != nil {
			errs = append(errs, err)
		} else {
			inst.srv6, started = srv, true
		}
	case s.Table6.Empty() && inst.srv6 != nil:
		log.Info("stopping DHCPv6 server", "why", "the network has no DHCPv6 subnet")
		errs = append(errs, inst.srv6.Stop())
		inst.srv6 = nil
	}
	switch {
	case s.RA != nil && inst.adv == nil:
		adv := ra.New(*s.RA, log)
		if err := adv.Start(NamespacePath(name), DeviceName(s.PortID)); err != nil {
			errs = append(errs, err)
		} else {
			inst.adv, started = adv, true
		}
	case s.RA == nil && inst.adv != nil:
		log.Info("stopping router advertisements", "why", "no subnet wants them from here")
		errs = append(errs, inst.adv.Stop())
		inst.adv = nil
	}
	if inst.srv != nil || inst.srv6 != nil || inst.adv != nil {
		m.servers[s.NetworkID] = inst
	} else {
		delete(m.servers, s.NetworkID)
	}
	if started {
		r.started = append(r.started, s.NetworkID)
	}
	return errors.Join(errs...)
}

// stop stops and forgets a network's server.
func (m *Manager) stop(networkID, why string) error {
	inst := m.servers[networkID]
	if inst == nil {
		return nil
	}
	delete(m.servers, networkID)
	m.log.Info("stopping DHCP server", "network", networkID, "namespace", inst.ns, "why", why)
	var errs []error
	if inst.srv != nil {
		errs = append(errs, inst.srv.Stop())
	}
	if inst.srv6 != nil {
		errs = append(errs, inst.srv6.Stop())
	}
	if inst.adv != nil {
		errs = append(errs, inst.adv.Stop())
	}
	return errors.Join(errs...)
}

// cleanup stops the servers of networks no service wants and removes the
// namespaces named <prefix>qdhcp-* that none wants.
func (r *run) cleanup(want map[string]Service) error {
	m := r.m
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(m.servers)) {
		if _, ok := want[id]; !ok {
			errs = append(errs, m.stop(id, "no DHCP port of the network is bound here any more"))
		}
	}
	names, err := namespacesWithPrefix(m.prefix + NamespaceInfix)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, name := range names {
		if _, ok := want[strings.TrimPrefix(name, m.prefix+NamespaceInfix)]; ok {
			continue
		}
		errs = append(errs, r.deleteNamespace(name))
	}
	return errors.Join(errs...)
}

// deleteNamespace removes a DHCP namespace: its veths first (their host
// ends, the taps, go with them at once, even should something else still
// hold the namespace), then the binding.
func (r *run) deleteNamespace(name string) error {
	h, ok, err := namedns.OpenBound(name)
	if err != nil {
		return err
	}
	var errs []error
	if ok {
		nh, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
		if err == nil {
			links, err := nlutil.ListLinks(nh)
			errs = append(errs, err)
			for _, l := range links {
				if l.Type() == "veth" {
					if err := nlutil.IgnoreNotFound(nh.LinkDel(l)); err != nil {
						errs = append(errs, fmt.Errorf("delete %s in %s: %w", l.Attrs().Name, name, err))
					}
				}
			}
			nh.Close()
		} else {
			errs = append(errs, fmt.Errorf("netlink handle in %s: %w", name, err))
		}
		h.Close()
	}
	if err := unbindNamespace(name); err != nil {
		return errors.Join(append(errs, err)...)
	}
	r.changed("delete namespace %s (no DHCP port wants it)", name)
	return errors.Join(errs...)
}
