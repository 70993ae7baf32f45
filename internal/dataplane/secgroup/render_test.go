package secgroup

import (
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

const (
	portA = "aaaaaaaa-1111-4111-8111-111111111111"
	portB = "bbbbbbbb-2222-4222-8222-222222222222"
	portC = "cccccccc-3333-4333-8333-333333333333"
	portD = "dddddddd-4444-4444-8444-444444444444"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func testPort(id, br string, zone uint16, m string, ips []netip.Addr, groups ...string) Port {
	return Port{ID: id, Device: "tap" + id[:11], Bridge: br, Zone: zone, MAC: mac(m), IPs: ips, PortSecurity: true, Groups: groups}
}

// sample is a Desired with one of everything: the default group, a
// stateless group, remote groups and address groups of both families,
// ICMP and port ranges, allowed-address pairs with and without a MAC, a
// port without port security, one without fixed IPs, two networks.
func sample() Desired {
	pa := testPort(portA, "brqnet1", 1, "fa:16:3e:00:00:0a", addrs("10.0.0.10", "fd00::a"), "default", "web")
	pa.AllowedPairs = []AddressPair{{Prefix: netip.MustParsePrefix("10.0.0.128/25")}, {Prefix: netip.MustParsePrefix("10.0.9.9/32"), MAC: mac("fa:16:3e:00:09:09")}}
	pb := testPort(portB, "brqnet1", 1, "fa:16:3e:00:00:0b", addrs("10.0.0.11"), "default")
	pc := testPort(portC, "brqnet2", 2, "fa:16:3e:00:00:0c", nil, "dns")
	pd := testPort(portD, "brqnet2", 2, "fa:16:3e:00:00:0d", addrs("10.0.0.10"))
	pd.PortSecurity = false
	return Desired{
		Ports: []Port{pd, pc, pb, pa},
		Groups: map[string]Group{
			"default": defaultGroup("default"),
			"web": {ID: "web", Stateful: true, Rules: []Rule{
				{ID: "w1", Direction: Ingress, Ethertype: IPv4, Protocol: "tcp", PortMin: intp(80), PortMax: intp(80)},
				{ID: "w2", Direction: Ingress, Ethertype: IPv4, Protocol: "6", PortMin: intp(8000), PortMax: intp(8999), RemoteIPPrefix: pfx("203.0.113.0/24")},
				{ID: "w3", Direction: Ingress, Ethertype: IPv6, Protocol: "tcp", PortMin: intp(443), PortMax: intp(443), RemoteAddressGroupID: "office"},
				{ID: "w4", Direction: Ingress, Ethertype: IPv4, Protocol: "icmp", PortMin: intp(8), PortMax: intp(0)},
				{ID: "w5", Direction: Ingress, Ethertype: IPv6, Protocol: "icmp"},
				{ID: "w6", Direction: Ingress, Ethertype: IPv4, Protocol: "tcp", PortMin: intp(80), PortMax: intp(80)}, // duplicate of w1
				{ID: "w7", Direction: Egress, Ethertype: IPv4, Protocol: "vrrp"},
				{ID: "bad", Direction: Ingress, Ethertype: IPv4, Protocol: "nonsense"},
			}},
			"dns": {ID: "dns", Stateful: false, Rules: []Rule{
				{ID: "d1", Direction: Ingress, Ethertype: IPv4, Protocol: "udp", PortMin: intp(53), PortMax: intp(53)},
				{ID: "d2", Direction: Egress, Ethertype: IPv4, Protocol: "udp", RemoteGroupID: "default"},
			}},
			"unused": {ID: "unused", Rules: []Rule{{ID: "u", Direction: Ingress, Ethertype: IPv4}}},
		},
		RemoteGroups: map[string][]netip.Prefix{
			"default": prefixes("10.0.0.10/32", "10.0.0.11/32", "fd00::a/128", "10.0.0.128/25", "10.0.0.200/32", "10.0.9.9/32"),
		},
		AddressGroups: map[string][]netip.Prefix{"office": prefixes("2001:db8::/48", "2001:db8:1::/48", "198.51.100.0/24")},
	}
}

// TestRenderGolden keeps the whole ruleset of the sample in a golden file.
func TestRenderGolden(t *testing.T) {
	d := sample()
	rs, skipped := render(d, assignIndices(nil, d.Ports))
	golden(t, "sample", rs.String())
	if want := []string{`security group web rule bad: unknown protocol "nonsense"`}; !slices.Equal(skipped, want) {
		t.Errorf("skipped %q, want %q", skipped, want)
	}
}

// TestRenderIsDeterministic: the order of ports, groups and members in
// Desired does not change the rendering.
func TestRenderIsDeterministic(t *testing.T) {
	d := sample()
	rs1, _ := render(d, assignIndices(nil, d.Ports))
	slices.Reverse(d.Ports)
	slices.Reverse(d.RemoteGroups["default"])
	rs2, _ := render(d, assignIndices(nil, d.Ports))
	if rs1.String() != rs2.String() {
		t.Error("rendering depends on the order of Desired's slices")
	}
}

// TestRenderExpressions checks the expressions behind some texts, which
// the golden file cannot show: byte orders, offsets, registers.
func TestRenderExpressions(t *testing.T) {
	r := newRule().nfproto(false).l4proto(protoTCP).thPort(2, 8000, 8999).ipAddr(true, pfx("203.0.113.0/24")).accept()
	want := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{2}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: []byte{0x1f, 0x40}, ToData: []byte{0x23, 0x27}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{203, 0, 113, 0}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
	if got, wantText := r.text, "meta nfproto ipv4 meta l4proto tcp th dport 8000-8999 ip saddr 203.0.113.0/24 accept"; got != wantText {
		t.Errorf("text %q, want %q", got, wantText)
	}
	if len(r.exprs) != len(want) {
		t.Fatalf("%d expressions, want %d", len(r.exprs), len(want))
	}
	for i := range want {
		if !exprEqual(r.exprs[i], want[i]) {
			t.Errorf("expression %d: %#v, want %#v", i, r.exprs[i], want[i])
		}
	}
	// The mark of a port index is compared in host byte order, as the
	// kernel loads meta mark into the register.
	m := newRule().setMarkBits(maskFrom, 7<<16).end()
	bw := m.exprs[1].(*expr.Bitwise)
	if string(bw.Mask) != string(native32(0x0000ffff)) || string(bw.Xor) != string(native32(0x00070000)) {
		t.Errorf("mark bits: mask %x xor %x", bw.Mask, bw.Xor)
	}
}

func exprEqual(a, b expr.Any) bool { return reflect.DeepEqual(a, b) }

// TestPortWithoutMACIsDropAll: a port the renderer cannot protect is cut
// off, never left open.
func TestPortWithoutMACIsDropAll(t *testing.T) {
	p := testPort(portA, "brqnet1", 1, "fa:16:3e:00:00:0a", addrs("10.0.0.10"), "default")
	p.MAC = nil
	q := testPort(portB, "", 1, "fa:16:3e:00:00:0b", addrs("10.0.0.11"), "default")
	d := Desired{Ports: []Port{p, q}, Groups: map[string]Group{"default": defaultGroup("default")}}
	rs, skipped := render(d, assignIndices(nil, d.Ports))
	if len(skipped) != 2 {
		t.Errorf("skipped %q, want both ports reported", skipped)
	}
	for _, id := range []string{portA, portB} {
		for _, c := range []*chain{rs.bridge.chains[spoofChain(id)], rs.inet.chains[egressChain(id)], rs.inet.chains[ingressChain(id)]} {
			if c == nil || c.rules[len(c.rules)-1].text != "drop" || len(c.rules) > 2 {
				t.Errorf("port %s: chain %v is not drop-all", id, c)
			}
		}
	}
}

func TestParseRule(t *testing.T) {
	for _, tc := range []struct {
		r    Rule
		want string // "" for valid
	}{
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "TCP", PortMin: intp(22), PortMax: intp(22)}, ""},
		{Rule{Direction: Ingress, Ethertype: IPv6, Protocol: "icmp", PortMin: intp(128)}, ""},
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "any"}, ""},
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "112"}, ""},
		{Rule{Direction: "in", Ethertype: IPv4}, "direction"},
		{Rule{Direction: Ingress, Ethertype: "IPv5"}, "ethertype"},
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "256"}, "unknown protocol"},
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "ipv6-icmp"}, "ipv6-icmp in an IPv4 rule"},
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "tcp", PortMin: intp(30), PortMax: intp(20)}, "port range"},
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "icmp", PortMax: intp(1)}, "without a type"},
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "icmp", PortMin: intp(300)}, "out of 0-255"},
		{Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "gre", PortMin: intp(1), PortMax: intp(2)}, "no ports"},
		{Rule{Direction: Ingress, Ethertype: IPv4, RemoteIPPrefix: pfx("fd00::/8")}, "does not match"},
		{Rule{Direction: Ingress, Ethertype: IPv4, RemoteIPPrefix: pfx("10.0.0.0/8"), RemoteGroupID: "g"}, "more than one"},
	} {
		_, err := parseRule(tc.r)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.r, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want one about %q", tc.r, err, tc.want)
		}
	}
	m, _ := parseRule(Rule{Direction: Ingress, Ethertype: IPv6, Protocol: "icmp", PortMin: intp(128), PortMax: intp(0)})
	if m.proto != protoICMPv6 || m.icmpType != 128 || m.icmpCode != 0 {
		t.Errorf("icmp in an IPv6 rule: %+v, want ipv6-icmp type 128 code 0", m)
	}
	m, _ = parseRule(Rule{Direction: Ingress, Ethertype: IPv4, Protocol: "tcp", PortMin: intp(1), PortMax: intp(65535), RemoteIPPrefix: pfx("0.0.0.0/0")})
	if m.portMin != 0 || m.remote.IsValid() {
		t.Errorf("all ports from anywhere: %+v, want no port or address match", m)
	}
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges(prefixes("10.0.0.1/32", "10.0.0.0/30", "10.0.0.4/32", "10.0.1.0/24", "fd00::1/128", "::ffff:10.0.0.9/128", "255.255.255.255/32"), false)
	var texts []string
	for _, r := range got {
		texts = append(texts, r.lo.String()+"-"+r.hi.String())
	}
	want := []string{"10.0.0.0-10.0.0.4", "10.0.0.9-10.0.0.9", "10.0.1.0-10.0.1.255", "255.255.255.255-255.255.255.255"}
	if !slices.Equal(texts, want) {
		t.Errorf("merged %q, want %q", texts, want)
	}
	for a, in := range map[string]bool{"10.0.0.3": true, "10.0.0.5": false, "10.0.1.77": true, "10.0.2.0": false, "255.255.255.255": true} {
		if containsAddr(got, netip.MustParseAddr(a)) != in {
			t.Errorf("contains %s = %v, want %v", a, !in, in)
		}
	}
	// A range that runs to the top address has no interval-end element.
	r := &renderer{rs: &ruleset{inet: newTable(0)}, old: newRenderCache(), next: newRenderCache()}
	r.addrSet("top", false, prefixes("255.255.255.0/24", "10.0.0.0/8"))
	for _, e := range r.rs.inet.sets["top"].elems {
		if top := e.key[0] == 255; top != (e.end == nil) {
			t.Errorf("element %x-%x: end presence wrong", e.key, e.end)
		}
	}
}
