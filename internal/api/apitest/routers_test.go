package apitest

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/extraroutes"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/service"
)

// extNet is an external network an admin made, with one IPv4 subnet.
type extNet struct {
	net    network
	subnet *subnets.Subnet
}

// newExtNet creates an external network (a local segment, so parallel
// tests never compete for a physnet) with a subnet of cidr.
func newExtNet(t testing.TB, cidr string) extNet {
	t.Helper()
	admin := shared.admin.net(t)
	n := createNet(t, admin, rawNet{"name": uniq("public"), "router:external": true, "provider:network_type": "local"})
	return extNet{net: n, subnet: createSubnet(t, admin, n.ID, cidr)}
}

// rawRouter is a router create body given attribute by attribute.
type rawRouter map[string]any

func (r rawRouter) ToRouterCreateMap() (map[string]any, error) {
	return map[string]any{"router": map[string]any(r)}, nil
}

func (u upd) ToRouterUpdateMap() (map[string]any, error) { return map[string]any{"router": u.m}, nil }

// createRouter creates a router from a raw body.
func createRouter(t testing.TB, c *gophercloud.ServiceClient, body rawRouter) *routers.Router {
	t.Helper()
	r, err := routers.Create(ctx, c, body).Extract()
	must(t, err)
	return r
}

// gwRouter creates a router of c's project with its gateway on ext.
func gwRouter(t testing.TB, c *gophercloud.ServiceClient, ext extNet) *routers.Router {
	t.Helper()
	return createRouter(t, c, rawRouter{"name": uniq("r"), "external_gateway_info": map[string]any{"network_id": ext.net.ID}})
}

// addSubnet attaches a subnet to a router.
func addSubnet(t testing.TB, c *gophercloud.ServiceClient, routerID, subnetID string) *routers.InterfaceInfo {
	t.Helper()
	info, err := routers.AddInterface(ctx, c, routerID, routers.AddInterfaceOpts{SubnetID: subnetID}).Extract()
	must(t, err)
	return info
}

// TestRouterGatewayInterfaceAndDelete follows a router through its life:
// a gateway port on the external network (no project, hidden from the
// project), an interface holding the subnet's gateway address, refusals
// while in use, and the cleanup of its ports.
func TestRouterGatewayInterfaceAndDelete(t *testing.T) {
	t.Parallel()
	admin, a := shared.admin.net(t), shared.a.net(t)
	ext := newExtNet(t, "203.0.113.0/24")
	r := gwRouter(t, a, ext)
	gw := r.GatewayInfo
	if r.Status != "ACTIVE" || !r.AdminStateUp || gw.NetworkID != ext.net.ID || gw.EnableSNAT == nil || !*gw.EnableSNAT || len(gw.ExternalFixedIPs) != 1 || gw.ExternalFixedIPs[0].SubnetID != ext.subnet.ID {
		t.Fatalf("router: %+v", r)
	}
	gwPorts := listPorts(t, admin, ports.ListOpts{DeviceID: r.ID, DeviceOwner: "network:router_gateway"})
	if len(gwPorts) != 1 || gwPorts[0].ProjectID != "" || gwPorts[0].NetworkID != ext.net.ID || gwPorts[0].FixedIPs[0].IPAddress != gw.ExternalFixedIPs[0].IPAddress {
		t.Fatalf("gateway ports: %+v", gwPorts)
	}
	if got := listPorts(t, a, ports.ListOpts{DeviceID: r.ID}); len(got) != 0 {
		t.Errorf("project sees the gateway port: %+v", got)
	}

	n, sn := netWithSubnet(t, a, uniq("inside"), "10.60.1.0/24")
	info := addSubnet(t, a, r.ID, sn.ID)
	if info.ID != r.ID || info.SubnetID != sn.ID || info.TenantID != shared.a.projectID || info.PortID == "" {
		t.Fatalf("interface info: %+v", info)
	}
	raw := shared.raw(t, shared.a, "GET", "/v2.0/ports/"+info.PortID, "").json(t)["port"].(map[string]any)
	ip := raw["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]
	if ip != "10.60.1.1" || raw["device_owner"] != "network:router_interface" || raw["device_id"] != r.ID || raw["network_id"] != n.ID {
		t.Fatalf("interface port: %+v", raw)
	}
	got, err := routers.Get(ctx, a, r.ID).Extract()
	must(t, err)
	if got.RevisionNumber <= r.RevisionNumber {
		t.Errorf("revision after attaching: %d, was %d", got.RevisionNumber, r.RevisionNumber)
	}

	e := wantError(t, routers.Delete(ctx, a, r.ID).ExtractErr(), http.StatusConflict, "RouterInUse")
	if !strings.Contains(e.Message, info.PortID) {
		t.Errorf("RouterInUse message: %s", e.Message)
	}
	e = wantError(t, ports.Delete(ctx, a, info.PortID).ExtractErr(), http.StatusConflict, "ServicePortInUse")
	if e.Message != "Port "+info.PortID+" cannot be deleted directly via the port API: has device owner network:router_interface." {
		t.Errorf("ServicePortInUse message: %s", e.Message)
	}
	wantError(t, ports.Delete(ctx, admin, gwPorts[0].ID).ExtractErr(), http.StatusConflict, "ServicePortInUse")
	// The subnet and the network are in use by the interface.
	wantError(t, subnets.Delete(ctx, a, sn.ID).ExtractErr(), http.StatusConflict, "SubnetInUse")

	out, err := routers.RemoveInterface(ctx, a, r.ID, routers.RemoveInterfaceOpts{SubnetID: sn.ID}).Extract()
	must(t, err)
	if out.PortID != info.PortID || out.SubnetID != sn.ID {
		t.Errorf("removed interface: %+v", out)
	}
	wantError(t, ports.Get(ctx, a, info.PortID).Err, http.StatusNotFound, "PortNotFound")
	must(t, routers.Delete(ctx, a, r.ID).ExtractErr())
	if left := listPorts(t, admin, ports.ListOpts{DeviceID: r.ID}); len(left) != 0 {
		t.Errorf("ports left after the router's delete: %+v", left)
	}
	wantError(t, routers.Get(ctx, a, r.ID).Err, http.StatusNotFound, "RouterNotFound")
}

// TestRouterGatewayRules: the gateway must be on an external network; only
// admins pick SNAT and addresses; an address may not be the subnet's
// gateway; removing and replacing the gateway frees and takes ports.
func TestRouterGatewayRules(t *testing.T) {
	t.Parallel()
	admin, a := shared.admin.net(t), shared.a.net(t)
	ext := newExtNet(t, "198.51.100.0/24")
	inside, _ := netWithSubnet(t, a, uniq("notext"), "10.61.0.0/24")

	_, err := routers.Create(ctx, a, rawRouter{"external_gateway_info": map[string]any{"network_id": inside.ID}}).Extract()
	e := wantError(t, err, http.StatusBadRequest, "BadRequest")
	if e.Message != "Bad router request: Network "+inside.ID+" is not an external network." {
		t.Errorf("message: %s", e.Message)
	}
	_, err = routers.Create(ctx, a, rawRouter{"external_gateway_info": map[string]any{"network_id": "00000000-0000-0000-0000-000000000001"}}).Extract()
	wantError(t, err, http.StatusNotFound, "NetworkNotFound")
	_, err = routers.Create(ctx, a, rawRouter{"external_gateway_info": map[string]any{"network_id": ext.net.ID, "enable_snat": false}}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	_, err = routers.Create(ctx, a, rawRouter{"external_gateway_info": map[string]any{"network_id": ext.net.ID, "external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.50"}}}}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	_, err = routers.Create(ctx, a, rawRouter{"external_gateway_info": map[string]any{"network_id": ext.net.ID, "bogus": 1}}).Extract()
	wantError(t, err, http.StatusBadRequest, "HTTPBadRequest")
	_, err = routers.Create(ctx, a, rawRouter{"routes": []any{}}).Extract()
	wantError(t, err, http.StatusBadRequest, "HTTPBadRequest")
	_, err = routers.Create(ctx, shared.reader.net(t), rawRouter{"name": "x"}).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")

	_, err = routers.Create(ctx, admin, rawRouter{"external_gateway_info": map[string]any{"network_id": ext.net.ID, "external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.1"}}}}).Extract()
	wantError(t, err, http.StatusBadRequest, "BadRequest")
	r := createRouter(t, admin, rawRouter{"external_gateway_info": map[string]any{"network_id": ext.net.ID, "enable_snat": false,
		"external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.50"}}}})
	if *r.GatewayInfo.EnableSNAT || r.GatewayInfo.ExternalFixedIPs[0].IPAddress != "198.51.100.50" {
		t.Fatalf("admin's gateway: %+v", r.GatewayInfo)
	}
	// Another router may not take the same address.
	_, err = routers.Create(ctx, admin, rawRouter{"external_gateway_info": map[string]any{"network_id": ext.net.ID, "external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.50"}}}}).Extract()
	wantError(t, err, http.StatusConflict, "IpAddressAlreadyAllocated")
	// Readdressing the gateway frees the old address.
	r2, err := routers.Update(ctx, admin, r.ID, update(map[string]any{"external_gateway_info": map[string]any{"network_id": ext.net.ID,
		"external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.51"}}}})).Extract()
	must(t, err)
	if r2.GatewayInfo.ExternalFixedIPs[0].IPAddress != "198.51.100.51" || !*r2.GatewayInfo.EnableSNAT {
		t.Fatalf("readdressed gateway: %+v", r2.GatewayInfo)
	}
	createRouter(t, admin, rawRouter{"external_gateway_info": map[string]any{"network_id": ext.net.ID, "external_fixed_ips": []any{map[string]any{"ip_address": "198.51.100.50"}}}})

	// A member sets and clears a gateway on its own router.
	mine := createRouter(t, a, rawRouter{"name": uniq("mine")})
	if mine.GatewayInfo.NetworkID != "" {
		t.Fatalf("router without gateway: %+v", mine.GatewayInfo)
	}
	got, err := routers.Update(ctx, a, mine.ID, update(map[string]any{"external_gateway_info": map[string]any{"network_id": ext.net.ID}})).Extract()
	must(t, err)
	if got.GatewayInfo.NetworkID != ext.net.ID || len(got.GatewayInfo.ExternalFixedIPs) != 1 {
		t.Fatalf("gateway set: %+v", got.GatewayInfo)
	}
	_, err = routers.Update(ctx, a, mine.ID, update(map[string]any{"external_gateway_info": map[string]any{"network_id": ext.net.ID, "enable_snat": true}})).Extract()
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	got, err = routers.Update(ctx, a, mine.ID, update(map[string]any{"external_gateway_info": map[string]any{}})).Extract()
	must(t, err)
	if got.GatewayInfo.NetworkID != "" {
		t.Fatalf("gateway after clearing: %+v", got.GatewayInfo)
	}
	if left := listPorts(t, admin, ports.ListOpts{DeviceID: mine.ID}); len(left) != 0 {
		t.Errorf("gateway port left: %+v", left)
	}
}

// TestRouterInterfaceRules: every refusal of add_router_interface and
// remove_router_interface with Neutron's error.
func TestRouterInterfaceRules(t *testing.T) {
	t.Parallel()
	a, b := shared.a.net(t), shared.b.net(t)
	ext := newExtNet(t, "203.0.113.0/24")
	r := gwRouter(t, a, ext)
	path := "/v2.0/routers/" + r.ID

	check := func(body string, status int, typ, msg string) {
		t.Helper()
		res := shared.raw(t, shared.a, "PUT", path+"/add_router_interface", body)
		wantRaw(t, res, status, typ)
		if msg != "" && res.status == status {
			if m := res.neutron(t).Message; m != msg {
				t.Errorf("message %q, want %q", m, msg)
			}
		}
	}
	check(`{}`, 400, "BadRequest", "Bad router request: Either subnet_id or port_id must be specified.")
	check(`{"subnet_id": "x"}`, 400, "BadRequest", "Bad router request: 'x' is not a valid UUID.")
	check(`{"subnet_id": "00000000-0000-0000-0000-000000000001", "port_id": "00000000-0000-0000-0000-000000000002"}`, 400, "BadRequest", "Bad router request: Cannot specify both subnet-id and port-id.")
	check(`{"subnet_id": "00000000-0000-0000-0000-000000000001"}`, 404, "SubnetNotFound", "")

	n1, s1 := netWithSubnet(t, a, uniq("n1"), "10.62.1.0/24")
	noGW, err := subnets.Create(ctx, a, rawSubnet{"network_id": n1.ID, "cidr": "10.62.9.0/24", "ip_version": 4, "gateway_ip": nil}).Extract()
	must(t, err)
	check(`{"subnet_id": "`+noGW.ID+`"}`, 400, "BadRequest", "Bad router request: Subnet for router interface must have a gateway IP.")
	addSubnet(t, a, r.ID, s1.ID)
	check(`{"subnet_id": "`+s1.ID+`"}`, 400, "BadRequest", "Bad router request: Router already has a port on subnet "+s1.ID+".")
	_, s2 := netWithSubnet(t, a, uniq("n2"), "10.62.1.0/25")
	check(`{"subnet_id": "`+s2.ID+`"}`, 400, "BadRequest", "Bad router request: Cidr 10.62.1.0/25 of subnet "+s2.ID+" overlaps with cidr 10.62.1.0/24 of subnet "+s1.ID+".")
	_, s3 := netWithSubnet(t, a, uniq("n3"), "203.0.113.128/25")
	check(`{"subnet_id": "`+s3.ID+`"}`, 400, "BadRequest", "")
	// Another project's subnet is not there for this project.
	_, bs := netWithSubnet(t, b, uniq("bnet"), "10.62.5.0/24")
	check(`{"subnet_id": "`+bs.ID+`"}`, 404, "SubnetNotFound", "")
	// ... nor is another project's router.
	res := shared.raw(t, shared.b, "PUT", path+"/add_router_interface", `{"subnet_id": "`+bs.ID+`"}`)
	wantRaw(t, res, 404, "RouterNotFound")
	wantError(t, routers.Get(ctx, b, r.ID).Err, http.StatusNotFound, "RouterNotFound")
	_, err = routers.Update(ctx, b, r.ID, update(map[string]any{"name": "x"})).Extract()
	wantError(t, err, http.StatusNotFound, "RouterNotFound")
	wantError(t, routers.Delete(ctx, b, r.ID).ExtractErr(), http.StatusNotFound, "RouterNotFound")
	res = shared.raw(t, shared.reader, "PUT", path+"/add_router_interface", `{"subnet_id": "`+bs.ID+`"}`)
	wantRaw(t, res, 403, "PolicyNotAuthorized")

	// By port: the port must be free, have an address, and be visible.
	n4, s4 := netWithSubnet(t, a, uniq("n4"), "10.62.4.0/24")
	used := createPort(t, a, rawPort{"network_id": n4.ID, "device_id": "vm-1"})
	check(`{"port_id": "`+used.ID+`"}`, 409, "PortInUse", "Unable to complete operation on port "+used.ID+" for network "+n4.ID+". Port already has an attached device vm-1.")
	bare := createPort(t, a, rawPort{"network_id": n4.ID, "fixed_ips": []any{}})
	check(`{"port_id": "`+bare.ID+`"}`, 400, "BadRequest", "Bad router request: Router port must have at least one fixed IP.")
	bport := createPort(t, b, rawPort{"network_id": bs.NetworkID})
	check(`{"port_id": "`+bport.ID+`"}`, 404, "PortNotFound", "")
	free := createPort(t, a, rawPort{"network_id": n4.ID, "fixed_ips": []any{map[string]any{"subnet_id": s4.ID, "ip_address": "10.62.4.254"}}})
	info, err := routers.AddInterface(ctx, a, r.ID, routers.AddInterfaceOpts{PortID: free.ID}).Extract()
	must(t, err)
	if info.PortID != free.ID || info.SubnetID != s4.ID {
		t.Fatalf("interface by port: %+v", info)
	}
	var p port
	must(t, ports.Get(ctx, a, free.ID).ExtractInto(&p))
	if p.DeviceOwner != "network:router_interface" || p.DeviceID != r.ID {
		t.Fatalf("port after attaching: owner %q device %q", p.DeviceOwner, p.DeviceID)
	}

	// Removal.
	rm := func(body string, status int, typ, msg string) {
		t.Helper()
		res := shared.raw(t, shared.a, "PUT", path+"/remove_router_interface", body)
		wantRaw(t, res, status, typ)
		if msg != "" && res.status == status {
			if m := res.neutron(t).Message; m != msg {
				t.Errorf("message %q, want %q", m, msg)
			}
		}
	}
	rm(`{"port_id": "`+used.ID+`"}`, 404, "RouterInterfaceNotFound", "Router "+r.ID+" does not have an interface with id "+used.ID)
	rm(`{"subnet_id": "`+s2.ID+`"}`, 404, "RouterInterfaceNotFoundForSubnet", "Router "+r.ID+" has no interface on subnet "+s2.ID)
	rm(`{"port_id": "`+free.ID+`", "subnet_id": "`+s1.ID+`"}`, 400, "SubnetMismatchForPort", "Subnet on port "+free.ID+" does not match the requested subnet "+s1.ID+".")
	out, err := routers.RemoveInterface(ctx, a, r.ID, routers.RemoveInterfaceOpts{PortID: free.ID}).Extract()
	must(t, err)
	if out.PortID != free.ID || out.SubnetID != s4.ID {
		t.Errorf("removed: %+v", out)
	}
	// As Neutron, the port attached by id goes with the interface.
	wantError(t, ports.Get(ctx, a, free.ID).Err, http.StatusNotFound, "PortNotFound")
}

// TestRouterInterfaceOnRBACSharedSubnet: a subnet of a network shared with
// the project by name may be attached; one shared with everyone may not.
// (Its own server: the interface port of one project on the other's network
// would show in the isolation test's lists.)
func TestRouterInterfaceOnRBACSharedSubnet(t *testing.T) {
	t.Parallel()
	e := newEnv(t, t.TempDir(), service.DefaultConfig())
	t.Cleanup(func() { e.srv.Close() })
	a, b, admin := e.a.net(t), e.b.net(t), e.admin.net(t)
	bn, bs := netWithSubnet(t, b, "to-a", "10.63.0.0/24")
	rb := e.raw(t, e.b, "POST", "/v2.0/rbac-policies", jsonBody(t, map[string]any{"rbac_policy": map[string]any{
		"object_type": "network", "object_id": bn.ID, "action": "access_as_shared", "target_tenant": e.a.projectID}}))
	if rb.status != 201 {
		t.Fatalf("rbac: %d %s", rb.status, rb.body)
	}
	r := createRouter(t, a, rawRouter{"name": "r"})
	info := addSubnet(t, a, r.ID, bs.ID)
	if info.TenantID != e.a.projectID || info.SubnetID != bs.ID {
		t.Errorf("interface on a network shared by name: %+v", info)
	}

	all := createNet(t, admin, rawNet{"name": "everyone", "shared": true})
	as := createSubnet(t, admin, all.ID, "10.63.1.0/24")
	res := e.raw(t, e.a, "PUT", "/v2.0/routers/"+r.ID+"/add_router_interface", `{"subnet_id": "`+as.ID+`"}`)
	wantRaw(t, res, 400, "BadRequest")
	if m := res.neutron(t).Message; m != "Bad router request: Cannot add interface to router because subnet "+as.ID+" is not owned by project making the request." {
		t.Errorf("message: %s", m)
	}
}

// TestExtraRoutes: next hops must be on the router's subnets and not its
// own addresses; add_extraroutes/remove_extraroutes merge atomically; a
// subnet a route needs stays attached.
func TestExtraRoutes(t *testing.T) {
	t.Parallel()
	a := shared.a.net(t)
	r := createRouter(t, a, rawRouter{"name": uniq("routes")})
	_, sn := netWithSubnet(t, a, uniq("rt"), "10.64.0.0/24")
	addSubnet(t, a, r.ID, sn.ID)

	set := func(routes []routers.Route) error {
		_, err := routers.Update(ctx, a, r.ID, routers.UpdateOpts{Routes: &routes}).Extract()
		return err
	}
	e := wantError(t, set([]routers.Route{{DestinationCIDR: "172.16.0.0/16", NextHop: "10.99.0.5"}}), http.StatusBadRequest, "InvalidRoutes")
	if e.Message != "Invalid format for routes: [{'destination': '172.16.0.0/16', 'nexthop': '10.99.0.5'}], the nexthop is not connected with router" {
		t.Errorf("message: %s", e.Message)
	}
	e = wantError(t, set([]routers.Route{{DestinationCIDR: "172.16.0.0/16", NextHop: "10.64.0.1"}}), http.StatusBadRequest, "InvalidRoutes")
	if !strings.HasSuffix(e.Message, "the nexthop is used by router") {
		t.Errorf("message: %s", e.Message)
	}
	wantError(t, set([]routers.Route{{DestinationCIDR: "172.16.0.0/33", NextHop: "10.64.0.5"}}), http.StatusBadRequest, "HTTPBadRequest")
	many := make([]routers.Route, 31)
	for i := range many {
		many[i] = routers.Route{DestinationCIDR: "172.16." + strconv.Itoa(i) + ".0/24", NextHop: "10.64.0.5"}
	}
	wantError(t, set(many), http.StatusConflict, "OverQuota")

	must(t, set([]routers.Route{{DestinationCIDR: "172.16.0.0/16", NextHop: "10.64.0.5"}}))
	add := []routers.Route{{DestinationCIDR: "172.17.0.0/16", NextHop: "10.64.0.6"}, {DestinationCIDR: "172.16.0.0/16", NextHop: "10.64.0.5"}}
	got, err := extraroutes.Add(ctx, a, r.ID, extraroutes.Opts{Routes: &add}).Extract()
	must(t, err)
	if len(got.Routes) != 2 || got.Routes[0].DestinationCIDR != "172.16.0.0/16" || got.Routes[1].NextHop != "10.64.0.6" {
		t.Fatalf("routes after add: %+v", got.Routes)
	}
	bad := []routers.Route{{DestinationCIDR: "172.18.0.0/16", NextHop: "10.99.0.1"}}
	_, err = extraroutes.Add(ctx, a, r.ID, extraroutes.Opts{Routes: &bad}).Extract()
	wantError(t, err, http.StatusBadRequest, "InvalidRoutes")

	res := shared.raw(t, shared.a, "PUT", "/v2.0/routers/"+r.ID+"/remove_router_interface", `{"subnet_id": "`+sn.ID+`"}`)
	wantRaw(t, res, 409, "RouterInterfaceInUseByRoute")

	rm := []routers.Route{{DestinationCIDR: "172.16.0.0/16", NextHop: "10.64.0.5"}, {DestinationCIDR: "10.0.0.0/8", NextHop: "10.64.0.9"}}
	got, err = extraroutes.Remove(ctx, a, r.ID, extraroutes.Opts{Routes: &rm}).Extract()
	must(t, err)
	if len(got.Routes) != 1 || got.Routes[0].DestinationCIDR != "172.17.0.0/16" {
		t.Fatalf("routes after remove: %+v", got.Routes)
	}
	must(t, set([]routers.Route{}))
	_, err = routers.RemoveInterface(ctx, a, r.ID, routers.RemoveInterfaceOpts{SubnetID: sn.ID}).Extract()
	must(t, err)
	res = shared.raw(t, shared.b, "PUT", "/v2.0/routers/"+r.ID+"/add_extraroutes", `{"router": {"routes": []}}`)
	wantRaw(t, res, 404, "RouterNotFound")
}

// TestRouterAndFloatingIPQuotas: routers and floating IPs are counted
// against the quotas "router" (10) and "floatingip" (50).
func TestRouterAndFloatingIPQuotas(t *testing.T) {
	t.Parallel()
	admin := shared.admin.net(t)
	project := strings.ReplaceAll(uniq("quota-l3"), "-", "")
	d := shared.raw(t, shared.admin, "GET", "/v2.0/quotas/"+project, "").json(t)["quota"].(map[string]any)
	if d["router"] != float64(10) || d["floatingip"] != float64(50) {
		t.Fatalf("default quotas: %v", d)
	}
	res := shared.raw(t, shared.admin, "PUT", "/v2.0/quotas/"+project, `{"quota": {"router": 1, "floatingip": 1}}`)
	if res.status != 200 {
		t.Fatalf("set quota: %d %s", res.status, res.body)
	}
	createRouter(t, admin, rawRouter{"project_id": project})
	_, err := routers.Create(ctx, admin, rawRouter{"project_id": project}).Extract()
	wantError(t, err, http.StatusConflict, "OverQuota")

	ext := newExtNet(t, "203.0.113.0/24")
	createFIP(t, admin, rawFIP{"floating_network_id": ext.net.ID, "project_id": project})
	_, err = createFIPErr(admin, rawFIP{"floating_network_id": ext.net.ID, "project_id": project})
	wantError(t, err, http.StatusConflict, "OverQuota")
	det := shared.raw(t, shared.admin, "GET", "/v2.0/quotas/"+project+"/details", "").json(t)["quota"].(map[string]any)
	if det["router"].(map[string]any)["used"] != float64(1) || det["floatingip"].(map[string]any)["used"] != float64(1) {
		t.Errorf("usage: %v", det)
	}
}

// agentHost plays a host's agent: it reports heartbeats through the agent
// API until stopped.
type agentHost struct {
	name string
	stop context.CancelFunc
	done chan struct{}
}

// startAgent heartbeats host (roles compute and network) every 200 ms.
func (e *env) startAgent(t *testing.T, host, ip string) *agentHost {
	t.Helper()
	res := rawDo(t, t, e.admin.token, "GET", e.srv.URL+"/agent/v1/hosts/"+host+"/token", "", nil)
	tok, _ := res.json(t)["token"].(string)
	if res.status != 200 || tok == "" {
		t.Fatalf("agent token of %s: %d %s", host, res.status, res.body)
	}
	cctx, stop := context.WithCancel(context.Background())
	h := &agentHost{name: host, stop: stop, done: make(chan struct{})}
	body := jsonBody(t, agentapi.Status{Agent: agentapi.AgentInfo{Binary: "vland-agent", LocalIP: netip.MustParseAddr(ip),
		Roles: []string{"compute", "network"}, StartedAt: time.Now().UTC().Format(time.RFC3339)}})
	beat := func() error {
		req, err := http.NewRequestWithContext(cctx, "PUT", e.srv.URL+"/agent/v1/hosts/"+host+"/status", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("heartbeat of %s: %d", host, resp.StatusCode)
		}
		return nil
	}
	if err := beat(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(h.done)
		for {
			select {
			case <-cctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
				if err := beat(); err != nil && cctx.Err() == nil {
					t.Errorf("%v", err)
				}
			}
		}
	}()
	t.Cleanup(h.halt)
	return h
}

// halt stops the heartbeats and waits until the last one is done.
func (h *agentHost) halt() {
	h.stop()
	<-h.done
}

// l3Hosts returns the hosts of the L3 agents hosting a router.
func (e *env) l3Hosts(t *testing.T, routerID string) []string {
	t.Helper()
	res := e.raw(t, e.admin, "GET", "/v2.0/routers/"+routerID+"/l3-agents", "")
	if res.status != 200 {
		t.Fatalf("l3-agents: %d %s", res.status, res.body)
	}
	var hosts []string
	for _, a := range res.json(t)["agents"].([]any) {
		hosts = append(hosts, a.(map[string]any)["host"].(string))
	}
	return hosts
}

// waitL3Host waits until a router is on exactly one host accepted by ok,
// failing if it is ever on two.
func (e *env) waitL3Host(t *testing.T, routerID string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		hosts := e.l3Hosts(t, routerID)
		if len(hosts) > 1 {
			t.Fatalf("router %s on %d hosts at once: %v", routerID, len(hosts), hosts)
		}
		if len(hosts) == 1 && ok(hosts[0]) {
			return hosts[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("router %s not placed as wanted in time (now on %v)", routerID, e.l3Hosts(t, routerID))
	return ""
}

// l3AgentID returns the id of a host's L3 agent record.
func (e *env) l3AgentID(t *testing.T, host string) string {
	t.Helper()
	res := e.raw(t, e.admin, "GET", "/v2.0/agents?agent_type=L3+agent&host="+host, "")
	list := res.json(t)["agents"].([]any)
	if len(list) != 1 {
		t.Fatalf("L3 agents of %s: %s", host, res.body)
	}
	return list[0].(map[string]any)["id"].(string)
}

// TestL3SchedulingFollowsLiveAgents: routers go to live network hosts'
// L3 agents, fewest routers first; their ports are bound there; a router
// whose agent dies moves to another host (never on two at once) and does
// not come back when the old host returns; admins place and unplace
// routers by hand with Neutron's errors; floating IPs are ACTIVE while
// their router is hosted.
func TestL3SchedulingFollowsLiveAgents(t *testing.T) {
	t.Parallel()
	cfg := service.DefaultConfig()
	cfg.AgentDownTime = 2 * time.Second
	e := newEnv(t, t.TempDir(), cfg)
	t.Cleanup(func() { e.srv.Close() })
	admin, a := e.admin.net(t), e.a.net(t)
	agents := map[string]*agentHost{
		"network1": e.startAgent(t, "network1", "10.250.1.1"),
		"network2": e.startAgent(t, "network2", "10.250.1.2"),
	}

	ext := createNet(t, admin, rawNet{"name": "public", "router:external": true, "provider:network_type": "local"})
	createSubnet(t, admin, ext.ID, "203.0.113.0/24")
	r1 := createRouter(t, a, rawRouter{"name": "r1", "external_gateway_info": map[string]any{"network_id": ext.ID}})
	n, sn := netWithSubnet(t, a, "inside", "10.80.0.0/24")
	iface := addSubnet(t, a, r1.ID, sn.ID)
	first := e.waitL3Host(t, r1.ID, func(string) bool { return true })
	second := map[string]string{"network1": "network2", "network2": "network1"}[first]

	// Least routers first: the next router goes to the other host.
	r2 := createRouter(t, a, rawRouter{"name": "r2"})
	e.waitL3Host(t, r2.ID, func(h string) bool { return h == second })

	res := e.raw(t, e.admin, "GET", "/v2.0/agents/"+e.l3AgentID(t, first)+"/l3-routers", "")
	rs := res.json(t)["routers"].([]any)
	if len(rs) != 1 || rs[0].(map[string]any)["id"] != r1.ID {
		t.Fatalf("routers on %s: %s", first, res.body)
	}
	ag := e.raw(t, e.admin, "GET", "/v2.0/agents/"+e.l3AgentID(t, first), "").json(t)["agent"].(map[string]any)
	if ag["agent_type"] != "L3 agent" || ag["topic"] != "l3_agent" || ag["alive"] != true || ag["configurations"].(map[string]any)["routers"] != float64(1) {
		t.Errorf("L3 agent: %v", ag)
	}
	// The router's ports are bound to its host.
	waitPortHost := func(id, host string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var p port
		for time.Now().Before(deadline) {
			must(t, ports.Get(ctx, admin, id).ExtractInto(&p))
			if p.HostID == host {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("port %s (%s) bound to %q, want %q", id, p.DeviceOwner, p.HostID, host)
	}
	gw := listPorts(t, admin, ports.ListOpts{DeviceID: r1.ID, DeviceOwner: "network:router_gateway"})
	waitPortHost(gw[0].ID, first)
	waitPortHost(iface.PortID, first)

	// A floating IP of a hosted router is ACTIVE.
	vm := createPort(t, a, rawPort{"network_id": n.ID})
	f := createFIP(t, a, rawFIP{"floating_network_id": ext.ID, "port_id": vm.ID})
	waitFIPStatus := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var g *floatingips.FloatingIP
		for time.Now().Before(deadline) {
			var err error
			g, err = floatingips.Get(ctx, a, f.ID).Extract()
			must(t, err)
			if g.Status == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("floating IP status %s, want %s", g.Status, want)
	}
	waitFIPStatus("ACTIVE")

	// The router's host dies: the router moves, with its ports.
	agents[first].halt()
	e.waitL3Host(t, r1.ID, func(h string) bool { return h == second })
	waitPortHost(gw[0].ID, second)
	waitPortHost(iface.PortID, second)
	waitFIPStatus("ACTIVE")

	// Admins unplace and place routers by hand.
	secondAgent, firstAgent := e.l3AgentID(t, second), e.l3AgentID(t, first)
	path := "/v2.0/agents/" + secondAgent + "/l3-routers"
	wantRaw(t, e.raw(t, e.a, "GET", path, ""), 403, "PolicyNotAuthorized")
	wantRaw(t, e.raw(t, e.a, "GET", "/v2.0/routers/"+r1.ID+"/l3-agents", ""), 403, "PolicyNotAuthorized")
	wantRaw(t, e.raw(t, e.a, "POST", path, `{"router_id": "`+r1.ID+`"}`), 403, "PolicyNotAuthorized")
	wantRaw(t, e.raw(t, e.admin, "DELETE", "/v2.0/agents/"+firstAgent+"/l3-routers/"+r1.ID, ""), 409, "RouterNotHostedByL3Agent")
	if res := e.raw(t, e.admin, "DELETE", path+"/"+r1.ID, ""); res.status != 204 {
		t.Fatalf("remove router from agent: %d %s", res.status, res.body)
	}
	waitFIPStatus("DOWN")
	time.Sleep(time.Second) // several scheduler passes: it stays unplaced
	if hosts := e.l3Hosts(t, r1.ID); len(hosts) != 0 {
		t.Fatalf("router placed again after an admin removed it: %v", hosts)
	}
	res = e.raw(t, e.admin, "POST", "/v2.0/agents/"+firstAgent+"/l3-routers", `{"router_id": "`+r1.ID+`"}`)
	wantRaw(t, res, 404, "InvalidL3Agent") // its agent is dead
	dhcp := e.raw(t, e.admin, "GET", "/v2.0/agents?agent_type=DHCP+agent&host="+second, "").json(t)["agents"].([]any)[0].(map[string]any)["id"].(string)
	wantRaw(t, e.raw(t, e.admin, "POST", "/v2.0/agents/"+dhcp+"/l3-routers", `{"router_id": "`+r1.ID+`"}`), 404, "InvalidL3Agent")
	wantRaw(t, e.raw(t, e.admin, "POST", path, `{"router_id": "00000000-0000-0000-0000-000000000001"}`), 404, "RouterNotFound")
	if res := e.raw(t, e.admin, "POST", path, `{"router_id": "`+r1.ID+`"}`); res.status != 201 {
		t.Fatalf("add router to agent: %d %s", res.status, res.body)
	}
	if hosts := e.l3Hosts(t, r1.ID); len(hosts) != 1 || hosts[0] != second {
		t.Fatalf("router after adding by hand: %v", hosts)
	}
	waitFIPStatus("ACTIVE")

	// The dead host returns: nothing moves back, and the router cannot be
	// added to it while another agent hosts it.
	e.startAgent(t, first, "10.250.1.9")
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if hosts := e.l3Hosts(t, r1.ID); len(hosts) != 1 || hosts[0] != second {
			t.Fatalf("router moved when its old host returned: %v", hosts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res = e.raw(t, e.admin, "POST", "/v2.0/agents/"+firstAgent+"/l3-routers", `{"router_id": "`+r1.ID+`"}`)
	wantRaw(t, res, 409, "RouterHostedByL3Agent")
}
