package secgroup

import (
	"net/netip"
	"testing"
)

// TestDefaultGroupMembersTalkAndOthersAreBlocked: with Neutron's default
// group, members reach each other over IPv4 and IPv6 (neighbour discovery
// included), a port of another group reaches neither, and members do not
// reach it either (its group has no ingress rule).
func TestDefaultGroupMembersTalkAndOthersAreBlocked(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqdef")
	a := h.vm(t, "brqdef", 1, "10.10.0.1/24", "fd00:10::1/64")
	b := h.vm(t, "brqdef", 1, "10.10.0.2/24", "fd00:10::2/64")
	c := h.vm(t, "brqdef", 1, "10.10.0.3/24", "fd00:10::3/64")
	settle(t, h.NS, a.NS, b.NS, c.NS)
	other := Group{ID: "other", Stateful: true, Rules: []Rule{
		{ID: "o-e4", Direction: Egress, Ethertype: IPv4}, {ID: "o-e6", Direction: Egress, Ethertype: IPv6},
	}}
	h.reconcile(t, Desired{
		Ports:        []Port{a.withGroups("default"), b.withGroups("default"), c.withGroups("other")},
		Groups:       map[string]Group{"default": defaultGroup("default"), "other": other},
		RemoteGroups: map[string][]netip.Prefix{"default": members(a, b), "other": members(c)},
	})
	for _, v := range []*vm{a, b, c} {
		v.listen(t, 80)
	}
	a.canConnect(t, b.ip(0), 80)
	b.canConnect(t, a.ip(0), 80)
	a.canConnect(t, b.ip(1), 80) // IPv6: ND passes, the LLA is the port's own
	b.canConnect(t, a.ip(1), 80)
	if err := a.pingWithin(t, b.ip(0), okWait); err != nil {
		t.Fatal(err)
	}
	c.cannotConnect(t, a.ip(0), 80)
	c.cannotConnect(t, b.ip(1), 80)
	a.cannotConnect(t, c.ip(0), 80)
	b.cannotConnect(t, c.ip(1), 80)
}

// TestIngressTCP22OpensExactlyPort22: a rule for TCP 22 lets connections to
// port 22 in and nothing else, not even the port next to it.
func TestIngressTCP22OpensExactlyPort22(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brq22")
	a := h.vm(t, "brq22", 1, "10.22.0.1/24")
	b := h.vm(t, "brq22", 1, "10.22.0.2/24")
	settle(t, h.NS, a.NS, b.NS)
	allOut := Rule{ID: "e4", Direction: Egress, Ethertype: IPv4}
	h.reconcile(t, Desired{
		Ports: []Port{a.withGroups("client"), b.withGroups("ssh")},
		Groups: map[string]Group{
			"client": {ID: "client", Stateful: true, Rules: []Rule{allOut}},
			"ssh":    {ID: "ssh", Stateful: true, Rules: []Rule{allOut, tcpIn("ssh", 22)}},
		},
	})
	for _, p := range []int{21, 22, 23} {
		b.listen(t, p)
	}
	a.canConnect(t, b.ip(0), 22)
	a.cannotConnect(t, b.ip(0), 23)
	a.cannotConnect(t, b.ip(0), 21)
	// Nothing comes in to a: its group has no ingress rule, but the
	// replies of its own connection did (stateful).
	a.listen(t, 22)
	b.cannotConnect(t, a.ip(0), 22)
}

// TestRemoteGroupRuleFollowsMembership: a rule allowing a remote group
// admits a port while its address is a member and stops when it leaves;
// the change rewrites set elements only.
func TestRemoteGroupRuleFollowsMembership(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqrg")
	a := h.vm(t, "brqrg", 1, "10.30.0.1/24")
	b := h.vm(t, "brqrg", 1, "10.30.0.2/24")
	srv := h.vm(t, "brqrg", 1, "10.30.0.9/24")
	settle(t, h.NS, a.NS, b.NS, srv.NS)
	srv.listen(t, 5000)
	d := Desired{
		Ports: []Port{a.withGroups("clients"), b.withGroups("clients"), srv.withGroups("server")},
		Groups: map[string]Group{
			"clients": {ID: "clients", Stateful: true, Rules: []Rule{{ID: "ce", Direction: Egress, Ethertype: IPv4}}},
			"server": {ID: "server", Stateful: true, Rules: []Rule{{ID: "si", Direction: Ingress, Ethertype: IPv4,
				Protocol: "tcp", PortMin: intp(5000), PortMax: intp(5000), RemoteGroupID: "trusted"}}},
		},
		RemoteGroups: map[string][]netip.Prefix{"trusted": members(a)},
	}
	h.reconcile(t, d)
	a.canConnect(t, srv.ip(0), 5000)
	b.cannotConnect(t, srv.ip(0), 5000)

	d.RemoteGroups = map[string][]netip.Prefix{"trusted": members(b)}
	res := h.reconcile(t, d)
	for _, c := range res.Changes {
		if !hasPrefix(c, "add element inet vland-sg rg-trusted-4", "delete element inet vland-sg rg-trusted-4") {
			t.Errorf("membership change touched more than the set: %q", c)
		}
	}
	b.canConnect(t, srv.ip(0), 5000)
	a.cannotConnect(t, srv.ip(0), 5000)
}

func hasPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

// TestRemoteIPPrefixRule: a rule with a remote prefix admits addresses in
// it and no others.
func TestRemoteIPPrefixRule(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqpfx")
	in := h.vm(t, "brqpfx", 1, "10.40.0.5/24")
	out := h.vm(t, "brqpfx", 1, "10.40.0.200/24")
	srv := h.vm(t, "brqpfx", 1, "10.40.0.1/24")
	settle(t, h.NS, in.NS, out.NS, srv.NS)
	srv.listen(t, 443)
	allOut := Group{ID: "out", Stateful: true, Rules: []Rule{{ID: "e", Direction: Egress, Ethertype: IPv4}}}
	h.reconcile(t, Desired{
		Ports: []Port{in.withGroups("out"), out.withGroups("out"), srv.withGroups("web")},
		Groups: map[string]Group{"out": allOut, "web": {ID: "web", Stateful: true, Rules: []Rule{{
			ID: "w", Direction: Ingress, Ethertype: IPv4, Protocol: "tcp", PortMin: intp(443), PortMax: intp(443),
			RemoteIPPrefix: pfx("10.40.0.0/25")}}}},
	})
	in.canConnect(t, srv.ip(0), 443)
	out.cannotConnect(t, srv.ip(0), 443)
}

// TestICMPTypeFiltering: an ICMP rule for type 8 (echo request) lets pings
// in; one for type 0 (echo reply) does not, nor does one for type 8 with
// another code.
func TestICMPTypeFiltering(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqicmp")
	a := h.vm(t, "brqicmp", 1, "10.50.0.1/24")
	b := h.vm(t, "brqicmp", 1, "10.50.0.2/24")
	settle(t, h.NS, a.NS, b.NS)
	d := func(r Rule) Desired {
		return Desired{
			Ports: []Port{a.withGroups("out"), b.withGroups("icmp")},
			Groups: map[string]Group{
				"out":  {ID: "out", Stateful: true, Rules: []Rule{{ID: "e", Direction: Egress, Ethertype: IPv4}}},
				"icmp": {ID: "icmp", Stateful: true, Rules: []Rule{r}},
			},
		}
	}
	icmp := func(typ int, code *int) Rule {
		return Rule{ID: "i", Direction: Ingress, Ethertype: IPv4, Protocol: "icmp", PortMin: intp(typ), PortMax: code}
	}
	h.reconcile(t, d(icmp(8, nil)))
	if err := a.pingWithin(t, b.ip(0), okWait); err != nil {
		t.Fatalf("echo request allowed: %v", err)
	}
	h.reconcile(t, d(icmp(0, nil)))
	if err := a.ping(t, b.ip(0)); err == nil {
		t.Fatal("ping passed with only echo replies allowed in")
	}
	h.reconcile(t, d(icmp(8, intp(1))))
	if err := a.ping(t, b.ip(0)); err == nil {
		t.Fatal("ping (code 0) passed with only code 1 allowed in")
	}
	h.reconcile(t, d(icmp(8, intp(0))))
	if err := a.pingWithin(t, b.ip(0), okWait); err != nil {
		t.Fatalf("echo request code 0 allowed: %v", err)
	}
}
