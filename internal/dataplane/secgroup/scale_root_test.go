package secgroup

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// bigDesired is 100 ports (2 of them real VMs) in 20 groups of 500 rules
// each (10,000 rules), every group's remote set holding 500 addresses
// (10,000 set elements): the benchmark's size. a may open connections
// anywhere, b accepts them on port 80.
func bigDesired(a, b *vm) Desired {
	d := Desired{Groups: map[string]Group{}, RemoteGroups: map[string][]netip.Prefix{}}
	for g := range 20 {
		id := fmt.Sprintf("g%02d", g)
		grp := Group{ID: id, Stateful: true}
		for r := range 500 {
			rule := Rule{ID: fmt.Sprintf("%s-r%d", id, r), Direction: Ingress, Ethertype: IPv4, Protocol: "tcp",
				PortMin: intp(10000 + r), PortMax: intp(10000 + r)}
			switch r % 4 {
			case 1:
				rule.RemoteGroupID = id
			case 2:
				rule.RemoteIPPrefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(g), byte(r % 256)}), 32)
			case 3:
				rule.Direction = Egress
			}
			grp.Rules = append(grp.Rules, rule)
		}
		d.Groups[id] = grp
		for m := range 500 {
			d.RemoteGroups[id] = append(d.RemoteGroups[id], netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200 + byte(g), byte(m / 100), byte(m%100)*2 + 1}), 32))
		}
	}
	for i := range 98 {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		d.Ports = append(d.Ports, Port{ID: id, Device: "tap" + id[:11], Bridge: "brqbig", Zone: 1,
			MAC: mac(fmt.Sprintf("fa:16:3e:00:%02x:%02x", i/256, i%256)), IPs: addrs(fmt.Sprintf("10.99.%d.%d", i/200, 10+i%200)),
			PortSecurity: true, Groups: []string{fmt.Sprintf("g%02d", i%20), fmt.Sprintf("g%02d", (i+1)%20)}})
	}
	d.Ports = append(d.Ports, a.withGroups("g00", "g01", "out"), b.withGroups("g00", "g02", "web"))
	d.Groups["out"] = Group{ID: "out", Stateful: true, Rules: []Rule{{ID: "o", Direction: Egress, Ethertype: IPv4}}}
	d.Groups["web"] = Group{ID: "web", Stateful: true, Rules: []Rule{tcpIn("w", 80)}}
	return d
}

// TestTenThousandRulesInOneTransaction: the benchmark's ruleset goes in
// whole in one transaction (the socket buffers and element messages are
// sized for it), traffic flows under it, and a single change at that size
// touches one rule or one element.
func TestTenThousandRulesInOneTransaction(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqbig")
	a := h.vm(t, "brqbig", 1, "10.98.0.1/24")
	b := h.vm(t, "brqbig", 1, "10.98.0.2/24")
	settle(t, h.NS, a.NS, b.NS)
	d := bigDesired(a, b)
	start := time.Now()
	res := h.reconcile(t, d)
	t.Logf("cold: %d rules, %d elements in %v", res.Rules, res.Elements, time.Since(start))
	if res.Rules < 10000 || res.Elements < 10000 {
		t.Fatalf("%d rules, %d elements: the ruleset is incomplete", res.Rules, res.Elements)
	}
	b.listen(t, 80)
	b.listen(t, 81)
	a.canConnect(t, b.ip(0), 80)
	a.cannotConnect(t, b.ip(0), 81)

	g := d.Groups["g00"]
	g.Rules = append(g.Rules, tcpIn("extra", 81))
	d.Groups["g00"] = g
	start = time.Now()
	res = h.reconcile(t, d)
	t.Logf("rule add: %v, %q", time.Since(start), res.Changes)
	if len(res.Changes) != 1 {
		t.Errorf("a rule add made %d changes", len(res.Changes))
	}
	a.canConnect(t, b.ip(0), 81)

	d.RemoteGroups["g05"] = append(d.RemoteGroups["g05"], pfx("10.250.0.1/32"))
	start = time.Now()
	res = h.reconcile(t, d)
	t.Logf("membership change: %v, %q", time.Since(start), res.Changes)
	if len(res.Changes) != 1 {
		t.Errorf("a membership change made %d changes", len(res.Changes))
	}

	g.Rules = g.Rules[:len(g.Rules)-1]
	d.Groups["g00"] = g
	start = time.Now()
	res = h.reconcile(t, d)
	t.Logf("rule delete: %v, %q", time.Since(start), res.Changes)
	a.cannotConnect(t, b.ip(0), 81)
}
