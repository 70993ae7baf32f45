package router

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/dataplane/nlutil"
)

// device is one router port as the namespace holds it.
type device struct {
	name, tap string
	mac       net.HardwareAddr
	mtu       int
}

// devices lists the router's ports: interfaces, then the gateway.
func (p *plan) devices() []device {
	var out []device
	for _, itf := range p.Interfaces {
		out = append(out, device{name: InternalDeviceName(itf.PortID), tap: TapName(itf.PortID), mac: itf.MAC, mtu: itf.MTU})
	}
	if g := p.Gateway; g != nil {
		out = append(out, device{name: GatewayDeviceName(g.PortID), tap: TapName(g.PortID), mac: g.MAC, mtu: g.MTU})
	}
	return out
}

// ours reports whether a device in a router namespace is a router port
// device (which the router's plan owns).
func ours(l netlink.Link) bool {
	n := l.Attrs().Name
	return l.Type() == "veth" && (strings.HasPrefix(n, InternalPrefix) || strings.HasPrefix(n, GatewayPrefix))
}

// ensureDevices makes lo up and each port's veth pair exist (qr-/qg- in the
// namespace, tap in the host's), paired with each other, with the port's
// MAC, the MTU on both ends and the namespace end up; port devices that no
// port wants are deleted with their host ends. It returns the namespace's
// devices by name.
func (r *run) ensureDevices(rn *routerNS, p *plan) (map[string]netlink.Link, error) {
	links := rn.links
	if links == nil {
		var err error
		if links, err = nlutil.ListLinks(rn.nh); err != nil {
			return nil, fmt.Errorf("links of %s: %w", rn.name, err)
		}
	}
	want := map[string]device{}
	for _, d := range p.devices() {
		want[d.name] = d
	}
	have := map[string]netlink.Link{}
	for _, l := range links {
		a := l.Attrs()
		switch {
		case a.Name == "lo":
			if a.Flags&net.FlagUp == 0 {
				if err := rn.nh.LinkSetUp(l); err != nil {
					return nil, fmt.Errorf("set lo up in %s: %w", rn.name, err)
				}
				r.changed("set lo up in %s", rn.name)
			}
		case want[a.Name].name != "":
			have[a.Name] = l
		case ours(l):
			if err := nlutil.IgnoreNotFound(rn.nh.LinkDel(l)); err != nil {
				return nil, fmt.Errorf("delete stale %s in %s: %w", a.Name, rn.name, err)
			}
			r.changed("delete stale %s in %s (no port of the router)", a.Name, rn.name)
		}
	}
	out := map[string]netlink.Link{}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		l, err := r.ensureDevice(rn, want[name], have[name])
		if err != nil {
			return nil, err
		}
		out[name] = l
	}
	return out, nil
}

// ensureDevice converges one port's veth pair; dev is the namespace end
// found, nil when there is none.
func (r *run) ensureDevice(rn *routerNS, d device, dev netlink.Link) (netlink.Link, error) {
	m := r.m
	tap, err := nlutil.LinkByName(m.h, d.tap)
	if err != nil {
		return nil, err
	}
	if !paired(tap, dev) {
		if tap != nil {
			if err := nlutil.IgnoreNotFound(m.h.LinkDel(tap)); err != nil {
				return nil, fmt.Errorf("delete %s (%s) to recreate it: %w", d.tap, tap.Type(), err)
			}
			r.changed("delete %s %s in the host namespace (not paired with %s in %s)", tap.Type(), d.tap, d.name, rn.name)
		}
		if dev != nil {
			if err := nlutil.IgnoreNotFound(rn.nh.LinkDel(dev)); err != nil {
				return nil, fmt.Errorf("delete %s in %s to recreate it: %w", d.name, rn.name, err)
			}
			r.changed("delete %s %s in %s (not paired with %s)", dev.Type(), d.name, rn.name, d.tap)
		}
		if tap, dev, err = r.createPair(rn, d); err != nil {
			return nil, err
		}
	}
	n := len(r.changes)
	a := dev.Attrs()
	if !bytes.Equal(a.HardwareAddr, d.mac) {
		if err := rn.nh.LinkSetHardwareAddr(dev, d.mac); err != nil {
			return nil, fmt.Errorf("set mac %s on %s in %s: %w", d.mac, d.name, rn.name, err)
		}
		r.changed("set %s mac %s in %s (was %s)", d.name, d.mac, rn.name, a.HardwareAddr)
	}
	if d.mtu != 0 && a.MTU != d.mtu {
		if err := rn.nh.LinkSetMTU(dev, d.mtu); err != nil {
			return nil, fmt.Errorf("set mtu %d on %s in %s: %w", d.mtu, d.name, rn.name, err)
		}
		r.changed("set %s mtu %d in %s (was %d)", d.name, d.mtu, rn.name, a.MTU)
	}
	if d.mtu != 0 && tap.Attrs().MTU != d.mtu {
		if err := m.h.LinkSetMTU(tap, d.mtu); err != nil {
			return nil, fmt.Errorf("set mtu %d on %s: %w", d.mtu, d.tap, err)
		}
		r.changed("set %s mtu %d (was %d)", d.tap, d.mtu, tap.Attrs().MTU)
	}
	if a.Flags&net.FlagUp == 0 {
		if err := rn.nh.LinkSetUp(dev); err != nil {
			return nil, fmt.Errorf("set %s up in %s: %w", d.name, rn.name, err)
		}
		r.changed("set %s up in %s", d.name, rn.name)
	}
	if len(r.changes) == n {
		return dev, nil
	}
	return rn.nh.LinkByIndex(a.Index)
}

// createPair creates tap<port11> in the host namespace with its peer made
// directly inside the router namespace, and returns both. The tap gets no
// IPv6 address, so that the host stays off the tenant network (as package
// l2's bridges); the L2 reconcile enslaves it and sets it up.
func (r *run) createPair(rn *routerNS, d device) (tap, dev netlink.Link, err error) {
	m := r.m
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = d.tap, d.mtu
	v := netlink.NewVeth(la)
	v.PeerName, v.PeerHardwareAddr, v.PeerMTU = d.name, d.mac, uint32(d.mtu)
	v.PeerNamespace = netlink.NsFd(int(rn.nsh))
	if err := m.h.LinkAdd(v); err != nil {
		return nil, nil, fmt.Errorf("create veth %s with peer %s in %s: %w", d.tap, d.name, rn.name, err)
	}
	rn.pairsCreated++
	r.changed("create veth %s with peer %s in %s (mac %s, mtu %d)", d.tap, d.name, rn.name, d.mac, d.mtu)
	if tap, err = m.h.LinkByName(d.tap); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", d.tap, err)
	}
	if err := m.h.LinkSetIP6AddrGenMode(tap, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		return nil, nil, fmt.Errorf("%s: disable IPv6 address generation: %w", d.tap, err)
	}
	if dev, err = rn.nh.LinkByName(d.name); err != nil {
		return nil, nil, fmt.Errorf("read %s in %s: %w", d.name, rn.name, err)
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

// syncAddrs makes the device's addresses want, leaving IPv6 link-local ones
// (the kernel's) alone; with removeOnly it only removes. It returns the
// addresses it added. IPv6 addresses skip duplicate address detection: the
// port's address is the router's to hold.
func (r *run) syncAddrs(rn *routerNS, dev netlink.Link, want []netip.Prefix, removeOnly bool) ([]netip.Addr, error) {
	name := dev.Attrs().Name
	list, err := rn.addrsOf(dev)
	if err != nil {
		return nil, err
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
		rn.addrs = nil
		if err := rn.nh.AddrDel(dev, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return nil, fmt.Errorf("remove %s from %s in %s: %w", p, name, rn.name, err)
		}
		r.changed("remove address %s from %s in %s", p, name, rn.name)
	}
	if removeOnly {
		return nil, nil
	}
	var added []netip.Addr
	for _, p := range slices.SortedFunc(maps.Keys(wanted), func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) }) {
		if have[p] {
			continue
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
		if p.Addr().Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		rn.addrs = nil
		if err := rn.nh.AddrAdd(dev, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return added, fmt.Errorf("add %s to %s in %s: %w", p, name, rn.name, err)
		}
		added = append(added, p.Addr())
		r.changed("add address %s to %s in %s", p, name, rn.name)
	}
	return added, nil
}

// addrsOf returns a device's addresses from one dump of the namespace's,
// kept until an address changes.
func (rn *routerNS) addrsOf(dev netlink.Link) ([]netlink.Addr, error) {
	if rn.addrs == nil {
		var list []netlink.Addr
		err := nlutil.RetryDump(func() (err error) {
			list, err = rn.nh.AddrList(nil, netlink.FAMILY_ALL)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", rn.name, err)
		}
		rn.addrs = map[int][]netlink.Addr{}
		for _, a := range list {
			rn.addrs[a.LinkIndex] = append(rn.addrs[a.LinkIndex], a)
		}
	}
	return rn.addrs[dev.Attrs().Index], nil
}

// gatewayAddrs are the addresses qg- holds: the gateway port's, and every
// floating IP the router serves as a /32 (Neutron's way: the kernel answers
// ARP for them on qg- only, and nothing else routes to them).
func (p *plan) gatewayAddrs() []netip.Prefix {
	if p.Gateway == nil {
		return nil
	}
	out := slices.Clone(p.Gateway.Addrs)
	for _, a := range p.external {
		out = append(out, netip.PrefixFrom(a, 32))
	}
	return out
}

// routeProto marks the routes a router namespace gets from its plan; the
// kernel's own (connected, link-local) carry other protocols and are left
// alone.
const routeProto = unix.RTPROT_STATIC

// syncRoutes makes the namespace's static routes the plan's: default routes
// through qg- and extra routes (several next hops: one multipath route).
// A route the kernel refuses (a next hop no interface reaches) is reported
// in the returned item errors; the others are still made.
func (r *run) syncRoutes(rn *routerNS, p *plan, links map[string]netlink.Link) ([]error, error) {
	var list []netlink.Route
	err := nlutil.RetryDump(func() (err error) {
		list, err = rn.nh.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: routeProto},
			netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("routes of %s: %w", rn.name, err)
	}
	want := map[netip.Prefix]routeSpec{}
	for _, s := range p.routes {
		want[s.dst] = s
	}
	ok := map[netip.Prefix]bool{}
	for _, rt := range list {
		dst := routeDst(rt)
		if s, found := want[dst]; found && !ok[dst] && sameNexthops(rt, s, links) {
			ok[dst] = true
			continue
		}
		if err := rn.nh.RouteDel(&rt); err != nil && !errors.Is(err, unix.ESRCH) {
			return nil, fmt.Errorf("delete route %s in %s: %w", dst, rn.name, err)
		}
		r.changed("delete route %s in %s", describeRoute(rt), rn.name)
	}
	var itemErrs []error
	for _, s := range p.routes {
		if ok[s.dst] {
			continue
		}
		rt, err := s.netlinkRoute(links)
		if err == nil {
			err = rn.nh.RouteReplace(rt)
		}
		if err != nil {
			itemErrs = append(itemErrs, fmt.Errorf("route %s: %w", s, err))
			continue
		}
		r.changed("add route %s in %s", s, rn.name)
	}
	return itemErrs, nil
}

// String is the route as `ip route` would describe it, for logs.
func (s routeSpec) String() string {
	var b strings.Builder
	b.WriteString(s.dst.String())
	for _, nh := range s.nexthops {
		fmt.Fprintf(&b, " via %s", nh.gw)
		if nh.dev != "" {
			fmt.Fprintf(&b, " dev %s", nh.dev)
		}
		if nh.onlink {
			b.WriteString(" onlink")
		}
	}
	return b.String()
}

// netlinkRoute is the kernel route for s.
func (s routeSpec) netlinkRoute(links map[string]netlink.Link) (*netlink.Route, error) {
	rt := &netlink.Route{Dst: prefixNet(s.dst), Table: unix.RT_TABLE_MAIN, Protocol: routeProto}
	hop := func(nh nexthop) (gw net.IP, index, flags int, err error) {
		if nh.dev != "" {
			l := links[nh.dev]
			if l == nil {
				return nil, 0, 0, fmt.Errorf("no device %s", nh.dev)
			}
			index = l.Attrs().Index
		}
		if nh.onlink {
			flags = int(netlink.FLAG_ONLINK)
		}
		return nh.gw.AsSlice(), index, flags, nil
	}
	if len(s.nexthops) == 1 {
		gw, index, flags, err := hop(s.nexthops[0])
		if err != nil {
			return nil, err
		}
		rt.Gw, rt.LinkIndex, rt.Flags = gw, index, flags
		return rt, nil
	}
	for _, nh := range s.nexthops {
		gw, index, flags, err := hop(nh)
		if err != nil {
			return nil, err
		}
		rt.MultiPath = append(rt.MultiPath, &netlink.NexthopInfo{Gw: gw, LinkIndex: index, Flags: flags})
	}
	return rt, nil
}

// routeDst is a kernel route's destination; the default route may come
// without one.
func routeDst(rt netlink.Route) netip.Prefix {
	if rt.Dst == nil {
		if rt.Family == unix.AF_INET6 {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	a, _ := netip.AddrFromSlice(rt.Dst.IP)
	ones, _ := rt.Dst.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

// sameNexthops reports whether a kernel route goes through exactly the
// spec's next hops (and devices, where the spec names them).
func sameNexthops(rt netlink.Route, s routeSpec, links map[string]netlink.Link) bool {
	type hop struct {
		gw    netip.Addr
		index int
	}
	var have []hop
	if len(rt.MultiPath) == 0 {
		gw, _ := netip.AddrFromSlice(rt.Gw)
		have = append(have, hop{gw.Unmap(), rt.LinkIndex})
	}
	for _, nh := range rt.MultiPath {
		gw, _ := netip.AddrFromSlice(nh.Gw)
		have = append(have, hop{gw.Unmap(), nh.LinkIndex})
	}
	if len(have) != len(s.nexthops) {
		return false
	}
	for _, want := range s.nexthops {
		i := slices.IndexFunc(have, func(h hop) bool { return h.gw == want.gw })
		if i < 0 {
			return false
		}
		if want.dev != "" && (links[want.dev] == nil || links[want.dev].Attrs().Index != have[i].index) {
			return false
		}
	}
	return true
}

func describeRoute(rt netlink.Route) string {
	s := routeDst(rt).String()
	if rt.Gw != nil {
		s += " via " + rt.Gw.String()
	}
	for _, nh := range rt.MultiPath {
		s += " via " + nh.Gw.String()
	}
	return s
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
