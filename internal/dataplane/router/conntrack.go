package router

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Conntrack keeps each connection's NAT binding for its whole life: a
// floating IP that is removed or mapped elsewhere, or a forward that is
// gone, would go on carrying the connections opened through it. After the
// table changes, Reconcile therefore deletes every NATed flow of the
// namespace that the current plan would not NAT the same way (one dump,
// matched here). The next packet of such a connection is a new flow under
// the new rules: an inbound one no longer reaches the old VM; an outbound
// one leaves with another source and the far end answers with a reset.

// staleNAT matches the IPv4 flows whose NAT the plan does not make.
type staleNAT struct {
	gw4        netip.Addr
	enableSNAT bool
	dnat       map[netip.Addr]netip.Addr // floating -> fixed
	snat       map[netip.Addr]netip.Addr // fixed -> floating
	fwds       []PortForward
}

func newStaleNAT(p *plan) *staleNAT {
	f := &staleNAT{gw4: p.gw4, dnat: map[netip.Addr]netip.Addr{}, snat: map[netip.Addr]netip.Addr{}, fwds: p.fwds}
	if p.Gateway != nil {
		f.enableSNAT = p.Gateway.EnableSNAT
	}
	for _, x := range p.fips {
		f.dnat[x.FloatingIP] = x.FixedIP
		f.snat[x.FixedIP] = x.FloatingIP
	}
	return f
}

func ip4(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a.Unmap()
}

// MatchConntrackFlow reports whether the flow is NATed in a way the plan
// does not make (netlink.CustomConntrackFilter).
func (f *staleNAT) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	if flow.FamilyType != unix.AF_INET {
		return false
	}
	origSrc, origDst := ip4(flow.Forward.SrcIP), ip4(flow.Forward.DstIP)
	replySrc, replyDst := ip4(flow.Reverse.SrcIP), ip4(flow.Reverse.DstIP)
	dnated := replySrc != origDst
	snated := replyDst != origSrc
	if dnated {
		if origDst == metadataIP {
			return false // the metadata redirect; its port is not ours to judge
		}
		ip, port, ok := f.destination(origDst, flow.Forward.Protocol, flow.Forward.DstPort)
		if !ok || ip != replySrc || port != 0 && port != flow.Reverse.SrcPort {
			return true
		}
	}
	if snated {
		natAddr := replyDst
		if f.snat[origSrc] == natAddr {
			return false
		}
		if natAddr == f.gw4 && f.gw4.IsValid() && (f.enableSNAT || dnated) {
			return false
		}
		return true
	}
	return false
}

// destination is where the plan DNATs a new flow to dst: the internal
// address and port of a forward (port 0: unchanged), or the fixed IP.
func (f *staleNAT) destination(dst netip.Addr, proto uint8, dport uint16) (netip.Addr, uint16, bool) {
	for _, fw := range f.fwds {
		num, _ := protoNumber(fw.Protocol)
		emin, emax := fw.externalRange()
		if fw.FloatingIP != dst || num != proto || dport < emin || dport > emax {
			continue
		}
		imin, imax := fw.internalRange()
		if imin == imax {
			return fw.InternalIP, imin, true
		}
		return fw.InternalIP, imin + (dport - emin), true
	}
	if fixed, ok := f.dnat[dst]; ok {
		return fixed, 0, true
	}
	return netip.Addr{}, 0, false
}

// flushStaleNAT deletes the flows of namespace ns the plan does not NAT so.
func flushStaleNAT(ns netns.NsHandle, p *plan) (uint, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_NETFILTER)
	if err != nil {
		return 0, fmt.Errorf("conntrack handle: %w", err)
	}
	defer h.Close()
	n, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, newStaleNAT(p))
	if err != nil {
		return n, fmt.Errorf("delete stale NAT flows: %w", err)
	}
	return n, nil
}
