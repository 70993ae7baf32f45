package secgroup

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Connections the rules no longer allow are cut by deleting their
// conntrack entries, as Neutron does: until then "ct state established"
// would keep letting them through. The next packet of a cut connection is
// a new one to conntrack (TCP is picked up mid-stream), meets the rules
// as they are now, and is dropped. The check is per connection and exact,
// so a connection another rule still allows survives.

// cutFilter selects the entries of the policy's zones that it no longer
// allows.
type cutFilter struct{ pol *policy }

// MatchConntrackFlow implements netlink.CustomConntrackFilter: true means
// delete.
func (c cutFilter) MatchConntrackFlow(f *netlink.ConntrackFlow) bool {
	_, covered := c.pol.zones[f.Zone]
	gone := c.pol.gone[f.Zone]
	if !covered && len(gone) == 0 {
		return false
	}
	src, ok1 := netip.AddrFromSlice(f.Forward.SrcIP)
	dst, ok2 := netip.AddrFromSlice(f.Forward.DstIP)
	if !ok1 || !ok2 {
		return false
	}
	if gone[src.Unmap()] || gone[dst.Unmap()] {
		return true // a connection of a port that left, or gave up the address
	}
	if !covered {
		return false
	}
	fl := flow{zone: f.Zone, src: src.Unmap(), dst: dst.Unmap(), proto: int(f.Forward.Protocol), dport: -1, icmpType: -1, icmpCode: -1}
	switch fl.proto {
	case protoTCP, protoUDP:
		fl.dport = int(f.Forward.DstPort)
	case protoICMP:
		fl.icmpType, fl.icmpCode = 8, 0 // conntrack tracks ICMP queries: echo
	case protoICMPv6:
		fl.icmpType, fl.icmpCode = 128, 0
	}
	return !c.pol.allowed(fl)
}

// cutConnections deletes the tracked connections pol does not allow. A
// dump walks every bucket of the conntrack hash table, which costs
// milliseconds even when the table is empty, so the table is read once
// for both families, and read again (by ConntrackDeleteFilters, which
// deletes by family) only for a family that has connections to cut.
func cutConnections(h *netlink.Handle, pol *policy) (int, error) {
	if len(pol.zones) == 0 && len(pol.gone) == 0 {
		return 0, nil
	}
	flows, listErr := h.ConntrackTableList(netlink.ConntrackTable, unix.AF_UNSPEC)
	interrupted := errors.Is(listErr, netlink.ErrDumpInterrupted) // a partial list: check both families
	if listErr != nil && !interrupted {
		return 0, fmt.Errorf("list conntrack: %w", listErr)
	}
	cut := map[netlink.InetFamily]bool{}
	for _, f := range flows {
		if (cutFilter{pol}).MatchConntrackFlow(f) {
			cut[netlink.InetFamily(f.FamilyType)] = true
		}
	}
	total := 0
	var errs []error
	for _, fam := range []netlink.InetFamily{unix.AF_INET, unix.AF_INET6} {
		if !cut[fam] && !interrupted {
			continue
		}
		n, err := h.ConntrackDeleteFilters(netlink.ConntrackTable, fam, cutFilter{pol})
		total += int(n)
		if err != nil {
			errs = append(errs, fmt.Errorf("conntrack (family %d): %w", fam, err))
		}
	}
	return total, errors.Join(errs...)
}
