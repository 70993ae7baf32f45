package service_test

import (
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
)

// apiErr returns err as an API error, failing the test otherwise.
func apiErr(t *testing.T, err error) *apierr.Error {
	t.Helper()
	e, ok := apierr.As(err)
	if !ok {
		t.Fatalf("error %v is not an API error", err)
	}
	return e
}

// TestConcurrentFirstUseMakesOneDefaultGroup has 32 goroutines of one
// project ask for its default group at once (as concurrent first lists and
// port creates do): all get the same group, and exactly one exists, with
// Neutron's four rules.
func TestConcurrentFirstUseMakesOneDefaultGroup(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	ctx := asProject("p1")
	var wg sync.WaitGroup
	ids := make([]string, 32)
	errs := make([]error, 32)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = svc.EnsureDefaultSecurityGroup(ctx, "p1")
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] == "" || ids[i] != ids[0] {
			t.Fatalf("caller %d got %q, %v; caller 0 got %q", i, ids[i], errs[i], ids[0])
		}
	}
	var defaults []string
	for _, cv := range svc.Visible(ctx, service.SecurityGroups) {
		g := cv.Obj.(*model.SecurityGroup)
		if g.Name == "default" {
			defaults = append(defaults, g.ID)
		}
	}
	if len(defaults) != 1 || defaults[0] != ids[0] {
		t.Fatalf("default groups %v, want just %s", defaults, ids[0])
	}
	if rules := svc.SecurityGroupRules(ids[0]); len(rules) != 4 {
		t.Fatalf("default group has %d rules, want 4", len(rules))
	}
	// Another project may not cause p1's default group; p2's own is new.
	if id, err := svc.EnsureDefaultSecurityGroup(asProject("p2"), "p3"); id != "" || err != nil {
		t.Fatalf("p2 made p3's default group: %q %v", id, err)
	}
	if id, _ := svc.EnsureDefaultSecurityGroup(asProject("p2"), "p2"); id == "" || id == ids[0] {
		t.Fatalf("p2's default group %q", id)
	}
}

// TestConcurrentDuplicateRulesCreateOne: 16 goroutines add the same rule
// (spelled differently) to one group; one succeeds, the others get
// SecurityGroupRuleExists naming it.
func TestConcurrentDuplicateRulesCreateOne(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	ctx := asProject("p1")
	gs, err := svc.CreateSecurityGroups(ctx, []model.Fields{decode(t, model.SecurityGroupSpec, map[string]any{"name": "web"})})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]*model.SecurityGroupRule, 16)
	errs := make([]error, 16)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			proto := any("tcp")
			if i%2 == 1 {
				proto = "6"
			}
			rs, err := svc.CreateSecurityGroupRules(ctx, []model.Fields{decode(t, model.SecurityGroupRuleSpec, map[string]any{
				"security_group_id": gs[0].ID, "direction": "ingress", "protocol": proto, "port_range_min": "22", "port_range_max": "22",
			})})
			errs[i] = err
			if err == nil {
				results[i] = rs[0]
			}
		}()
	}
	wg.Wait()
	var created *model.SecurityGroupRule
	for i := range results {
		if errs[i] == nil {
			if created != nil {
				t.Fatalf("two rules created: %s and %s", created.ID, results[i].ID)
			}
			created = results[i]
		}
	}
	if created == nil {
		t.Fatal("no rule created")
	}
	for _, err := range errs {
		if err == nil {
			continue
		}
		e := apiErr(t, err)
		if e.Status != 409 || e.Type != "SecurityGroupRuleExists" || e.Message != "Security group rule already exists. Rule id is "+created.ID+"." {
			t.Errorf("loser got %v", e)
		}
	}
	if n := len(svc.SecurityGroupRules(gs[0].ID)); n != 3 {
		t.Errorf("group has %d rules, want 2 egress + 1", n)
	}
}

// TestReadPathFollowsMembershipAndReferences: the functions the agent API
// serves hosts from follow ports joining and leaving groups, addresses
// (fixed IPs and allowed address pairs), rules naming groups, and the
// cascade when a remote group goes.
func TestReadPathFollowsMembershipAndReferences(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	ctx := asProject("p1")
	n, _ := mustNetworkWithSubnet(t, svc, ctx, "10.0.0.0/24")
	ports, err := svc.CreatePorts(ctx, []model.Fields{
		decode(t, model.PortSpec, map[string]any{"network_id": n.ID}),
		decode(t, model.PortSpec, map[string]any{"network_id": n.ID, "allowed_address_pairs": []any{map[string]any{"ip_address": "10.9.0.0/16"}}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	def := ports[0].SecurityGroups
	if len(def) != 1 || !slices.Equal(ports[1].SecurityGroups, def) {
		t.Fatalf("ports' groups %v %v, want the default group", def, ports[1].SecurityGroups)
	}
	g, ok := svc.SecurityGroup(def[0])
	if !ok || g.Name != "default" || g.ProjectID != "p1" {
		t.Fatalf("default group %+v", g)
	}
	if got, want := svc.SecurityGroupMembers(def[0]), sorted(ports[0].ID, ports[1].ID); !slices.Equal(got, want) {
		t.Fatalf("members %v, want %v", got, want)
	}
	wantAddrs := []netip.Prefix{
		netip.PrefixFrom(ports[0].FixedIPs[0].IPAddress, 32), netip.PrefixFrom(ports[1].FixedIPs[0].IPAddress, 32), netip.MustParsePrefix("10.9.0.0/16"),
	}
	if got := svc.SecurityGroupAddresses(def[0]); !slices.Equal(got, model.SortPrefixes(wantAddrs)) {
		t.Fatalf("addresses %v, want %v", got, wantAddrs)
	}
	if got := svc.SecurityGroupsReferencing(def[0]); !slices.Equal(got, def) {
		t.Fatalf("groups referencing the default group %v, want itself", got)
	}

	gs, err := svc.CreateSecurityGroups(ctx, []model.Fields{decode(t, model.SecurityGroupSpec, map[string]any{"name": "db"})})
	if err != nil {
		t.Fatal(err)
	}
	db := gs[0].ID
	if _, err := svc.CreateSecurityGroupRules(ctx, []model.Fields{decode(t, model.SecurityGroupRuleSpec, map[string]any{
		"security_group_id": db, "direction": "ingress", "protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432, "remote_group_id": def[0],
	})}); err != nil {
		t.Fatal(err)
	}
	if got := svc.SecurityGroupsReferencing(def[0]); !slices.Equal(got, sorted(def[0], db)) {
		t.Fatalf("groups referencing the default group %v, want it and db", got)
	}
	// A port moves to db: membership follows; the default group is in use
	// by the other port only.
	if _, err := svc.UpdatePort(ctx, ports[0].ID, decode2(t, model.PortSpec, map[string]any{"security_groups": []any{db}})); err != nil {
		t.Fatal(err)
	}
	if got := svc.SecurityGroupMembers(db); !slices.Equal(got, []string{ports[0].ID}) {
		t.Fatalf("db members %v", got)
	}
	if got := svc.SecurityGroupMembers(def[0]); !slices.Equal(got, []string{ports[1].ID}) {
		t.Fatalf("default members %v", got)
	}
	admin := asProject("admin", policy.RoleAdmin)
	err = svc.DeleteSecurityGroup(admin, def[0])
	if e := apiErr(t, err); e.Status != 409 || e.Type != "SecurityGroupInUse" {
		t.Fatalf("deleting a group in use: %v", e)
	}
	if err := svc.DeletePort(ctx, ports[1].ID); err != nil {
		t.Fatal(err)
	}
	if got := svc.SecurityGroupMembers(def[0]); len(got) != 0 {
		t.Fatalf("default members after port delete %v", got)
	}
	// The admin deletes the default group: db's rule naming it goes too.
	if err := svc.DeleteSecurityGroup(admin, def[0]); err != nil {
		t.Fatal(err)
	}
	if rules := svc.SecurityGroupRules(db); len(rules) != 2 {
		t.Fatalf("db keeps %d rules, want its 2 egress rules", len(rules))
	}
	if got := svc.SecurityGroupsReferencing(def[0]); len(got) != 0 {
		t.Fatalf("deleted group still referenced by %v", got)
	}
	// The project's next port gets a new default group.
	more, err := svc.CreatePorts(ctx, []model.Fields{decode(t, model.PortSpec, map[string]any{"network_id": n.ID})})
	if err != nil {
		t.Fatal(err)
	}
	if len(more[0].SecurityGroups) != 1 || more[0].SecurityGroups[0] == def[0] {
		t.Fatalf("new port's groups %v (old default %s)", more[0].SecurityGroups, def[0])
	}
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func decode2(t *testing.T, spec *model.Spec, m map[string]any) model.Fields {
	t.Helper()
	f, err := spec.Decode(m, model.Update)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
