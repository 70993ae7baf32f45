package secgroup

import (
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestPolicyMatchesTheRenderedRules: the Go evaluator that decides which
// connections to cut agrees with what the sample's rules allow.
func TestPolicyMatchesTheRenderedRules(t *testing.T) {
	d := sample()
	pol := newPolicy(d, assignIndices(nil, d.Ports), nil)
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tcp := func(zone uint16, src, dst string, dport int) flow {
		return flow{zone: zone, src: a(src), dst: a(dst), proto: protoTCP, dport: dport, icmpType: -1, icmpCode: -1}
	}
	for _, tc := range []struct {
		name string
		f    flow
		want bool
	}{
		{"member to member (default group)", tcp(1, "10.0.0.11", "10.0.0.10", 5555), true},
		{"from an allowed-pair range of a member", tcp(1, "10.0.0.200", "10.0.0.11", 5555), true},
		{"outsider to the web port 80", tcp(1, "192.168.1.1", "10.0.0.10", 80), true},
		{"outsider to the web port 81", tcp(1, "192.168.1.1", "10.0.0.10", 81), false},
		{"outsider to the non-web port 80", tcp(1, "192.168.1.1", "10.0.0.11", 80), false},
		{"range rule from its prefix", tcp(1, "203.0.113.9", "10.0.0.10", 8500), true},
		{"range rule from elsewhere", tcp(1, "198.51.100.9", "10.0.0.10", 8500), false},
		{"to the pair address of port A", tcp(1, "192.168.1.1", "10.0.0.129", 80), true},
		{"another zone: no covered port has the address", tcp(9, "192.168.1.1", "10.0.0.10", 81), true},
		{"stateless port: never cut", tcp(2, "192.168.1.1", "10.0.0.10", 9), true},
		{"sctp, which no rule allows", flow{zone: 1, src: a("192.168.1.1"), dst: a("10.0.0.10"), proto: protoSCTP, dport: -1, icmpType: -1, icmpCode: -1}, false},
		{"ping allowed by type 8 code 0", flow{zone: 1, src: a("192.168.1.1"), dst: a("10.0.0.10"), proto: protoICMP, dport: -1, icmpType: 8, icmpCode: 0}, true},
		{"ping to B, which allows only its group", flow{zone: 1, src: a("192.168.1.1"), dst: a("10.0.0.11"), proto: protoICMP, dport: -1, icmpType: 8, icmpCode: 0}, false},
		{"DHCP request out", flow{zone: 1, src: a("10.0.0.11"), dst: a("255.255.255.255"), proto: protoUDP, dport: 67, icmpType: -1, icmpCode: -1}, true},
	} {
		if got := pol.allowed(tc.f); got != tc.want {
			t.Errorf("%s: allowed = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestCutFilterReadsConntrackFlows: the filter handed to netlink reads the
// original tuple and zone of an entry.
func TestCutFilterReadsConntrackFlows(t *testing.T) {
	d := sample()
	f := cutFilter{newPolicy(d, assignIndices(nil, d.Ports), nil)}
	entry := func(zone uint16, src, dst string, dport uint16) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{Zone: zone, Forward: netlink.IPTuple{
			SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice(), Protocol: protoTCP, SrcPort: 40000, DstPort: dport}}
	}
	if f.MatchConntrackFlow(entry(1, "192.168.1.1", "10.0.0.10", 80)) {
		t.Error("an allowed connection would be cut")
	}
	if !f.MatchConntrackFlow(entry(1, "192.168.1.1", "10.0.0.10", 81)) {
		t.Error("a connection no rule allows would be kept")
	}
	if f.MatchConntrackFlow(entry(7, "192.168.1.1", "10.0.0.10", 81)) {
		t.Error("an entry of a zone vland does not use would be cut")
	}
}

// TestGoneAddressesAreCut: the connections of an address whose port left,
// or which another port took, are cut whatever the rules say.
func TestGoneAddressesAreCut(t *testing.T) {
	before := sample()
	after := sample()
	after.Ports = after.Ports[:len(after.Ports)-1] // port A leaves
	pol := newPolicy(after, assignIndices(nil, after.Ports), nil)
	pol.setGone(portOwners(before))
	entry := func(zone uint16, src, dst string, dport uint16) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{Zone: zone, Forward: netlink.IPTuple{
			SrcIP: netip.MustParseAddr(src).AsSlice(), DstIP: netip.MustParseAddr(dst).AsSlice(), Protocol: protoTCP, SrcPort: 40000, DstPort: dport}}
	}
	f := cutFilter{pol}
	if !f.MatchConntrackFlow(entry(1, "10.0.0.11", "10.0.0.10", 80)) {
		t.Error("a connection to the address of a port that left is kept")
	}
	if f.MatchConntrackFlow(entry(2, "10.0.0.11", "10.0.0.10", 80)) {
		t.Error("the same address in another zone (port D's, which stays) is cut")
	}
	if f.MatchConntrackFlow(entry(1, "10.0.0.10", "10.0.0.11", 5555)) == false {
		t.Error("a connection from the address of a port that left is kept")
	}
}
