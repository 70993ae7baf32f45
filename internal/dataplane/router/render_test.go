package router

import (
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	routerA = "7f3a1c2e-1111-4aaa-8bbb-000000000001"
	portI1  = "1111aaaa-0000-4000-8000-000000000001"
	portI2  = "2222bbbb-0000-4000-8000-000000000002"
	portG   = "9999cccc-0000-4000-8000-000000000009"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func pfxs(s ...string) (out []netip.Prefix) {
	for _, x := range s {
		out = append(out, pfx(x))
	}
	return out
}

// fullRouter has everything: two subnets, a gateway with SNAT, floating
// IPs, forwards of each kind, extra routes and the metadata redirect.
func fullRouter() Router {
	return Router{
		ID: routerA,
		Interfaces: []Interface{
			{PortID: portI1, MAC: mustMAC("fa:16:3e:00:01:01"), Addrs: pfxs("10.0.1.1/24", "fd00:1::1/64"), MTU: 1450},
			{PortID: portI2, MAC: mustMAC("fa:16:3e:00:02:01"), Addrs: pfxs("10.0.2.1/24"), MTU: 1450},
		},
		Gateway: &Gateway{PortID: portG, MAC: mustMAC("fa:16:3e:00:09:01"), Addrs: pfxs("203.0.113.10/24"), MTU: 1500,
			DefaultGateways: []netip.Addr{ip("203.0.113.1")}, EnableSNAT: true},
		Routes: []Route{
			{Destination: pfx("172.16.50.0/24"), NextHop: ip("10.0.2.50")},
			{Destination: pfx("172.16.60.0/24"), NextHop: ip("10.0.2.61")},
			{Destination: pfx("172.16.60.0/24"), NextHop: ip("10.0.2.60")},
		},
		FloatingIPs: []FloatingIP{
			{FloatingIP: ip("203.0.113.21"), FixedIP: ip("10.0.1.12")},
			{FloatingIP: ip("203.0.113.20"), FixedIP: ip("10.0.2.13")},
		},
		PortForwards: []PortForward{
			{FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 8081, InternalIP: ip("10.0.1.12"), InternalPortMin: 80},
			{FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 8080, InternalIP: ip("10.0.1.11"), InternalPortMin: 80},
			{FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 9000, ExternalPortMax: 9002, InternalIP: ip("10.0.1.11"), InternalPortMin: 7000, InternalPortMax: 7002},
			{FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 9100, ExternalPortMax: 9105, InternalIP: ip("10.0.1.12"), InternalPortMin: 80},
			{FloatingIP: ip("203.0.113.30"), Protocol: "udp", ExternalPortMin: 5353, InternalIP: ip("10.0.2.13"), InternalPortMin: 53},
		},
		MetadataPort: 9697,
	}
}

func mustPlan(t *testing.T, r Router) *plan {
	t.Helper()
	p, err := newPlan("", r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRenderGolden compares the rendering of several routers with the
// golden files in testdata (go test -run TestRenderGolden -update rewrites
// them); the root test TestTableMatchesNft checks that the kernel lists the
// same rules.
func TestRenderGolden(t *testing.T) {
	noSNAT := fullRouter()
	noSNAT.Gateway.EnableSNAT = false
	noSNAT.PortForwards, noSNAT.MetadataPort = nil, 0
	cases := map[string]Router{
		"full":           fullRouter(),
		"no-snat":        noSNAT,
		"no-gateway":     {ID: routerA, Interfaces: fullRouter().Interfaces, MetadataPort: 9697},
		"only-interface": {ID: routerA, Interfaces: fullRouter().Interfaces},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			p := mustPlan(t, r)
			got := render(p).text()
			path := filepath.Join("testdata", name+".nft")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("rendering differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
			}
		})
	}
}

// TestRenderStable: the digest depends on content only, not on the order
// items are given in, and changes with any item.
func TestRenderStable(t *testing.T) {
	a := fullRouter()
	b := fullRouter()
	for i, j := 0, len(b.FloatingIPs)-1; i < j; i, j = i+1, j-1 {
		b.FloatingIPs[i], b.FloatingIPs[j] = b.FloatingIPs[j], b.FloatingIPs[i]
	}
	for i, j := 0, len(b.PortForwards)-1; i < j; i, j = i+1, j-1 {
		b.PortForwards[i], b.PortForwards[j] = b.PortForwards[j], b.PortForwards[i]
	}
	da, db := render(mustPlan(t, a)).digest(), render(mustPlan(t, b)).digest()
	if da != db {
		t.Errorf("digest depends on order: %s vs %s", da, db)
	}
	c := fullRouter()
	c.FloatingIPs[0].FixedIP = ip("10.0.1.99")
	if dc := render(mustPlan(t, c)).digest(); dc == da {
		t.Error("re-associating a floating IP keeps the digest")
	}
	d := fullRouter()
	d.Gateway.EnableSNAT = false
	if dd := render(mustPlan(t, d)).digest(); dd == da {
		t.Error("disabling SNAT keeps the digest")
	}
}

// TestRenderExpressions checks the parts of the expressions that the text
// cannot show: registers, byte order, padding and map elements.
func TestRenderExpressions(t *testing.T) {
	rs := render(mustPlan(t, fullRouter()))
	sets := map[string]*setSpec{}
	for _, s := range rs.sets {
		sets[s.set.Name] = s
	}
	pf := sets[setPFTCP]
	if pf == nil || pf.set.Interval || pf.set.Concatenation || pf.set.KeyType.Bytes != 8 || pf.set.DataType.Bytes != 8 {
		t.Fatalf("pf_tcp map %+v", pf)
	}
	// 8080 -> 10.0.1.11:80: key fip . port padded to 4 bytes.
	e := pf.elems[0]
	wantKey := []byte{203, 0, 113, 30, 0x1f, 0x90, 0, 0}
	if string(e.Key) != string(wantKey) || e.KeyEnd != nil || string(e.Val) != string([]byte{10, 0, 1, 11, 0, 80, 0, 0}) {
		t.Errorf("first forward element %x-%x : %x", e.Key, e.KeyEnd, e.Val)
	}
	// 9000-9002 -> 7000-7002 expands port by port.
	var n9000 int
	for i, e := range pf.elems {
		if port := int(e.Key[4])<<8 | int(e.Key[5]); port >= 9000 && port <= 9002 {
			n9000++
			if got := int(e.Val[4])<<8 | int(e.Val[5]); got != port-2000 {
				t.Errorf("element %d: %d maps to %d", i, port, got)
			}
		}
	}
	// 9100-9105 -> 80 is one interval of the ranges map.
	pr := sets[setPFTCPRanges]
	if pr == nil || !pr.set.Interval || !pr.set.Concatenation || len(pr.elems) != 1 {
		t.Fatalf("pf_tcp_ranges map %+v", pr)
	}
	if end := int(pr.elems[0].KeyEnd[4])<<8 | int(pr.elems[0].KeyEnd[5]); end != 9105 {
		t.Errorf("interval 9100 ends at %d", end)
	}
	if n9000 != 3 || len(pf.elems) != 5 {
		t.Errorf("%d elements for 9000-9002, %d in all (want 3, 5)", n9000, len(pf.elems))
	}
	if sets[setPFUDP] == nil || len(sets[setPFUDP].elems) != 1 {
		t.Errorf("pf_udp %+v", sets[setPFUDP])
	}
	// fip_snat is keyed by fixed IP.
	sn := sets[setFIPSNAT]
	if sn == nil || string(sn.elems[0].Key) != string(ip("10.0.1.12").AsSlice()) || string(sn.elems[0].Val) != string(ip("203.0.113.21").AsSlice()) {
		t.Errorf("fip_snat %+v", sn)
	}
	// The forward's NAT takes the port from the second word of the lookup
	// result, and the protocol is checked before the port is read.
	var found bool
	for _, c := range rs.chains {
		for _, r := range c.rules {
			if !strings.Contains(r.text, "@"+setPFTCP) {
				continue
			}
			found = true
			l4, ok := r.exprs[1].(*expr.Cmp)
			if !ok || string(l4.Data) != string([]byte{unix.IPPROTO_TCP}) {
				t.Errorf("forward rule does not check the protocol first: %#v", r.exprs[1])
			}
			nat, ok := r.exprs[len(r.exprs)-1].(*expr.NAT)
			if !ok || nat.RegAddrMin != regKey || nat.RegProtoMin != regWord1 || nat.Type != expr.NATTypeDestNAT {
				t.Errorf("forward NAT %#v", r.exprs[len(r.exprs)-1])
			}
		}
	}
	if !found {
		t.Error("no forward rule")
	}
}

// TestPlanSkips: items that cannot be served are left out with a reason,
// the rest stays.
func TestPlanSkips(t *testing.T) {
	r := fullRouter()
	r.FloatingIPs = append(r.FloatingIPs,
		FloatingIP{ID: "dup", FloatingIP: ip("203.0.113.20"), FixedIP: ip("10.0.1.50")},   // floating IP twice
		FloatingIP{ID: "fixed", FloatingIP: ip("203.0.113.22"), FixedIP: ip("10.0.1.12")}, // fixed IP twice
		FloatingIP{ID: "v6", FloatingIP: ip("2001:db8::1"), FixedIP: ip("10.0.1.13")},
		FloatingIP{ID: "gw", FloatingIP: ip("203.0.113.10"), FixedIP: ip("10.0.1.14")},
	)
	r.PortForwards = append(r.PortForwards,
		PortForward{ID: "overlap", FloatingIP: ip("203.0.113.30"), Protocol: "tcp", ExternalPortMin: 9101, InternalIP: ip("10.0.1.11"), InternalPortMin: 80},
		PortForward{ID: "proto", FloatingIP: ip("203.0.113.30"), Protocol: "sctp", ExternalPortMin: 1, InternalIP: ip("10.0.1.11"), InternalPortMin: 1},
		PortForward{ID: "len", FloatingIP: ip("203.0.113.31"), Protocol: "tcp", ExternalPortMin: 10, ExternalPortMax: 20, InternalIP: ip("10.0.1.11"), InternalPortMin: 10, InternalPortMax: 12},
		PortForward{ID: "onfip", FloatingIP: ip("203.0.113.21"), Protocol: "tcp", ExternalPortMin: 22, InternalIP: ip("10.0.1.11"), InternalPortMin: 22},
		PortForward{ID: "zero", FloatingIP: ip("203.0.113.31"), Protocol: "udp", ExternalPortMin: 0, InternalIP: ip("10.0.1.11"), InternalPortMin: 22},
	)
	p := mustPlan(t, r)
	if len(p.fips) != 2 || len(p.fwds) != 5 {
		t.Errorf("kept %d floating IPs and %d forwards, want 2 and 5", len(p.fips), len(p.fwds))
	}
	for _, id := range []string{"dup", "fixed", "v6", "gw", "overlap", "proto", "len", "onfip", "zero"} {
		found := false
		for _, err := range p.skipped {
			found = found || strings.Contains(err.Error(), id)
		}
		if !found {
			t.Errorf("%s not reported among %v", id, p.skipped)
		}
	}
	if p.fipErrs[ip("203.0.113.22")] == nil || p.fipErrs[ip("203.0.113.20")] != nil {
		t.Errorf("floating IP errors %v", p.fipErrs)
	}
	if want := []netip.Addr{ip("203.0.113.20"), ip("203.0.113.21"), ip("203.0.113.30")}; !equalAddrs(p.external, want) {
		t.Errorf("external addresses %v, want %v", p.external, want)
	}

	// Without a gateway nothing can be floated.
	r = fullRouter()
	r.Gateway = nil
	p = mustPlan(t, r)
	if len(p.fips) != 0 || len(p.fwds) != 0 || len(p.fipErrs) != 2 || len(p.external) != 0 {
		t.Errorf("without gateway: %d floating IPs, %d forwards, errors %v", len(p.fips), len(p.fwds), p.fipErrs)
	}
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPlanRoutes(t *testing.T) {
	r := fullRouter()
	r.Gateway.DefaultGateways = []netip.Addr{ip("198.51.100.1"), ip("203.0.113.1"), ip("2001:db8::1")}
	r.Gateway.Addrs = append(r.Gateway.Addrs, pfx("2001:db8::10/64"))
	p := mustPlan(t, r)
	var got []string
	for _, s := range p.routes {
		got = append(got, s.String())
	}
	want := []string{
		"0.0.0.0/0 via 198.51.100.1 dev qg-9999cccc-00 onlink",
		"172.16.50.0/24 via 10.0.2.50",
		"172.16.60.0/24 via 10.0.2.60 via 10.0.2.61",
		"::/0 via 2001:db8::1 dev qg-9999cccc-00",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPlanRejects(t *testing.T) {
	bad := []func(*Router){
		func(r *Router) { r.ID = "../x" },
		func(r *Router) { r.Interfaces[0].PortID = "a/b" },
		func(r *Router) { r.Interfaces[0].MAC = mustMAC("01:00:5e:00:00:01") },
		func(r *Router) { r.Interfaces[1].PortID = r.Interfaces[0].PortID },
		func(r *Router) { r.Gateway.PortID = r.Interfaces[0].PortID },
		func(r *Router) { r.Gateway.MTU = 20 },
		func(r *Router) { r.Gateway.DefaultGateways = []netip.Addr{{}} },
		func(r *Router) { r.Interfaces[0].Addrs = []netip.Prefix{{}} },
	}
	for i, f := range bad {
		r := fullRouter()
		f(&r)
		if _, err := newPlan("", r); err == nil {
			t.Errorf("case %d: router validates", i)
		}
	}
	if got := NamespaceName("v-h1-", routerA); got != "v-h1-qrouter-"+routerA {
		t.Errorf("NamespaceName = %q", got)
	}
	if InternalDeviceName(portI1) != "qr-1111aaaa-00" || GatewayDeviceName(portG) != "qg-9999cccc-00" || TapName(portG) != "tap9999cccc-00" {
		t.Errorf("device names %q %q %q", InternalDeviceName(portI1), GatewayDeviceName(portG), TapName(portG))
	}
	if got := fullRouter().TapNames(); strings.Join(got, " ") != "tap1111aaaa-00 tap2222bbbb-00 tap9999cccc-00" {
		t.Errorf("TapNames = %v", got)
	}
}

// TestStaleNAT judges conntrack flows against a plan.
func TestStaleNAT(t *testing.T) {
	f := newStaleNAT(mustPlan(t, fullRouter()))
	flow := func(proto uint8, src, dst string, sport, dport uint16, rsrc, rdst string, rsport, rdport uint16) *netlink.ConntrackFlow {
		return &netlink.ConntrackFlow{FamilyType: unix.AF_INET,
			Forward: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), SrcPort: sport, DstPort: dport},
			Reverse: netlink.IPTuple{Protocol: proto, SrcIP: net.ParseIP(rsrc), DstIP: net.ParseIP(rdst), SrcPort: rsport, DstPort: rdport}}
	}
	cases := []struct {
		name  string
		flow  *netlink.ConntrackFlow
		stale bool
	}{
		{"inbound to a floating IP", flow(6, "203.0.113.100", "203.0.113.21", 40000, 80, "10.0.1.12", "203.0.113.100", 80, 40000), false},
		{"inbound to a floating IP now elsewhere", flow(6, "203.0.113.100", "203.0.113.21", 40000, 80, "10.0.1.99", "203.0.113.100", 80, 40000), true},
		{"inbound to a removed floating IP", flow(6, "203.0.113.100", "203.0.113.29", 40000, 80, "10.0.1.12", "203.0.113.100", 80, 40000), true},
		{"outbound as its floating IP", flow(6, "10.0.1.12", "203.0.113.100", 40000, 80, "203.0.113.100", "203.0.113.21", 80, 40000), false},
		{"outbound as a floating IP it lost", flow(6, "10.0.1.50", "203.0.113.100", 40000, 80, "203.0.113.100", "203.0.113.21", 80, 40000), true},
		{"outbound SNATed to the gateway", flow(6, "10.0.1.50", "203.0.113.100", 40000, 80, "203.0.113.100", "203.0.113.10", 80, 61000), false},
		{"forward", flow(6, "203.0.113.100", "203.0.113.30", 40000, 8080, "10.0.1.11", "203.0.113.100", 80, 40000), false},
		{"forward to another VM now", flow(6, "203.0.113.100", "203.0.113.30", 40000, 8081, "10.0.1.11", "203.0.113.100", 80, 40000), true},
		{"forward range", flow(6, "203.0.113.100", "203.0.113.30", 40000, 9001, "10.0.1.11", "203.0.113.100", 7001, 40000), false},
		{"forward range to the wrong port", flow(6, "203.0.113.100", "203.0.113.30", 40000, 9001, "10.0.1.11", "203.0.113.100", 7000, 40000), true},
		{"removed forward", flow(17, "203.0.113.100", "203.0.113.30", 40000, 5354, "10.0.2.13", "203.0.113.100", 53, 40000), true},
		{"hairpin without floating IP", flow(6, "10.0.1.50", "203.0.113.21", 40000, 80, "10.0.1.12", "203.0.113.10", 80, 40000), false},
		{"between subnets", flow(6, "10.0.1.50", "10.0.2.13", 40000, 80, "10.0.2.13", "10.0.1.50", 80, 40000), false},
		{"metadata", flow(6, "10.0.1.50", "169.254.169.254", 40000, 80, "10.0.1.1", "10.0.1.50", 9697, 40000), false},
	}
	for _, c := range cases {
		if got := f.MatchConntrackFlow(c.flow); got != c.stale {
			t.Errorf("%s: stale = %v, want %v", c.name, got, c.stale)
		}
	}
	// Without SNAT, flows SNATed to the gateway are stale, hairpin ones not.
	r := fullRouter()
	r.Gateway.EnableSNAT = false
	f = newStaleNAT(mustPlan(t, r))
	if !f.MatchConntrackFlow(cases[5].flow) || f.MatchConntrackFlow(cases[11].flow) {
		t.Error("SNAT switched off: gateway SNAT flows not judged right")
	}
}

func TestGARPFrame(t *testing.T) {
	f := garpFrame(mustMAC("fa:16:3e:00:09:01"), ip("203.0.113.21"))
	want := "ffffffffffff" + "fa163e000901" + "0806" + "0001" + "0800" + "06" + "04" + "0001" +
		"fa163e000901" + "cb007115" + "000000000000" + "cb007115"
	if got := hexs(f); got != want {
		t.Errorf("frame\n%s\nwant\n%s", got, want)
	}
}

func hexs(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestIsNotExist(t *testing.T) {
	if !isNotExist(errors.New("receiveAckAware: netlink receive: no such file or directory")) || isNotExist(errors.New("permission denied")) {
		t.Error("isNotExist misjudges")
	}
}
