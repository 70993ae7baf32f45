package apitest

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

const unknownID = "8d3fbb57-4c2d-4a52-9d8a-2a1d0f0a0a0a"

// TestMalformedRequestsAreNeutronErrors sends malformed bodies, invalid
// values and bad queries; each is a 4xx with a NeutronError body of the
// type Neutron uses.
func TestMalformedRequestsAreNeutronErrors(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("malformed"), "10.50.0.0/24")
	p := createPort(t, c, rawPort{"network_id": n.ID})
	long := strings.Repeat("x", 256)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		typ                      string
	}{
		{"MalformedJSON", "POST", "/v2.0/networks", `{"network": {`, 400, "HTTPBadRequest"},
		{"TrailingGarbage", "POST", "/v2.0/networks", `{"network": {}} {}`, 400, "HTTPBadRequest"},
		{"EmptyBody", "POST", "/v2.0/networks", ``, 400, "HTTPBadRequest"},
		{"ArrayBody", "POST", "/v2.0/networks", `[{"network": {}}]`, 400, "HTTPBadRequest"},
		{"StringBody", "POST", "/v2.0/networks", `"network"`, 400, "HTTPBadRequest"},
		{"NullBody", "POST", "/v2.0/networks", `null`, 400, "HTTPBadRequest"},
		{"WrongResourceKey", "POST", "/v2.0/networks", `{"port": {}}`, 400, "HTTPBadRequest"},
		{"ResourceNotAnObject", "POST", "/v2.0/networks", `{"network": "x"}`, 400, "HTTPBadRequest"},
		{"EmptyBulk", "POST", "/v2.0/networks", `{"networks": []}`, 400, "HTTPBadRequest"},
		{"BulkNotAList", "POST", "/v2.0/networks", `{"networks": {}}`, 400, "HTTPBadRequest"},
		{"BulkItemNotAnObject", "POST", "/v2.0/networks", `{"networks": [1]}`, 400, "HTTPBadRequest"},
		{"UnknownAttribute", "POST", "/v2.0/networks", `{"network": {"colour": "red"}}`, 400, "HTTPBadRequest"},
		{"BoolNotBool", "POST", "/v2.0/networks", `{"network": {"admin_state_up": "maybe"}}`, 400, "HTTPBadRequest"},
		{"BoolNumber", "POST", "/v2.0/networks", `{"network": {"admin_state_up": 2}}`, 400, "HTTPBadRequest"},
		{"MTUNotANumber", "POST", "/v2.0/networks", `{"network": {"mtu": "x"}}`, 400, "HTTPBadRequest"},
		{"MTUTooSmall", "POST", "/v2.0/networks", `{"network": {"mtu": 67}}`, 400, "HTTPBadRequest"},
		{"MTUFraction", "POST", "/v2.0/networks", `{"network": {"mtu": 1400.5}}`, 400, "HTTPBadRequest"},
		{"NameNotAString", "POST", "/v2.0/networks", `{"network": {"name": 42}}`, 400, "HTTPBadRequest"},
		{"NameTooLong", "POST", "/v2.0/networks", `{"network": {"name": "` + long + `"}}`, 400, "HTTPBadRequest"},
		{"ReadOnlyOnCreate", "POST", "/v2.0/networks", `{"network": {"status": "DOWN"}}`, 400, "HTTPBadRequest"},
		{"SubnetsOnCreate", "POST", "/v2.0/networks", `{"network": {"subnets": []}}`, 400, "HTTPBadRequest"},
		{"ReadOnlyOnUpdate", "PUT", "/v2.0/networks/" + n.ID, `{"network": {"status": "DOWN"}}`, 400, "HTTPBadRequest"},
		{"ProjectOnUpdate", "PUT", "/v2.0/networks/" + n.ID, `{"network": {"tenant_id": "x"}}`, 400, "HTTPBadRequest"},
		{"UnknownAttributeOnUpdate", "PUT", "/v2.0/networks/" + n.ID, `{"network": {"colour": "red"}}`, 400, "HTTPBadRequest"},
		{"MalformedUpdate", "PUT", "/v2.0/networks/" + n.ID, `{"network": `, 400, "HTTPBadRequest"},
		{"BulkUpdate", "PUT", "/v2.0/networks/" + n.ID, `{"networks": [{}]}`, 400, "HTTPBadRequest"},
		{"PortNetworkNotAUUID", "POST", "/v2.0/ports", `{"port": {"network_id": "net-1"}}`, 400, "HTTPBadRequest"},
		{"PortNetworkMissing", "POST", "/v2.0/ports", `{"port": {"name": "x"}}`, 400, "HTTPBadRequest"},
		{"PortNetworkUnknown", "POST", "/v2.0/ports", `{"port": {"network_id": "` + unknownID + `"}}`, 404, "NetworkNotFound"},
		{"PortNetworkOnUpdate", "PUT", "/v2.0/ports/" + p.ID, `{"port": {"network_id": "` + n.ID + `"}}`, 400, "HTTPBadRequest"},
		{"PortInvalidMAC", "POST", "/v2.0/ports", `{"port": {"network_id": "` + n.ID + `", "mac_address": "00:11:22"}}`, 400, "HTTPBadRequest"},
		{"PortFixedIPsNotAList", "POST", "/v2.0/ports", `{"port": {"network_id": "` + n.ID + `", "fixed_ips": {"ip_address": "10.50.0.5"}}}`, 400, "HTTPBadRequest"},
		{"PortFixedIPUnknownKey", "POST", "/v2.0/ports", `{"port": {"network_id": "` + n.ID + `", "fixed_ips": [{"ip": "10.50.0.5"}]}}`, 400, "HTTPBadRequest"},
		{"PortSubnetIDNotAUUID", "POST", "/v2.0/ports", `{"port": {"network_id": "` + n.ID + `", "fixed_ips": [{"subnet_id": "abc"}]}}`, 400, "HTTPBadRequest"},
		{"PortVNICType", "POST", "/v2.0/ports", `{"port": {"network_id": "` + n.ID + `", "binding:vnic_type": "warp"}}`, 400, "HTTPBadRequest"},
		{"PortSecurityGroupNotAUUID", "POST", "/v2.0/ports", `{"port": {"network_id": "` + n.ID + `", "security_groups": ["default"]}}`, 400, "HTTPBadRequest"},
		{"PortAddressPairInvalid", "POST", "/v2.0/ports", `{"port": {"network_id": "` + n.ID + `", "allowed_address_pairs": [{"ip_address": "nope"}]}}`, 400, "HTTPBadRequest"},
		{"PortAddressPairWithoutPortSecurity", "POST", "/v2.0/ports", `{"port": {"network_id": "` + n.ID + `", "port_security_enabled": false, "allowed_address_pairs": [{"ip_address": "10.50.0.99"}]}}`, 409, "AddressPairAndPortSecurityRequired"},
		{"SubnetInvalidCIDR", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "` + n.ID + `", "ip_version": 4, "cidr": "10.50.1.0/abc"}}`, 400, "HTTPBadRequest"},
		{"SubnetNetworkNotAUUID", "POST", "/v2.0/subnets", `{"subnet": {"network_id": "x", "ip_version": 4, "cidr": "10.50.1.0/24"}}`, 400, "HTTPBadRequest"},
		{"SubnetPoolsNotAList", "PUT", "/v2.0/subnets/" + sn.ID, `{"subnet": {"allocation_pools": "10.50.0.2-10.50.0.9"}}`, 400, "HTTPBadRequest"},
		{"SubnetHostRouteInvalid", "PUT", "/v2.0/subnets/" + sn.ID, `{"subnet": {"host_routes": [{"destination": "10.9.0.0/16"}]}}`, 400, "HTTPBadRequest"},
		{"SubnetHostRouteWrongFamily", "PUT", "/v2.0/subnets/" + sn.ID, `{"subnet": {"host_routes": [{"destination": "2001:db8::/64", "nexthop": "2001:db8::1"}]}}`, 400, "InvalidInput"},
		{"SubnetNameserverInvalid", "PUT", "/v2.0/subnets/" + sn.ID, `{"subnet": {"dns_nameservers": ["dns.example.com"]}}`, 400, "HTTPBadRequest"},
		{"SubnetEnableDHCPNotBool", "PUT", "/v2.0/subnets/" + sn.ID, `{"subnet": {"enable_dhcp": "perhaps"}}`, 400, "HTTPBadRequest"},
		{"UnknownFilter", "GET", "/v2.0/networks?colour=red", ``, 400, "HTTPBadRequest"},
		{"UnknownPortFilter", "GET", "/v2.0/ports?ip_address=10.0.0.1", ``, 400, "HTTPBadRequest"},
		{"BadSortKey", "GET", "/v2.0/networks?sort_key=colour", ``, 400, "HTTPBadRequest"},
		{"BadSortDir", "GET", "/v2.0/networks?sort_key=name&sort_dir=sideways", ``, 400, "HTTPBadRequest"},
		{"MoreSortDirsThanKeys", "GET", "/v2.0/networks?sort_dir=asc", ``, 400, "HTTPBadRequest"},
		{"BadLimit", "GET", "/v2.0/networks?limit=abc", ``, 400, "HTTPBadRequest"},
		{"NegativeLimit", "GET", "/v2.0/networks?limit=-1", ``, 400, "HTTPBadRequest"},
		{"UnknownCollection", "GET", "/v2.0/widgets", ``, 404, "HTTPNotFound"},
		{"UnknownPath", "GET", "/nowhere", ``, 404, "HTTPNotFound"},
		{"PathBelowItem", "GET", "/v2.0/networks/" + n.ID + "/subnets", ``, 404, "HTTPNotFound"},
		{"IDNotAUUID", "GET", "/v2.0/networks/not-a-uuid", ``, 404, "NetworkNotFound"},
		{"UnknownNetwork", "GET", "/v2.0/networks/" + unknownID, ``, 404, "NetworkNotFound"},
		{"UnknownSubnet", "PUT", "/v2.0/subnets/" + unknownID, `{"subnet": {"name": "x"}}`, 404, "SubnetNotFound"},
		{"UnknownPort", "DELETE", "/v2.0/ports/" + unknownID, ``, 404, "PortNotFound"},
		{"DeleteCollection", "DELETE", "/v2.0/networks", ``, 405, "HTTPMethodNotAllowed"},
		{"PostToItem", "POST", "/v2.0/networks/" + n.ID, `{"network": {}}`, 405, "HTTPMethodNotAllowed"},
		{"PatchItem", "PATCH", "/v2.0/ports/" + p.ID, `{"port": {}}`, 405, "HTTPMethodNotAllowed"},
		{"PostExtensions", "POST", "/v2.0/extensions", `{}`, 405, "HTTPMethodNotAllowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wantRaw(t, shared.raw(t, shared.a, tc.method, tc.path, tc.body), tc.status, tc.typ)
		})
	}
}

// TestTooLargeBody: a body beyond the limit is refused with 413.
func TestTooLargeBody(t *testing.T) {
	t.Parallel()
	body := `{"network": {"name": "` + strings.Repeat("x", 17<<20) + `"}}`
	wantRaw(t, shared.raw(t, shared.a, "POST", "/v2.0/networks", body), http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge")
}

// TestAuthentication: the Networking API needs a valid token; the version
// document does not.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"/v2.0", "/v2.0/networks", "/v2.0/ports/" + unknownID, "/v2.0/extensions"} {
		r := shared.raw(t, nil, "GET", path, "")
		if r.status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %d %s", path, r.status, r.body)
		}
		r = rawDo(t, t, "not-a-token", "GET", shared.srv.URL+path, "", nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("GET %s with a bad token = %d %s", path, r.status, r.body)
		}
	}
	r := shared.raw(t, nil, "POST", "/v2.0/networks", `{"network": {}}`)
	if r.status != http.StatusUnauthorized {
		t.Errorf("POST without a token = %d", r.status)
	}
	if r := shared.raw(t, nil, "GET", "/", ""); r.status != http.StatusOK {
		t.Errorf("GET / without a token = %d", r.status)
	}
	// Through gophercloud: a client with a stale token gets 401.
	c := (&user{token: "bogus", endpoint: shared.a.endpoint, resourceBase: shared.a.resourceBase}).net(t)
	_, err := networks.List(c, nil).AllPages(ctx)
	if err == nil || !strings.Contains(fmt.Sprint(err), "401") {
		t.Errorf("list with a bogus token: %v", err)
	}
}

// TestMemberPasswordLogin: a member logs in with its password through
// Keystone v3 (gophercloud's AuthenticatedClient), gets a token scoped to
// its project and the network endpoint from the catalog, and uses it; a
// wrong password is refused.
func TestMemberPasswordLogin(t *testing.T) {
	t.Parallel()
	u, err := shared.loginErr(&user{name: "bob", password: "bob-pw"})
	must(t, err)
	if u.projectID != shared.b.projectID || u.userID != shared.b.userID || u.resourceBase != shared.srv.URL+"/v2.0/" {
		t.Errorf("bob's login = %+v", u)
	}
	n := createNet(t, u.net(t), rawNet{"name": uniq("login")})
	if n.ProjectID != shared.b.projectID {
		t.Errorf("network created after password login = %+v", n)
	}
	if _, err := shared.loginErr(&user{name: "bob", password: "wrong"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("login with a wrong password: %v", err)
	}
}

// TestJSONSuffixIsAccepted: Neutron accepts a trailing .json on paths.
func TestJSONSuffixIsAccepted(t *testing.T) {
	t.Parallel()
	n := createNet(t, shared.a.net(t), rawNet{"name": uniq("suffix")})
	if r := shared.raw(t, shared.a, "GET", "/v2.0/networks/"+n.ID+".json", ""); r.status != 200 {
		t.Errorf("GET network.json = %d %s", r.status, r.body)
	}
	if r := shared.raw(t, shared.a, "GET", "/v2.0/networks.json?id="+n.ID, ""); r.status != 200 || len(r.json(t)["networks"].([]any)) != 1 {
		t.Errorf("GET networks.json = %d %s", r.status, r.body)
	}
}

// weirdValues are JSON values of every shape, for attributes that expect
// something else.
var weirdValues = []any{
	nil, true, 0, -1, 1.5, 1e30, "", "x", "10.0.0.5", "fa:16:3e:00:00:01", unknownID,
	[]any{}, []any{nil}, []any{""}, []any{map[string]any{}},
	[]any{map[string]any{"ip_address": "10.60.0.5", "start": "10.60.0.2", "end": 5, "provider:network_type": "vxlan"}},
	map[string]any{}, map[string]any{"a": []any{nil}},
}

// TestNoInputCausesServerError sets every attribute of every resource to
// values of every JSON shape, on create and on update, as admin and as a
// member: whatever the answer, it is never a 5xx and every error is a
// NeutronError (the checking transport enforces both).
func TestNoInputCausesServerError(t *testing.T) {
	t.Parallel()
	admin := shared.admin.net(t)
	n, sn := netWithSubnet(t, admin, uniq("fuzz"), "10.60.0.0/24")
	p := createPort(t, admin, rawPort{"network_id": n.ID})
	attrs := map[string][]string{
		"networks": {"id", "name", "description", "project_id", "tenant_id", "tags", "created_at", "updated_at", "revision_number",
			"admin_state_up", "shared", "router:external", "mtu", "status", "subnets", "port_security_enabled",
			"provider:network_type", "provider:physical_network", "provider:segmentation_id", "segments", "availability_zone_hints"},
		"subnets": {"id", "name", "project_id", "network_id", "ip_version", "cidr", "gateway_ip", "allocation_pools", "enable_dhcp",
			"dns_nameservers", "host_routes", "ipv6_ra_mode", "ipv6_address_mode", "subnetpool_id"},
		"ports": {"id", "name", "project_id", "network_id", "admin_state_up", "mac_address", "fixed_ips", "device_id", "device_owner",
			"status", "binding:host_id", "binding:vif_type", "binding:vif_details", "binding:vnic_type", "binding:profile",
			"port_security_enabled", "allowed_address_pairs", "security_groups"},
	}
	base := map[string]map[string]any{
		"networks": {},
		"subnets":  {"network_id": n.ID, "ip_version": 4, "cidr": "10.61.0.0/24"},
		"ports":    {"network_id": n.ID},
	}
	items := map[string]string{"networks": n.ID, "subnets": sn.ID, "ports": p.ID}
	singular := map[string]string{"networks": "network", "subnets": "subnet", "ports": "port"}
	for _, who := range []*user{shared.admin, shared.a} {
		for coll, names := range attrs {
			t.Run(who.name+"/"+coll, func(t *testing.T) {
				t.Parallel()
				for _, a := range names {
					for _, v := range weirdValues {
						body := map[string]any{}
						for k, bv := range base[coll] {
							body[k] = bv
						}
						body[a] = v
						r := shared.raw(t, who, "POST", "/v2.0/"+coll, jsonBody(t, map[string]any{singular[coll]: body}))
						if r.status == http.StatusCreated && coll == "subnets" {
							// Free the CIDR for the next attempt.
							id, _ := r.json(t)["subnet"].(map[string]any)["id"].(string)
							shared.raw(t, shared.admin, "DELETE", "/v2.0/subnets/"+id, "")
						}
						shared.raw(t, who, "PUT", "/v2.0/"+coll+"/"+items[coll], jsonBody(t, map[string]any{singular[coll]: map[string]any{a: v}}))
					}
					for _, v := range []string{"", "x", "1", "true", "None", "ip_address=10.60.0.5", "a=b=c"} {
						shared.raw(t, who, "GET", "/v2.0/"+coll+"?"+url.QueryEscape(a)+"="+url.QueryEscape(v), "")
					}
				}
			})
		}
	}
	// The objects survived whatever was thrown at them.
	must(t, networks.Get(ctx, admin, n.ID).Err)
	must(t, ports.Get(ctx, admin, p.ID).Err)
}
