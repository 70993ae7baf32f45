package apitest

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/quotas"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/addressgroups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// newMember makes a fresh project with a member on the shared server, for
// tests that must see a project's first use of security groups.
func newMember(t *testing.T, prefix string) *user {
	t.Helper()
	name := uniq(prefix)
	pid, err := shared.srv.Builtin.CreateProject(ctx, "p-"+name)
	must(t, err)
	u := &user{name: name, projectID: pid, endpoint: shared.admin.endpoint, resourceBase: shared.admin.resourceBase}
	must(t, shared.addUser(u, "member"))
	return u
}

// listGroups lists the groups matching opts as c.
func listGroups(t *testing.T, c *gophercloud.ServiceClient, opts groups.ListOpts) []groups.SecGroup {
	t.Helper()
	pages, err := groups.List(c, opts).AllPages(ctx)
	must(t, err)
	out, err := groups.ExtractGroups(pages)
	must(t, err)
	return out
}

// listRules lists the rules matching opts as c.
func listRules(t *testing.T, c *gophercloud.ServiceClient, opts rules.ListOpts) []rules.SecGroupRule {
	t.Helper()
	pages, err := rules.List(c, opts).AllPages(ctx)
	must(t, err)
	out, err := rules.ExtractRules(pages)
	must(t, err)
	return out
}

// ruleShape is what a rule matches, for comparing sets of rules.
func ruleShape(r rules.SecGroupRule) string {
	return strings.Join([]string{r.Direction, r.EtherType, r.Protocol, r.RemoteIPPrefix, r.RemoteGroupID}, "/")
}

func shapes(rs []rules.SecGroupRule) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = ruleShape(r)
	}
	sort.Strings(out)
	return out
}

// defaultGroup returns the project's default group, failing unless it has
// exactly one.
func defaultGroup(t *testing.T, c *gophercloud.ServiceClient) groups.SecGroup {
	t.Helper()
	gs := listGroups(t, c, groups.ListOpts{Name: "default"})
	if len(gs) != 1 {
		t.Fatalf("%d default groups, want 1: %+v", len(gs), gs)
	}
	return gs[0]
}

// TestDefaultGroupIsMadeLazilyWithNeutronsRules: a new project's first list
// of groups shows its default group with exactly Neutron's four rules
// (egress IPv4 and IPv6 anywhere, ingress IPv4 and IPv6 from the group
// itself); the rule list shows the same rules.
func TestDefaultGroupIsMadeLazilyWithNeutronsRules(t *testing.T) {
	t.Parallel()
	u := newMember(t, "lazy")
	c := u.net(t)
	gs := listGroups(t, c, groups.ListOpts{})
	if len(gs) != 1 || gs[0].Name != "default" || gs[0].Description != "Default security group" || !gs[0].Stateful || gs[0].ProjectID != u.projectID {
		t.Fatalf("first list: %+v", gs)
	}
	g := gs[0]
	want := []string{"egress/IPv4///", "egress/IPv6///", "ingress/IPv4///" + g.ID, "ingress/IPv6///" + g.ID}
	sort.Strings(want)
	if got := shapes(g.Rules); !slices.Equal(got, want) {
		t.Fatalf("default rules %v, want %v", got, want)
	}
	if got := shapes(listRules(t, c, rules.ListOpts{SecGroupID: g.ID})); !slices.Equal(got, want) {
		t.Fatalf("listed default rules %v, want %v", got, want)
	}
	for _, r := range g.Rules {
		if r.ProjectID != u.projectID || r.SecGroupID != g.ID {
			t.Errorf("rule %+v", r)
		}
	}
	if again := defaultGroup(t, c); again.ID != g.ID {
		t.Fatalf("second list made another default group")
	}
}

// TestConcurrentFirstListsMakeOneDefaultGroup: 16 first lists of one new
// project at once leave it exactly one default group.
func TestConcurrentFirstListsMakeOneDefaultGroup(t *testing.T) {
	t.Parallel()
	u := newMember(t, "race")
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := "/v2.0/security-groups"
			if i%2 == 1 {
				path = "/v2.0/security-group-rules"
			}
			if r := shared.raw(t, u, "GET", path, ""); r.status != 200 {
				t.Errorf("list %s: %d %s", path, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	g := defaultGroup(t, u.net(t))
	if len(g.Rules) != 4 {
		t.Fatalf("default group has %d rules", len(g.Rules))
	}
}

// TestSecurityGroupCRUD: create (with Neutron's two egress rules), show,
// filter, update, tags, stateless groups, delete.
func TestSecurityGroupCRUD(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	name := uniq("web")
	g, err := groups.Create(ctx, c, groups.CreateOpts{Name: name, Description: "web tier"}).Extract()
	must(t, err)
	if g.Name != name || g.Description != "web tier" || !g.Stateful || g.ProjectID != shared.a.projectID || g.TenantID != shared.a.projectID {
		t.Fatalf("created %+v", g)
	}
	if got, want := shapes(g.Rules), []string{"egress/IPv4///", "egress/IPv6///"}; !slices.Equal(got, want) {
		t.Fatalf("new group rules %v, want %v", got, want)
	}
	got, err := groups.Get(ctx, c, g.ID).Extract()
	must(t, err)
	if got.ID != g.ID || len(got.Rules) != 2 || got.RevisionNumber != g.RevisionNumber {
		t.Fatalf("get %+v", got)
	}
	if l := listGroups(t, c, groups.ListOpts{Name: name}); len(l) != 1 || l[0].ID != g.ID || len(l[0].Rules) != 2 {
		t.Fatalf("filtered list %+v", l)
	}
	desc := "renamed"
	up, err := groups.Update(ctx, c, g.ID, groups.UpdateOpts{Name: name + "-2", Description: &desc}).Extract()
	must(t, err)
	if up.Name != name+"-2" || up.Description != desc || up.RevisionNumber <= g.RevisionNumber || len(up.Rules) != 2 {
		t.Fatalf("updated %+v", up)
	}
	r := shared.raw(t, shared.a, "PUT", "/v2.0/security-groups/"+g.ID+"/tags/blue", "")
	if r.status != 201 {
		t.Fatalf("tag: %d %s", r.status, r.body)
	}
	if l := listGroups(t, c, groups.ListOpts{Tags: "blue", Name: name + "-2"}); len(l) != 1 {
		t.Fatalf("tag filter %+v", l)
	}
	off := false
	sl, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("stateless"), Stateful: &off}).Extract()
	must(t, err)
	if sl.Stateful {
		t.Fatal("stateless group is stateful")
	}
	if l := listGroups(t, c, groups.ListOpts{Stateful: &off, ID: sl.ID}); len(l) != 1 {
		t.Fatalf("stateful=false filter %+v", l)
	}
	on := true
	back, err := groups.Update(ctx, c, sl.ID, groups.UpdateOpts{Stateful: &on}).Extract()
	must(t, err)
	if !back.Stateful {
		t.Fatal("unused group did not become stateful")
	}
	r = shared.raw(t, shared.a, "GET", "/v2.0/security-groups/"+g.ID+"?fields=id&fields=security_group_rules", "")
	if sg := r.json(t)["security_group"].(map[string]any); len(sg) != 2 || len(sg["security_group_rules"].([]any)) != 2 {
		t.Fatalf("fields: %s", r.body)
	}
	must(t, groups.Delete(ctx, c, g.ID).ExtractErr())
	_, err = groups.Get(ctx, c, g.ID).Extract()
	e := wantError(t, err, 404, "SecurityGroupNotFound")
	if e.Message != "Security group "+g.ID+" does not exist" {
		t.Errorf("message %q", e.Message)
	}
	if l := listRules(t, c, rules.ListOpts{SecGroupID: g.ID}); len(l) != 0 {
		t.Fatalf("deleted group's rules remain: %+v", l)
	}
	wantError(t, groups.Delete(ctx, c, g.ID).ExtractErr(), 404, "SecurityGroupNotFound")
}

// TestSecurityGroupRulesThroughGophercloud: rules by protocol, port range,
// ICMP type, remote prefix and remote group are created, shown
// normalised, listed by filters and deleted; a duplicate is a 409 naming
// the existing rule.
func TestSecurityGroupRulesThroughGophercloud(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	g, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("rules")}).Extract()
	must(t, err)
	other, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("peer")}).Extract()
	must(t, err)
	ssh, err := rules.Create(ctx, c, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID,
		Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22, RemoteIPPrefix: "203.0.113.7/24", Description: "ssh"}).Extract()
	must(t, err)
	if ssh.Protocol != "tcp" || ssh.PortRangeMin != 22 || ssh.PortRangeMax != 22 || ssh.RemoteIPPrefix != "203.0.113.7/24" || ssh.Description != "ssh" || ssh.ProjectID != shared.a.projectID {
		t.Fatalf("ssh rule %+v", ssh)
	}
	r := shared.raw(t, shared.a, "GET", "/v2.0/security-group-rules/"+ssh.ID, "")
	if v := r.json(t)["security_group_rule"].(map[string]any); v["normalized_cidr"] != "203.0.113.0/24" || v["belongs_to_default_sg"] != false {
		t.Fatalf("shown rule %s", r.body)
	}
	ping, err := rules.Create(ctx, c, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType6, SecGroupID: g.ID,
		Protocol: "icmp", PortRangeMin: 128}).Extract()
	must(t, err)
	if ping.Protocol != "ipv6-icmp" || ping.PortRangeMin != 128 || ping.PortRangeMax != 0 {
		t.Fatalf("ICMPv6 echo rule %+v", ping)
	}
	peer, err := rules.Create(ctx, c, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID,
		Protocol: rules.ProtocolUDP, PortRangeMin: 5000, PortRangeMax: 5100, RemoteGroupID: other.ID}).Extract()
	must(t, err)
	if peer.RemoteGroupID != other.ID || peer.PortRangeMin != 5000 || peer.PortRangeMax != 5100 {
		t.Fatalf("remote group rule %+v", peer)
	}
	// The same rule spelled another way is a duplicate.
	_, err = rules.Create(ctx, c, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID,
		Protocol: "6", PortRangeMin: 22, PortRangeMax: 22, RemoteIPPrefix: "203.0.113.7/24"}).Extract()
	e := wantError(t, err, 409, "SecurityGroupRuleExists")
	if e.Message != "Security group rule already exists. Rule id is "+ssh.ID+"." {
		t.Errorf("message %q", e.Message)
	}
	if l := listRules(t, c, rules.ListOpts{SecGroupID: g.ID, Protocol: "tcp"}); len(l) != 1 || l[0].ID != ssh.ID {
		t.Fatalf("protocol filter %+v", l)
	}
	if l := listRules(t, c, rules.ListOpts{SecGroupID: g.ID, Direction: "ingress"}); len(l) != 3 {
		t.Fatalf("direction filter: %d rules", len(l))
	}
	if l := listRules(t, c, rules.ListOpts{RemoteGroupID: other.ID}); len(l) != 1 || l[0].ID != peer.ID {
		t.Fatalf("remote group filter %+v", l)
	}
	got, err := groups.Get(ctx, c, g.ID).Extract()
	must(t, err)
	if len(got.Rules) != 5 {
		t.Fatalf("group shows %d rules, want 5", len(got.Rules))
	}
	// Bulk: two rules at once, and a duplicate within one request.
	bulk, err := rules.CreateBulk(ctx, c, []rules.CreateOpts{
		{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID, Protocol: rules.ProtocolTCP, PortRangeMin: 80, PortRangeMax: 80},
		{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID, Protocol: rules.ProtocolTCP, PortRangeMin: 443, PortRangeMax: 443},
	}).Extract()
	must(t, err)
	if len(bulk) != 2 {
		t.Fatalf("bulk created %d", len(bulk))
	}
	_, err = rules.CreateBulk(ctx, c, []rules.CreateOpts{
		{Direction: rules.DirEgress, EtherType: rules.EtherType4, SecGroupID: g.ID, Protocol: rules.ProtocolTCP, PortRangeMin: 25, PortRangeMax: 25},
		{Direction: rules.DirEgress, EtherType: rules.EtherType4, SecGroupID: g.ID, Protocol: "6", PortRangeMin: 25, PortRangeMax: 25},
	}).Extract()
	wantError(t, err, 409, "DuplicateSecurityGroupRuleInPost")
	_, err = rules.CreateBulk(ctx, c, []rules.CreateOpts{
		{Direction: rules.DirEgress, EtherType: rules.EtherType4, SecGroupID: g.ID, Protocol: rules.ProtocolTCP, PortRangeMin: 26, PortRangeMax: 26},
		{Direction: rules.DirEgress, EtherType: rules.EtherType4, SecGroupID: other.ID, Protocol: rules.ProtocolTCP, PortRangeMin: 26, PortRangeMax: 26},
	}).Extract()
	wantError(t, err, 400, "SecurityGroupNotSingleGroupRules")

	must(t, rules.Delete(ctx, c, ssh.ID).ExtractErr())
	_, err = rules.Get(ctx, c, ssh.ID).Extract()
	wantError(t, err, 404, "SecurityGroupRuleNotFound")
	wantError(t, rules.Delete(ctx, c, ssh.ID).ExtractErr(), 404, "SecurityGroupRuleNotFound")
	// Deleting the remote group takes the rule naming it, as Neutron.
	must(t, groups.Delete(ctx, c, other.ID).ExtractErr())
	_, err = rules.Get(ctx, c, peer.ID).Extract()
	wantError(t, err, 404, "SecurityGroupRuleNotFound")
}

// TestSecurityGroupRuleBadInput: every invalid rule is refused with
// Neutron's status and error type, and nothing is created.
func TestSecurityGroupRuleBadInput(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	g, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("bad")}).Extract()
	must(t, err)
	bOwn, err := groups.Create(ctx, shared.b.net(t), groups.CreateOpts{Name: uniq("b-own")}).Extract()
	must(t, err)
	base := `"security_group_id": "` + g.ID + `", "direction": "ingress"`
	cases := []struct {
		name, body string
		status     int
		typ        string
	}{
		{"no direction", `{"security_group_id": "` + g.ID + `"}`, 400, "HTTPBadRequest"},
		{"bad direction", `{"security_group_id": "` + g.ID + `", "direction": "sideways"}`, 400, "HTTPBadRequest"},
		{"bad ethertype", `{` + base + `, "ethertype": "IPv5"}`, 400, "SecurityGroupRuleInvalidEtherType"},
		{"bad protocol", `{` + base + `, "protocol": "tcpx"}`, 400, "SecurityGroupRuleInvalidProtocol"},
		{"protocol 300", `{` + base + `, "protocol": 300}`, 400, "SecurityGroupRuleInvalidProtocol"},
		{"port 70000", `{` + base + `, "protocol": "tcp", "port_range_min": 70000, "port_range_max": 70000}`, 400, "SecurityGroupInvalidPortValue"},
		{"port text", `{` + base + `, "protocol": "tcp", "port_range_min": "ssh"}`, 400, "SecurityGroupInvalidPortValue"},
		{"ports without protocol", `{` + base + `, "port_range_min": 80, "port_range_max": 80}`, 400, "SecurityGroupProtocolRequiredWithPorts"},
		{"min above max", `{` + base + `, "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}`, 400, "SecurityGroupInvalidPortRange"},
		{"max only", `{` + base + `, "protocol": "udp", "port_range_max": 80}`, 400, "SecurityGroupInvalidPortRange"},
		{"port 0", `{` + base + `, "protocol": "tcp", "port_range_min": 0, "port_range_max": 80}`, 400, "SecurityGroupInvalidPortValue"},
		{"ICMP type 256", `{` + base + `, "protocol": "icmp", "port_range_min": 256}`, 400, "SecurityGroupInvalidIcmpValue"},
		{"ICMP code without type", `{` + base + `, "protocol": "icmp", "port_range_max": 3}`, 400, "SecurityGroupMissingIcmpType"},
		{"ports for a portless protocol", `{` + base + `, "protocol": "gre", "port_range_min": 5, "port_range_max": 6}`, 400, "SecurityGroupInvalidProtocolForPort"},
		{"bad CIDR", `{` + base + `, "remote_ip_prefix": "10.0.0.0/40"}`, 400, "InvalidCIDR"},
		{"CIDR of the other family", `{` + base + `, "ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}`, 400, "SecurityGroupRuleParameterConflict"},
		{"IPv6 protocol on IPv4", `{` + base + `, "protocol": "ipv6-icmp"}`, 400, "SecurityGroupEthertypeConflictWithProtocol"},
		{"prefix and remote group", `{` + base + `, "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "` + g.ID + `"}`, 400, "SecurityGroupMultipleRemoteEntites"},
		{"remote group and address group", `{` + base + `, "remote_address_group_id": "` + g.ID + `", "remote_group_id": "` + g.ID + `"}`, 400, "SecurityGroupMultipleRemoteEntites"},
		{"read-only attribute", `{` + base + `, "normalized_cidr": "10.0.0.0/8"}`, 400, "HTTPBadRequest"},
		{"unknown group", `{"security_group_id": "` + unknownID + `", "direction": "ingress"}`, 404, "SecurityGroupNotFound"},
		{"another project's group", `{"security_group_id": "` + bOwn.ID + `", "direction": "ingress"}`, 404, "SecurityGroupNotFound"},
		{"unknown remote group", `{` + base + `, "remote_group_id": "` + unknownID + `"}`, 404, "SecurityGroupNotFound"},
		{"another project's remote group", `{` + base + `, "remote_group_id": "` + bOwn.ID + `"}`, 404, "SecurityGroupNotFound"},
		{"unknown remote address group", `{` + base + `, "remote_address_group_id": "` + unknownID + `"}`, 404, "AddressGroupNotFound"},
		{"other project", `{` + base + `, "project_id": "` + shared.b.projectID + `"}`, 403, "PolicyNotAuthorized"},
	}
	for _, tc := range cases {
		r := shared.raw(t, shared.a, "POST", "/v2.0/security-group-rules", `{"security_group_rule": `+tc.body+`}`)
		if r.status != tc.status {
			t.Errorf("%s: got %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.typ)
			continue
		}
		if e := r.neutron(t); e.Type != tc.typ {
			t.Errorf("%s: got %d %s (%s), want %s", tc.name, r.status, e.Type, e.Message, tc.typ)
		}
	}
	// A reader may not add rules.
	r := shared.raw(t, shared.reader, "POST", "/v2.0/security-group-rules", `{"security_group_rule": {`+base+`}}`)
	wantRaw(t, r, 403, "PolicyNotAuthorized")
	if l := listRules(t, c, rules.ListOpts{SecGroupID: g.ID}); len(l) != 2 {
		t.Fatalf("bad input created rules: %d", len(l))
	}
	// Rules cannot change.
	rid := listRules(t, c, rules.ListOpts{SecGroupID: g.ID})[0].ID
	r = shared.raw(t, shared.a, "PUT", "/v2.0/security-group-rules/"+rid, `{"security_group_rule": {"direction": "egress"}}`)
	wantRaw(t, r, 400, "HTTPBadRequest")
	r = shared.raw(t, shared.a, "PUT", "/v2.0/security-group-rules/"+rid, `{"security_group_rule": {"description": "x"}}`)
	wantRaw(t, r, 405, "HTTPMethodNotAllowed")
	// Groups: bad values.
	r = shared.raw(t, shared.a, "POST", "/v2.0/security-groups", `{"security_group": {"name": "x", "stateful": "maybe"}}`)
	wantRaw(t, r, 400, "HTTPBadRequest")
	r = shared.raw(t, shared.a, "POST", "/v2.0/security-groups", `{"security_group": {"name": "x", "security_group_rules": []}}`)
	wantRaw(t, r, 400, "HTTPBadRequest")
}

// TestDefaultGroupCannotBeRemovedOrRenamedByMembers: a member gets 409 for
// deleting or renaming the default group and for naming a group
// "default"; an admin deletes it, and the project's next list makes a new
// one.
func TestDefaultGroupCannotBeRemovedOrRenamedByMembers(t *testing.T) {
	t.Parallel()
	u := newMember(t, "defaults")
	c, admin := u.net(t), shared.admin.net(t)
	g := defaultGroup(t, c)
	err := groups.Delete(ctx, c, g.ID).ExtractErr()
	if e := wantError(t, err, 409, "SecurityGroupCannotRemoveDefault"); e.Message != "Insufficient rights for removing default security group." {
		t.Errorf("message %q", e.Message)
	}
	_, err = groups.Update(ctx, c, g.ID, groups.UpdateOpts{Name: "mine"}).Extract()
	if e := wantError(t, err, 409, "SecurityGroupCannotUpdateDefault"); e.Message != "Updating default security group not allowed." {
		t.Errorf("message %q", e.Message)
	}
	desc := "still the default"
	up, err := groups.Update(ctx, c, g.ID, groups.UpdateOpts{Description: &desc}).Extract()
	must(t, err)
	if up.Name != "default" || up.Description != desc {
		t.Fatalf("description update %+v", up)
	}
	_, err = groups.Create(ctx, c, groups.CreateOpts{Name: "Default"}).Extract()
	wantError(t, err, 409, "SecurityGroupDefaultAlreadyExists")
	other, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("other")}).Extract()
	must(t, err)
	_, err = groups.Update(ctx, c, other.ID, groups.UpdateOpts{Name: "default"}).Extract()
	wantError(t, err, 409, "SecurityGroupDefaultAlreadyExists")

	must(t, groups.Delete(ctx, admin, g.ID).ExtractErr())
	again := defaultGroup(t, c)
	if again.ID == g.ID || len(again.Rules) != 4 {
		t.Fatalf("recreated default group %+v", again)
	}
}

// TestOtherProjectsGroupsAre404: another project's group and rules are
// not found for reading, changing, adding rules or using on a port; an
// admin may add a rule to a project's group, which the project owns.
func TestOtherProjectsGroupsAre404(t *testing.T) {
	t.Parallel()
	a, b, admin := shared.a.net(t), shared.b.net(t), shared.admin.net(t)
	g, err := groups.Create(ctx, a, groups.CreateOpts{Name: uniq("private")}).Extract()
	must(t, err)
	_, err = groups.Get(ctx, b, g.ID).Extract()
	wantError(t, err, 404, "SecurityGroupNotFound")
	_, err = groups.Update(ctx, b, g.ID, groups.UpdateOpts{Name: "stolen"}).Extract()
	wantError(t, err, 404, "SecurityGroupNotFound")
	wantError(t, groups.Delete(ctx, b, g.ID).ExtractErr(), 404, "SecurityGroupNotFound")
	for _, sg := range listGroups(t, b, groups.ListOpts{}) {
		if sg.ProjectID != shared.b.projectID {
			t.Errorf("b lists %s of project %s", sg.ID, sg.ProjectID)
		}
	}
	rid := g.Rules[0].ID
	_, err = rules.Get(ctx, b, rid).Extract()
	wantError(t, err, 404, "SecurityGroupRuleNotFound")
	wantError(t, rules.Delete(ctx, b, rid).ExtractErr(), 404, "SecurityGroupRuleNotFound")
	for _, r := range listRules(t, b, rules.ListOpts{}) {
		if r.ProjectID != shared.b.projectID {
			t.Errorf("b lists rule %s of project %s", r.ID, r.ProjectID)
		}
	}
	r := shared.raw(t, shared.b, "GET", "/v2.0/security-groups/"+g.ID+"/tags", "")
	wantRaw(t, r, 404, "TagResourceNotFound")
	bn, _ := netWithSubnet(t, b, uniq("b-net"), "10.70.0.0/24")
	_, err = ports.Create(ctx, b, ports.CreateOpts{NetworkID: bn.ID, SecurityGroups: &[]string{g.ID}}).Extract()
	if e := wantError(t, err, 404, "SecurityGroupNotFound"); e.Message != "Security group "+g.ID+" does not exist" {
		t.Errorf("message %q", e.Message)
	}
	// The admin adds a rule to a's group: the rule is a's, a sees and
	// deletes it.
	ar, err := rules.Create(ctx, admin, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID,
		Protocol: rules.ProtocolTCP, PortRangeMin: 8080, PortRangeMax: 8080}).Extract()
	must(t, err)
	if ar.ProjectID != shared.a.projectID {
		t.Fatalf("admin's rule in a's group belongs to %s", ar.ProjectID)
	}
	must(t, rules.Delete(ctx, a, ar.ID).ExtractErr())
}

// TestPortsAndSecurityGroups: ports get the default group unless told
// otherwise; network service ports and ports without port security get
// none; groups must exist and not mix statefulness; port security cannot
// go while groups stay; a group in use cannot be deleted or change its
// statefulness.
func TestPortsAndSecurityGroups(t *testing.T) {
	t.Parallel()
	u := newMember(t, "ports")
	c, admin := u.net(t), shared.admin.net(t)
	n, _ := netWithSubnet(t, c, uniq("sg-net"), "10.71.0.0/24")
	p := createPort(t, c, rawPort{"network_id": n.ID})
	def := defaultGroup(t, c)
	if !slices.Equal(p.SecurityGroups, []string{def.ID}) || !p.PortSecurityEnabled {
		t.Fatalf("port's groups %v, want the default group %s", p.SecurityGroups, def.ID)
	}
	web, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("web")}).Extract()
	must(t, err)
	off := false
	cold, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("stateless"), Stateful: &off}).Extract()
	must(t, err)
	q := createPort(t, c, rawPort{"network_id": n.ID, "security_groups": []string{web.ID, def.ID}})
	if len(q.SecurityGroups) != 2 {
		t.Fatalf("port's groups %v", q.SecurityGroups)
	}
	none := createPort(t, c, rawPort{"network_id": n.ID, "security_groups": []string{}})
	if len(none.SecurityGroups) != 0 {
		t.Fatalf("port asked for no groups has %v", none.SecurityGroups)
	}
	_, err = ports.Create(ctx, c, rawPort{"network_id": n.ID, "security_groups": []string{web.ID, cold.ID}}).Extract()
	wantError(t, err, 409, "SecurityGroupConflict")
	_, err = ports.Create(ctx, c, rawPort{"network_id": n.ID, "security_groups": []string{unknownID}}).Extract()
	wantError(t, err, 404, "SecurityGroupNotFound")
	_, err = ports.Create(ctx, c, rawPort{"network_id": n.ID, "port_security_enabled": false, "security_groups": []string{web.ID}}).Extract()
	if e := wantError(t, err, 400, "PortSecurityAndIPRequiredForSecurityGroups"); !strings.HasPrefix(e.Message, "Port security must be enabled") {
		t.Errorf("message %q", e.Message)
	}
	open := createPort(t, c, rawPort{"network_id": n.ID, "port_security_enabled": false})
	if len(open.SecurityGroups) != 0 || open.PortSecurityEnabled {
		t.Fatalf("port without port security %+v", open)
	}
	dhcp := createPort(t, admin, rawPort{"network_id": n.ID, "device_owner": "network:dhcp", "project_id": u.projectID})
	if len(dhcp.SecurityGroups) != 0 {
		t.Fatalf("DHCP port has groups %v", dhcp.SecurityGroups)
	}

	// Port security off while groups stay: 409; with the groups removed: fine.
	_, err = ports.Update(ctx, c, p.ID, portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, PortSecurityEnabled: &off}).Extract()
	if e := wantError(t, err, 409, "PortSecurityPortHasSecurityGroup"); !strings.HasPrefix(e.Message, "Port has security group associated.") {
		t.Errorf("message %q", e.Message)
	}
	_, err = ports.Update(ctx, c, p.ID, portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{SecurityGroups: &[]string{web.ID}}, PortSecurityEnabled: &off}).Extract()
	wantError(t, err, 400, "PortSecurityAndIPRequiredForSecurityGroups")
	var up port
	must(t, ports.Update(ctx, c, p.ID, portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{SecurityGroups: &[]string{}}, PortSecurityEnabled: &off}).ExtractInto(&up))
	if up.PortSecurityEnabled || len(up.SecurityGroups) != 0 {
		t.Fatalf("port after disabling port security %+v", up)
	}
	_, err = ports.Update(ctx, c, open.ID, ports.UpdateOpts{SecurityGroups: &[]string{web.ID}}).Extract()
	wantError(t, err, 400, "PortSecurityAndIPRequiredForSecurityGroups")

	// Groups in use.
	err = groups.Delete(ctx, c, web.ID).ExtractErr()
	if e := wantError(t, err, 409, "SecurityGroupInUse"); e.Message != "Security Group "+web.ID+" in use." {
		t.Errorf("message %q", e.Message)
	}
	_, err = groups.Update(ctx, c, web.ID, groups.UpdateOpts{Stateful: &off}).Extract()
	wantError(t, err, 409, "SecurityGroupInUse")
	if l := listPorts(t, c, ports.ListOpts{SecurityGroups: []string{web.ID}}); len(l) != 1 || l[0].ID != q.ID {
		t.Fatalf("ports filtered by group %+v", l)
	}
	// Moving the port off the group frees it.
	_, err = ports.Update(ctx, c, q.ID, ports.UpdateOpts{SecurityGroups: &[]string{def.ID}}).Extract()
	must(t, err)
	must(t, groups.Delete(ctx, c, web.ID).ExtractErr())
	// Even an admin cannot delete the default group while q is in it;
	// deleting q frees it.
	wantError(t, groups.Delete(ctx, admin, def.ID).ExtractErr(), 409, "SecurityGroupInUse")
	must(t, ports.Delete(ctx, c, q.ID).ExtractErr())
	must(t, groups.Delete(ctx, admin, def.ID).ExtractErr())
	// A port on a network without port security inherits it.
	var psecOff network
	must(t, networks.Create(ctx, c, portsecurity.NetworkCreateOptsExt{
		CreateOptsBuilder: networks.CreateOpts{Name: uniq("open")}, PortSecurityEnabled: &off,
	}).ExtractInto(&psecOff))
	createSubnet(t, c, psecOff.ID, "10.72.0.0/24")
	if o := createPort(t, c, rawPort{"network_id": psecOff.ID}); o.PortSecurityEnabled || len(o.SecurityGroups) != 0 {
		t.Fatalf("port on an open network %+v", o)
	}
}

// TestSecurityGroupQuotas: the quotas are listed with Neutron's defaults
// and enforced; the rules a group starts with count but are not refused.
func TestSecurityGroupQuotas(t *testing.T) {
	t.Parallel()
	u := newMember(t, "quota")
	c, admin := u.net(t), shared.admin.net(t)
	q, err := quotas.Get(ctx, c, u.projectID).Extract()
	must(t, err)
	if q.SecurityGroup != 10 || q.SecurityGroupRule != 100 {
		t.Fatalf("default quotas %+v", q)
	}
	two, five := 2, 5
	_, err = quotas.Update(ctx, admin, u.projectID, quotas.UpdateOpts{SecurityGroup: &two, SecurityGroupRule: &five}).Extract()
	must(t, err)
	g, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("q1")}).Extract() // and the default group
	must(t, err)
	_, err = groups.Create(ctx, c, groups.CreateOpts{Name: uniq("q2")}).Extract()
	e := wantError(t, err, 409, "OverQuota")
	if e.Message != "Quota exceeded for resources: ['security_group']." {
		t.Errorf("message %q", e.Message)
	}
	d, err := quotas.GetDetail(ctx, admin, u.projectID).Extract()
	must(t, err)
	if d.SecurityGroup.Used != 2 || d.SecurityGroupRule.Used != 6 || d.SecurityGroupRule.Limit != 5 {
		t.Fatalf("details: groups %+v rules %+v", d.SecurityGroup, d.SecurityGroupRule)
	}
	_, err = rules.Create(ctx, c, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID, Protocol: rules.ProtocolTCP}).Extract()
	wantError(t, err, 409, "OverQuota")
	ten := 10
	_, err = quotas.Update(ctx, admin, u.projectID, quotas.UpdateOpts{SecurityGroupRule: &ten}).Extract()
	must(t, err)
	_, err = rules.Create(ctx, c, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID, Protocol: rules.ProtocolTCP}).Extract()
	must(t, err)
	// Deleting the group frees its slot and its rules' usage.
	must(t, groups.Delete(ctx, c, g.ID).ExtractErr())
	d, err = quotas.GetDetail(ctx, admin, u.projectID).Extract()
	must(t, err)
	if d.SecurityGroup.Used != 1 || d.SecurityGroupRule.Used != 4 {
		t.Fatalf("after delete: groups %+v rules %+v", d.SecurityGroup, d.SecurityGroupRule)
	}
	_, err = groups.Create(ctx, c, groups.CreateOpts{Name: uniq("q3")}).Extract()
	must(t, err)
	one := 1
	_, err = quotas.Update(ctx, admin, u.projectID, quotas.UpdateOpts{SecurityGroupRule: &one}).Extract()
	wantError(t, err, 400, "HTTPBadRequest") // below usage
}

// TestAddressGroups: addresses normalised, added and removed as Neutron
// (409/404 on conflicts), used as a rule's remote, in use while a rule
// names them, private to their project.
func TestAddressGroups(t *testing.T) {
	t.Parallel()
	c, b := shared.a.net(t), shared.b.net(t)
	ag, err := addressgroups.Create(ctx, c, addressgroups.CreateOpts{Name: uniq("ag"), Addresses: []string{"10.80.0.9/24", "2001:db8::/64"}}).Extract()
	must(t, err)
	if !slices.Equal(ag.Addresses, []string{"10.80.0.0/24", "2001:db8::/64"}) || ag.ProjectID != shared.a.projectID {
		t.Fatalf("created %+v", ag)
	}
	ag, err = addressgroups.AddAddresses(ctx, c, ag.ID, addressgroups.UpdateAddressesOpts{Addresses: []string{"198.51.100.0/24"}}).Extract()
	must(t, err)
	if !slices.Equal(ag.Addresses, []string{"10.80.0.0/24", "198.51.100.0/24", "2001:db8::/64"}) {
		t.Fatalf("after add %v", ag.Addresses)
	}
	_, err = addressgroups.AddAddresses(ctx, c, ag.ID, addressgroups.UpdateAddressesOpts{Addresses: []string{"10.80.0.1/24"}}).Extract()
	if e := wantError(t, err, 400, "AddressesAlreadyExist"); e.Message != "Addresses ['10.80.0.0/24'] already exist in the address group "+ag.ID+"." {
		t.Errorf("message %q", e.Message)
	}
	_, err = addressgroups.RemoveAddresses(ctx, c, ag.ID, addressgroups.UpdateAddressesOpts{Addresses: []string{"192.168.0.0/16"}}).Extract()
	wantError(t, err, 404, "AddressesNotFound")
	ag, err = addressgroups.RemoveAddresses(ctx, c, ag.ID, addressgroups.UpdateAddressesOpts{Addresses: []string{"2001:db8::/64"}}).Extract()
	must(t, err)
	if !slices.Equal(ag.Addresses, []string{"10.80.0.0/24", "198.51.100.0/24"}) {
		t.Fatalf("after remove %v", ag.Addresses)
	}
	r := shared.raw(t, shared.a, "PUT", "/v2.0/address-groups/"+ag.ID+"/add_addresses", `{"addresses": ["10.0.0.1"]}`)
	wantRaw(t, r, 400, "HTTPBadRequest")
	r = shared.raw(t, shared.a, "POST", "/v2.0/address-groups", `{"address_group": {"addresses": ["x"]}}`)
	wantRaw(t, r, 400, "HTTPBadRequest")
	name := "renamed"
	up, err := addressgroups.Update(ctx, c, ag.ID, addressgroups.UpdateOpts{Name: &name}).Extract()
	must(t, err)
	if up.Name != name || len(up.Addresses) != 2 {
		t.Fatalf("updated %+v", up)
	}

	_, err = addressgroups.Get(ctx, b, ag.ID).Extract()
	wantError(t, err, 404, "AddressGroupNotFound")
	_, err = addressgroups.AddAddresses(ctx, b, ag.ID, addressgroups.UpdateAddressesOpts{Addresses: []string{"10.1.0.0/16"}}).Extract()
	wantError(t, err, 404, "AddressGroupNotFound")
	bg, err := groups.Create(ctx, b, groups.CreateOpts{Name: uniq("b-ag")}).Extract()
	must(t, err)
	_, err = rules.Create(ctx, b, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: bg.ID, RemoteAddressGroupID: ag.ID}).Extract()
	wantError(t, err, 404, "AddressGroupNotFound")

	g, err := groups.Create(ctx, c, groups.CreateOpts{Name: uniq("ag-user")}).Extract()
	must(t, err)
	rule, err := rules.Create(ctx, c, rules.CreateOpts{Direction: rules.DirIngress, EtherType: rules.EtherType4, SecGroupID: g.ID,
		Protocol: rules.ProtocolTCP, PortRangeMin: 443, PortRangeMax: 443, RemoteAddressGroupID: ag.ID}).Extract()
	must(t, err)
	if rule.RemoteAddressGroupID != ag.ID {
		t.Fatalf("rule %+v", rule)
	}
	err = addressgroups.Delete(ctx, c, ag.ID).ExtractErr()
	wantError(t, err, 409, "AddressGroupInUse")
	must(t, rules.Delete(ctx, c, rule.ID).ExtractErr())
	must(t, addressgroups.Delete(ctx, c, ag.ID).ExtractErr())
	_, err = addressgroups.Get(ctx, c, ag.ID).Extract()
	wantError(t, err, 404, "AddressGroupNotFound")
	if r := shared.raw(t, shared.a, "GET", "/v2.0/address-groups?name="+name, ""); r.status != http.StatusOK || len(r.json(t)["address_groups"].([]any)) != 0 {
		t.Fatalf("list after delete: %d %s", r.status, r.body)
	}
}
