package secgroup

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// changes renders before and after with the same port indices and returns
// the diff as Result.Changes would list it.
func changes(t *testing.T, before, after Desired) []string {
	t.Helper()
	idx := assignIndices(nil, before.Ports)
	old, _ := render(before, idx)
	idx = assignIndices(idx, after.Ports)
	new, _ := render(after, idx)
	var out []string
	for _, o := range diff(old, new) {
		out = append(out, o.String())
	}
	return out
}

func TestDiffSameDesiredChangesNothing(t *testing.T) {
	if got := changes(t, sample(), sample()); len(got) != 0 {
		t.Errorf("diff of identical states: %q", got)
	}
}

// TestDiffRuleAddTouchesOnlyItsGroupChain: a rule added to a group shared
// by several ports is one rule added to the group's chain; no port chain
// changes.
func TestDiffRuleAddTouchesOnlyItsGroupChain(t *testing.T) {
	after := sample()
	g := after.Groups["default"]
	g.Rules = append(slices.Clone(g.Rules), Rule{ID: "new", Direction: Ingress, Ethertype: IPv4, Protocol: "tcp", PortMin: intp(22), PortMax: intp(22)})
	after.Groups["default"] = g
	got := changes(t, sample(), after)
	want := []string{"add rule inet vland-sg sg-default-ingress meta nfproto ipv4 meta l4proto tcp th dport 22 accept"}
	if !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	// And back: one rule deleted.
	got = changes(t, after, sample())
	want = []string{"delete rule inet vland-sg sg-default-ingress meta nfproto ipv4 meta l4proto tcp th dport 22 accept"}
	if !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
}

// TestDiffMembershipChangeRewritesSetElementsOnly: a port joining a remote
// group changes the group's set, nothing else.
func TestDiffMembershipChangeRewritesSetElementsOnly(t *testing.T) {
	after := sample()
	after.RemoteGroups["default"] = append(slices.Clone(after.RemoteGroups["default"]), netip.MustParsePrefix("10.0.0.77/32"), netip.MustParsePrefix("fd00::77/128"))
	got := changes(t, sample(), after)
	want := []string{
		"add element inet vland-sg rg-default-4 { 10.0.0.77 }",
		"add element inet vland-sg rg-default-6 { fd00::77 }",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
	// A member next to an existing range merges with it: the old range
	// goes, the merged one comes.
	after = sample()
	after.RemoteGroups["default"] = append(slices.Clone(after.RemoteGroups["default"]), netip.MustParsePrefix("10.0.0.12/32"))
	got = changes(t, sample(), after)
	want = []string{
		"delete element inet vland-sg rg-default-4 { 10.0.0.10/31 }",
		"add element inet vland-sg rg-default-4 { 10.0.0.10-10.0.0.12 }",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes %q, want %q", got, want)
	}
}

// TestDiffPortLeavesGroup rewrites that port's two chains only.
func TestDiffPortLeavesGroup(t *testing.T) {
	after := sample()
	for i, p := range after.Ports {
		if p.ID == portA {
			after.Ports[i].Groups = []string{"default"}
		}
	}
	got := changes(t, sample(), after)
	for _, c := range got {
		if !strings.Contains(c, portA) && !strings.Contains(c, "sg-web") && !strings.Contains(c, "ag-office") { // the address group only web used goes too
			t.Errorf("unexpected change %q", c)
		}
	}
	// The web group is used by no port any more: its chains go (after the
	// port chains stopped jumping to them).
	if !slices.Contains(got, "delete chain inet vland-sg sg-web-ingress") {
		t.Errorf("changes %q do not delete the unused group chain", got)
	}
	if i, j := slices.Index(got, "flush chain inet vland-sg ingress-"+portA), slices.Index(got, "delete chain inet vland-sg sg-web-ingress"); i < 0 || j < i {
		t.Errorf("the port chain must be rewritten before the group chain goes: %q", got)
	}
}

// TestDiffNewPortAddsOnlyItsObjects: a new port adds its chains and map
// elements and changes no other port.
func TestDiffNewPortAddsOnlyItsObjects(t *testing.T) {
	after := sample()
	after.Ports = append(slices.Clone(after.Ports), testPort("eeeeeeee-5555-4555-8555-555555555555", "brqnet1", 1, "fa:16:3e:00:00:0e", addrs("10.0.0.14"), "default"))
	got := changes(t, sample(), after)
	for _, c := range got {
		if strings.Contains(c, portA) || strings.Contains(c, portB) || strings.Contains(c, portC) || strings.HasPrefix(c, "delete") || strings.HasPrefix(c, "flush") {
			t.Errorf("unexpected change %q", c)
		}
	}
	if len(got) == 0 {
		t.Error("no change for a new port")
	}
}

// TestFullOpsReplacesTablesAtomically: a full rebuild starts with add,
// delete, add of each table, in one list of operations.
func TestFullOpsReplacesTablesAtomically(t *testing.T) {
	d := sample()
	rs, _ := render(d, assignIndices(nil, d.Ports))
	ops := fullOps(rs)
	var head []string
	for _, o := range ops[:6] {
		head = append(head, o.String())
	}
	want := []string{
		"add table bridge vland-sg", "delete table bridge vland-sg", "add table bridge vland-sg",
		"add table inet vland-sg", "delete table inet vland-sg", "add table inet vland-sg",
	}
	if !slices.Equal(head, want) {
		t.Errorf("full rebuild starts %q, want %q", head, want)
	}
	if narrows(ops) != true {
		t.Error("a full rebuild must be followed by a conntrack check")
	}
	// Nothing is referenced before it exists: sets and chains come before
	// elements and rules.
	seen := map[opKind]bool{}
	for _, o := range ops[6:] {
		if (o.kind == opAddSet || o.kind == opAddChain) && (seen[opAddElems] || seen[opAddRule]) {
			t.Fatalf("%s after elements or rules", o)
		}
		seen[o.kind] = true
	}
}

func TestAssignIndicesAreStable(t *testing.T) {
	ports := []Port{{ID: "b", PortSecurity: true}, {ID: "a", PortSecurity: true}, {ID: "c"}}
	idx := assignIndices(nil, ports)
	if idx["a"] != 1 || idx["b"] != 2 || idx["c"] != 0 {
		t.Fatalf("indices %v", idx)
	}
	idx = assignIndices(idx, []Port{{ID: "b", PortSecurity: true}, {ID: "d", PortSecurity: true}})
	if idx["b"] != 2 || idx["d"] != 1 || len(idx) != 2 {
		t.Fatalf("after a left and d came: %v", idx)
	}
}

// TestRenderCacheReusesUnchangedObjects: after a change to one group, the
// next render shares every other group's and port's chains with the
// previous one, so that the diff skips them without comparing rules.
func TestRenderCacheReusesUnchangedObjects(t *testing.T) {
	d := sample()
	idx := assignIndices(nil, d.Ports)
	old, _, cache := renderCached(d, idx, nil)
	after := sample()
	g := after.Groups["web"]
	g.Rules = append(slices.Clone(g.Rules), Rule{ID: "new", Direction: Egress, Ethertype: IPv6})
	after.Groups["web"] = g
	new, _, _ := renderCached(after, idx, cache)
	for name, c := range new.inet.chains {
		if !hasPrefix(name, "sg-", "egress-", "ingress-") {
			continue // the base chains are rebuilt each time (a few rules)
		}
		if reused := old.inet.chains[name] == c; reused == strings.HasPrefix(name, "sg-web-") {
			t.Errorf("chain %s: reused=%v", name, reused)
		}
	}
	if old.inet.sets["rg-default-4"] != new.inet.sets["rg-default-4"] {
		t.Error("the unchanged remote group set was rendered again")
	}
	// A cached group is not affected by the caller changing its slices
	// afterwards.
	after.Groups["web"].Rules[0].PortMin = intp(1)
	again, _, _ := renderCached(after, idx, cache)
	if again.String() == new.String() {
		t.Error("a rule changed in place went unnoticed")
	}
}
