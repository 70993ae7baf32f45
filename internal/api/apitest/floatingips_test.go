package apitest

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/portforwarding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// rawFIP is a floating IP create body given attribute by attribute.
type rawFIP map[string]any

func (r rawFIP) ToFloatingIPCreateMap() (map[string]any, error) {
	return map[string]any{"floatingip": map[string]any(r)}, nil
}

func (u upd) ToFloatingIPUpdateMap() (map[string]any, error) {
	return map[string]any{"floatingip": u.m}, nil
}

// fip is a floating IP with fip-port-details.
type fip struct {
	floatingips.FloatingIP
	PortDetails map[string]any `json:"port_details"`
}

// UnmarshalJSON decodes both parts (the embedded type's own UnmarshalJSON
// would otherwise take the whole object).
func (f *fip) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &f.FloatingIP); err != nil {
		return err
	}
	var pd struct {
		PortDetails map[string]any `json:"port_details"`
	}
	if err := json.Unmarshal(b, &pd); err != nil {
		return err
	}
	f.PortDetails = pd.PortDetails
	return nil
}

func createFIPErr(c *gophercloud.ServiceClient, body rawFIP) (fip, error) {
	var f fip
	err := floatingips.Create(ctx, c, body).ExtractInto(&f)
	return f, err
}

func createFIP(t testing.TB, c *gophercloud.ServiceClient, body rawFIP) fip {
	t.Helper()
	f, err := createFIPErr(c, body)
	must(t, err)
	return f
}

func updateFIP(c *gophercloud.ServiceClient, id string, m map[string]any) (fip, error) {
	var f fip
	err := floatingips.Update(ctx, c, id, update(m)).ExtractInto(&f)
	return f, err
}

// topo is a project's network behind a router whose gateway is on ext.
type topo struct {
	ext    extNet
	router *routers.Router
	net    network
	subnet *subnets.Subnet
}

func newTopo(t testing.TB, c *gophercloud.ServiceClient, ext extNet, cidr string) topo {
	t.Helper()
	r := gwRouter(t, c, ext)
	n, sn := netWithSubnet(t, c, uniq("behind"), cidr)
	addSubnet(t, c, r.ID, sn.ID)
	return topo{ext: ext, router: r, net: n, subnet: sn}
}

// TestFloatingIPFloats: a floating IP is allocated with its own port on the
// external network, associates with a VM port behind a router (router_id,
// fixed_ip_address, port_details), moves to another port, is dissociated,
// and is freed with its port.
func TestFloatingIPFloats(t *testing.T) {
	t.Parallel()
	admin, a := shared.admin.net(t), shared.a.net(t)
	tp := newTopo(t, a, newExtNet(t, "203.0.113.0/24"), "10.70.0.0/24")
	vm1 := createPort(t, a, rawPort{"network_id": tp.net.ID, "name": "vm1", "device_id": "vm-1", "device_owner": "compute:nova"})
	vm2 := createPort(t, a, rawPort{"network_id": tp.net.ID, "name": "vm2"})

	f := createFIP(t, a, rawFIP{"floating_network_id": tp.ext.net.ID, "description": "web"})
	if f.Status != "DOWN" || f.RouterID != "" || f.PortID != "" || f.FixedIP != "" || f.Description != "web" || !strings.HasPrefix(f.FloatingIP.FloatingIP, "203.0.113.") || f.PortDetails != nil {
		t.Fatalf("new floating IP: %+v", f)
	}
	fport := listPorts(t, admin, ports.ListOpts{DeviceID: f.ID})
	if len(fport) != 1 || fport[0].DeviceOwner != "network:floatingip" || fport[0].ProjectID != "" || fport[0].FixedIPs[0].IPAddress != f.FloatingIP.FloatingIP {
		t.Fatalf("floating IP port: %+v", fport)
	}
	wantError(t, ports.Delete(ctx, admin, fport[0].ID).ExtractErr(), http.StatusConflict, "ServicePortInUse")

	got, err := updateFIP(a, f.ID, map[string]any{"port_id": vm1.ID})
	must(t, err)
	if got.PortID != vm1.ID || got.FixedIP != vm1.FixedIPs[0].IPAddress || got.RouterID != tp.router.ID || got.FloatingIP.FloatingIP != f.FloatingIP.FloatingIP {
		t.Fatalf("associated: %+v", got)
	}
	if got.PortDetails["name"] != "vm1" || got.PortDetails["device_id"] != "vm-1" || got.PortDetails["network_id"] != tp.net.ID || got.PortDetails["mac_address"] != vm1.MACAddress {
		t.Errorf("port_details: %+v", got.PortDetails)
	}
	// No L3 agent runs in this server: the floating IP stays DOWN.
	if got.Status != "DOWN" {
		t.Errorf("status without an L3 agent: %s", got.Status)
	}
	listed := shared.raw(t, shared.a, "GET", "/v2.0/floatingips?port_id="+vm1.ID, "").json(t)["floatingips"].([]any)
	if len(listed) != 1 || listed[0].(map[string]any)["id"] != f.ID || listed[0].(map[string]any)["port_details"].(map[string]any)["name"] != "vm1" {
		t.Fatalf("list by port: %+v", listed)
	}

	// The address floats to another port.
	got, err = updateFIP(a, f.ID, map[string]any{"port_id": vm2.ID})
	must(t, err)
	if got.PortID != vm2.ID || got.FixedIP != vm2.FixedIPs[0].IPAddress || got.FloatingIP.FloatingIP != f.FloatingIP.FloatingIP {
		t.Fatalf("re-associated: %+v", got)
	}
	// vm1's fixed IP is free for another floating IP now.
	other := createFIP(t, a, rawFIP{"floating_network_id": tp.ext.net.ID, "port_id": vm1.ID})
	if other.PortID != vm1.ID || other.RouterID != tp.router.ID {
		t.Fatalf("second floating IP on vm1: %+v", other)
	}
	got, err = updateFIP(a, f.ID, map[string]any{"port_id": nil})
	must(t, err)
	if got.PortID != "" || got.FixedIP != "" || got.RouterID != "" || got.PortDetails != nil {
		t.Fatalf("dissociated: %+v", got)
	}
	must(t, floatingips.Delete(ctx, a, f.ID).ExtractErr())
	if left := listPorts(t, admin, ports.ListOpts{DeviceID: f.ID}); len(left) != 0 {
		t.Errorf("floating IP port left: %+v", left)
	}
	// Deleting the VM port dissociates its floating IP.
	must(t, ports.Delete(ctx, a, vm1.ID).ExtractErr())
	g, err := floatingips.Get(ctx, a, other.ID).Extract()
	must(t, err)
	if g.PortID != "" || g.RouterID != "" || g.FixedIP != "" {
		t.Errorf("floating IP of a deleted port: %+v", g)
	}
}

// TestFloatingIPRules: every refusal of floating IP create and update with
// Neutron's error.
func TestFloatingIPRules(t *testing.T) {
	t.Parallel()
	admin, a, b := shared.admin.net(t), shared.a.net(t), shared.b.net(t)
	ext := newExtNet(t, "198.51.100.0/24")
	tp := newTopo(t, a, ext, "10.71.0.0/24")
	vm := createPort(t, a, rawPort{"network_id": tp.net.ID})

	_, err := createFIPErr(a, rawFIP{"floating_network_id": tp.net.ID})
	e := wantError(t, err, http.StatusBadRequest, "BadRequest")
	if e.Message != "Bad floatingip request: Network "+tp.net.ID+" is not a valid external network." {
		t.Errorf("message: %s", e.Message)
	}
	_, err = createFIPErr(a, rawFIP{"floating_network_id": "00000000-0000-0000-0000-000000000001"})
	wantError(t, err, http.StatusNotFound, "NetworkNotFound")
	_, err = createFIPErr(a, rawFIP{"floating_network_id": ext.net.ID, "floating_ip_address": "198.51.100.77"})
	wantError(t, err, http.StatusForbidden, "PolicyNotAuthorized")
	_, err = createFIPErr(a, rawFIP{"floating_network_id": ext.net.ID, "fixed_ip_address": "10.71.0.5"})
	wantError(t, err, http.StatusBadRequest, "BadRequest")
	_, err = createFIPErr(a, rawFIP{"floating_network_id": ext.net.ID, "name": "x"})
	wantError(t, err, http.StatusBadRequest, "HTTPBadRequest")
	v6ext := createNet(t, admin, rawNet{"name": uniq("v6pub"), "router:external": true, "provider:network_type": "local"})
	must(t, subnets.Create(ctx, admin, subnets.CreateOpts{NetworkID: v6ext.ID, CIDR: "fd00:71::/64", IPVersion: gophercloud.IPv6}).Err)
	_, err = createFIPErr(a, rawFIP{"floating_network_id": v6ext.ID})
	wantError(t, err, http.StatusBadRequest, "BadRequest")

	// An admin picks the address; it is one floating IP's only.
	mine := createFIP(t, admin, rawFIP{"floating_network_id": ext.net.ID, "floating_ip_address": "198.51.100.77", "project_id": shared.a.projectID})
	if mine.FloatingIP.FloatingIP != "198.51.100.77" || mine.ProjectID != shared.a.projectID {
		t.Fatalf("admin's floating IP: %+v", mine)
	}
	_, err = createFIPErr(admin, rawFIP{"floating_network_id": ext.net.ID, "floating_ip_address": "198.51.100.77"})
	wantError(t, err, http.StatusConflict, "IpAddressAlreadyAllocated")
	_, err = createFIPErr(admin, rawFIP{"floating_network_id": ext.net.ID, "floating_ip_address": "203.0.113.9"})
	wantError(t, err, http.StatusBadRequest, "InvalidIpForNetwork")

	// The port's subnet must reach the external network through a router.
	lonely, _ := netWithSubnet(t, a, uniq("lonely"), "10.71.9.0/24")
	lp := createPort(t, a, rawPort{"network_id": lonely.ID})
	_, err = createFIPErr(a, rawFIP{"floating_network_id": ext.net.ID, "port_id": lp.ID})
	e = wantError(t, err, http.StatusNotFound, "ExternalGatewayForFloatingIPNotFound")
	if e.Message != "External network "+ext.net.ID+" is not reachable from subnet "+lp.FixedIPs[0].SubnetID+".  Therefore, cannot associate Port "+lp.ID+" with a Floating IP." {
		t.Errorf("message: %s", e.Message)
	}
	// A router whose gateway is elsewhere does not count.
	other := newExtNet(t, "203.0.113.0/24")
	_, err = createFIPErr(a, rawFIP{"floating_network_id": other.net.ID, "port_id": vm.ID})
	wantError(t, err, http.StatusNotFound, "ExternalGatewayForFloatingIPNotFound")

	// One fixed IP, one floating IP.
	f1 := createFIP(t, a, rawFIP{"floating_network_id": ext.net.ID, "port_id": vm.ID})
	f2 := createFIP(t, a, rawFIP{"floating_network_id": ext.net.ID})
	_, err = updateFIP(a, f2.ID, map[string]any{"port_id": vm.ID})
	e = wantError(t, err, http.StatusConflict, "FloatingIPPortAlreadyAssociated")
	if !strings.Contains(e.Message, "as that fixed IP already has a floating IP on external network "+ext.net.ID) {
		t.Errorf("message: %s", e.Message)
	}
	// Associating again to the same port changes nothing.
	same, err := updateFIP(a, f1.ID, map[string]any{"port_id": vm.ID})
	must(t, err)
	if same.PortID != vm.ID {
		t.Errorf("same association: %+v", same)
	}

	// Another project's port is not there; nor is another project's FIP.
	bn, _ := netWithSubnet(t, b, uniq("bnet"), "10.71.1.0/24")
	bp := createPort(t, b, rawPort{"network_id": bn.ID})
	_, err = updateFIP(a, f2.ID, map[string]any{"port_id": bp.ID})
	wantError(t, err, http.StatusNotFound, "PortNotFound")
	wantError(t, floatingips.Get(ctx, b, f1.ID).Err, http.StatusNotFound, "FloatingIPNotFound")
	_, err = updateFIP(b, f1.ID, map[string]any{"port_id": nil})
	wantError(t, err, http.StatusNotFound, "FloatingIPNotFound")
	wantError(t, floatingips.Delete(ctx, b, f1.ID).ExtractErr(), http.StatusNotFound, "FloatingIPNotFound")
	// Even an admin's association needs a way to the external network.
	_, err = updateFIP(admin, f2.ID, map[string]any{"port_id": bp.ID})
	wantError(t, err, http.StatusNotFound, "ExternalGatewayForFloatingIPNotFound")

	// A port with two IPv4 addresses needs fixed_ip_address.
	multi := createPort(t, a, rawPort{"network_id": tp.net.ID, "fixed_ips": []any{
		map[string]any{"subnet_id": tp.subnet.ID, "ip_address": "10.71.0.50"}, map[string]any{"subnet_id": tp.subnet.ID, "ip_address": "10.71.0.51"}}})
	_, err = updateFIP(a, f2.ID, map[string]any{"port_id": multi.ID})
	e = wantError(t, err, http.StatusBadRequest, "BadRequest")
	if e.Message != "Bad floatingip request: Port "+multi.ID+" has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP." {
		t.Errorf("message: %s", e.Message)
	}
	_, err = updateFIP(a, f2.ID, map[string]any{"port_id": multi.ID, "fixed_ip_address": "10.71.0.52"})
	wantError(t, err, http.StatusBadRequest, "BadRequest")
	got, err := updateFIP(a, f2.ID, map[string]any{"port_id": multi.ID, "fixed_ip_address": "10.71.0.51"})
	must(t, err)
	if got.FixedIP != "10.71.0.51" {
		t.Fatalf("chosen fixed IP: %+v", got)
	}
	// The other address takes a floating IP of its own; then the first
	// moves to the other address of the same port.
	f3 := createFIP(t, a, rawFIP{"floating_network_id": ext.net.ID, "port_id": multi.ID, "fixed_ip_address": "10.71.0.50"})
	_, err = updateFIP(a, f3.ID, map[string]any{"fixed_ip_address": "10.71.0.51"})
	wantError(t, err, http.StatusConflict, "FloatingIPPortAlreadyAssociated")
	// An address a floating IP floats to stays on its port.
	_, err = ports.Update(ctx, a, multi.ID, ports.UpdateOpts{FixedIPs: []ports.IP{{SubnetID: tp.subnet.ID, IPAddress: "10.71.0.50"}}}).Extract()
	e = wantError(t, err, http.StatusBadRequest, "BadRequest")
	if e.Message != "Bad port request: Cannot update the fixed_ips of the port "+multi.ID+", because its original fixed_ip has been associated to a floating ip." {
		t.Errorf("message: %s", e.Message)
	}

	// A DHCP port takes no floating IP.
	dp := createPort(t, admin, rawPort{"network_id": tp.net.ID, "device_owner": "network:dhcp", "project_id": shared.a.projectID})
	_, err = updateFIP(a, f3.ID, map[string]any{"port_id": dp.ID})
	wantError(t, err, http.StatusBadRequest, "BadRequest")

	// The router's interface and gateway stay while floating IPs use them.
	res := shared.raw(t, shared.a, "PUT", "/v2.0/routers/"+tp.router.ID+"/remove_router_interface", `{"subnet_id": "`+tp.subnet.ID+`"}`)
	wantRaw(t, res, 409, "RouterInterfaceInUseByFloatingIP")
	_, err = routers.Update(ctx, a, tp.router.ID, update(map[string]any{"external_gateway_info": nil})).Extract()
	wantError(t, err, http.StatusConflict, "RouterExternalGatewayInUseByFloatingIp")
	for _, id := range []string{f1.ID, f2.ID, f3.ID} {
		if _, err := updateFIP(a, id, map[string]any{"port_id": nil}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = routers.RemoveInterface(ctx, a, tp.router.ID, routers.RemoveInterfaceOpts{SubnetID: tp.subnet.ID}).Extract()
	must(t, err)
	_, err = routers.Update(ctx, a, tp.router.ID, update(map[string]any{"external_gateway_info": nil})).Extract()
	must(t, err)
}

// TestConcurrentFloatingIPsForOneAddress: of floating IPs created at once
// for one address, exactly one gets it; of floating IPs associated at once
// with one fixed IP, exactly one floats there.
func TestConcurrentFloatingIPsForOneAddress(t *testing.T) {
	t.Parallel()
	admin, a := shared.admin.net(t), shared.a.net(t)
	tp := newTopo(t, a, newExtNet(t, "203.0.113.0/24"), "10.72.0.0/24")
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = createFIPErr(admin, rawFIP{"floating_network_id": tp.ext.net.ID, "floating_ip_address": "203.0.113.200"})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		wantError(t, err, http.StatusConflict, "IpAddressAlreadyAllocated")
	}
	if won != 1 {
		t.Fatalf("%d creates got the address, want 1", won)
	}

	vm := createPort(t, a, rawPort{"network_id": tp.net.ID})
	fips := make([]fip, n)
	for i := range fips {
		fips[i] = createFIP(t, a, rawFIP{"floating_network_id": tp.ext.net.ID})
	}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = updateFIP(a, fips[i].ID, map[string]any{"port_id": vm.ID})
		}()
	}
	wg.Wait()
	won = 0
	for _, err := range errs {
		if err == nil {
			won++
			continue
		}
		wantError(t, err, http.StatusConflict, "FloatingIPPortAlreadyAssociated")
	}
	var on []fip
	pages, err := floatingips.List(a, floatingips.ListOpts{PortID: vm.ID}).AllPages(ctx)
	must(t, err)
	must(t, floatingips.ExtractFloatingIPsInto(pages, &on))
	if won != 1 || len(on) != 1 {
		t.Fatalf("%d associations succeeded and %d floating IPs float to the port, want 1 and 1", won, len(on))
	}
}

// TestPortForwardings: forwardings on a free floating IP (single ports and
// ranges), collisions, the exclusion with 1:1 association, and cleanup.
func TestPortForwardings(t *testing.T) {
	t.Parallel()
	a, b := shared.a.net(t), shared.b.net(t)
	tp := newTopo(t, a, newExtNet(t, "198.51.100.0/24"), "10.73.0.0/24")
	vm1 := createPort(t, a, rawPort{"network_id": tp.net.ID, "name": "vm1"})
	vm2 := createPort(t, a, rawPort{"network_id": tp.net.ID, "name": "vm2"})
	f := createFIP(t, a, rawFIP{"floating_network_id": tp.ext.net.ID})
	ip1, ip2 := vm1.FixedIPs[0].IPAddress, vm2.FixedIPs[0].IPAddress

	pfCreate := func(c *gophercloud.ServiceClient, body map[string]any) (*portforwarding.PortForwarding, error) {
		return portforwarding.Create(ctx, c, f.ID, rawPF(body)).Extract()
	}
	pf1, err := pfCreate(a, map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port": 80, "external_port": 8080, "description": "web1"})
	must(t, err)
	if pf1.ExternalPort != 8080 || pf1.InternalPort != 80 || pf1.ExternalPortRange != "8080:8080" || pf1.InternalPortRange != "80:80" || pf1.Protocol != "tcp" || pf1.Description != "web1" || pf1.InternalIPAddress != ip1 {
		t.Fatalf("port forwarding: %+v", pf1)
	}
	g, err := floatingips.Get(ctx, a, f.ID).Extract()
	must(t, err)
	if g.RouterID != tp.router.ID || g.PortID != "" {
		t.Fatalf("floating IP with a forwarding: %+v", g)
	}
	_, err = pfCreate(a, map[string]any{"protocol": "tcp", "internal_port_id": vm2.ID, "internal_ip_address": ip2, "internal_port": 80, "external_port": 8081})
	must(t, err)
	_, err = pfCreate(a, map[string]any{"protocol": "udp", "internal_port_id": vm2.ID, "internal_ip_address": ip2, "internal_port": 53, "external_port": 8080})
	must(t, err)
	rng, err := pfCreate(a, map[string]any{"protocol": "tcp", "internal_port_id": vm2.ID, "internal_ip_address": ip2, "internal_port_range": "9000:9010", "external_port_range": "9100:9110"})
	must(t, err)
	if rng.ExternalPort != 0 || rng.ExternalPortRange != "9100:9110" || rng.InternalPortRange != "9000:9010" {
		t.Fatalf("range forwarding: %+v", rng)
	}
	// 1-N: many external ports to one internal port.
	_, err = pfCreate(a, map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port": 22, "external_port_range": "2200:2210"})
	must(t, err)

	bad := func(body map[string]any, status int, typ, msg string) {
		t.Helper()
		_, err := pfCreate(a, body)
		e := wantError(t, err, status, typ)
		if msg != "" && e.Message != msg {
			t.Errorf("message %q, want %q", e.Message, msg)
		}
	}
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port": 81, "external_port": 8080}, 400, "BadRequest",
		"Bad port_forwarding request: There is a port collision with the external_port_range. The following ranges collide: 8080:8080 and 8080:8080.")
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port": 81, "external_port": 9105}, 400, "BadRequest", "")
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port": 80, "external_port": 8090}, 400, "BadRequest",
		"Bad port_forwarding request: There is a port collision with the internal_port_range. The following ranges collide: 80:80 and 80:80.")
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port_range": "100:105", "external_port_range": "100:110"}, 400, "BadRequest",
		"Bad port_forwarding request: Invalid ranges of internal and/or external ports. The relation between internal and external ports must be N-N or 1-N.")
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port_range": "105:100", "external_port": 7000}, 400, "HTTPBadRequest", "")
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port": 70000, "external_port": 7000}, 400, "HTTPBadRequest", "")
	bad(map[string]any{"protocol": "icmp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port": 7, "external_port": 7000}, 400, "HTTPBadRequest", "")
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "external_port": 7000}, 400, "BadRequest", "")
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip2, "internal_port": 7, "external_port": 7000}, 400, "BadRequest", "")
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_port": 7, "external_port": 7000}, 400, "HTTPBadRequest", "")
	lonely, _ := netWithSubnet(t, a, uniq("pf-lonely"), "10.73.9.0/24")
	lp := createPort(t, a, rawPort{"network_id": lonely.ID})
	bad(map[string]any{"protocol": "tcp", "internal_port_id": lp.ID, "internal_ip_address": lp.FixedIPs[0].IPAddress, "internal_port": 7, "external_port": 7000}, 400, "BadRequest", "")
	bn, _ := netWithSubnet(t, b, uniq("pf-b"), "10.73.1.0/24")
	bp := createPort(t, b, rawPort{"network_id": bn.ID})
	bad(map[string]any{"protocol": "tcp", "internal_port_id": bp.ID, "internal_ip_address": bp.FixedIPs[0].IPAddress, "internal_port": 7, "external_port": 7000}, 404, "PortNotFound", "")
	// A port with a floating IP of its own takes no forwardings.
	vm3 := createPort(t, a, rawPort{"network_id": tp.net.ID})
	createFIP(t, a, rawFIP{"floating_network_id": tp.ext.net.ID, "port_id": vm3.ID})
	bad(map[string]any{"protocol": "tcp", "internal_port_id": vm3.ID, "internal_ip_address": vm3.FixedIPs[0].IPAddress, "internal_port": 7, "external_port": 7000}, 409, "PortHasBindingFloatingIP", "")

	// Forwardings and a 1:1 association exclude each other.
	_, err = updateFIP(a, f.ID, map[string]any{"port_id": vm1.ID})
	e := wantError(t, err, http.StatusConflict, "FipInUseByPortForwarding")
	if e.Message != "Floating IP "+f.ID+" in use by Port Forwarding resources." {
		t.Errorf("message: %s", e.Message)
	}
	wantError(t, floatingips.Delete(ctx, a, f.ID).ExtractErr(), http.StatusConflict, "FipInUseByPortForwarding")
	assoc := createFIP(t, a, rawFIP{"floating_network_id": tp.ext.net.ID, "port_id": vm2.ID})
	_, err = portforwarding.Create(ctx, a, assoc.ID, rawPF{"protocol": "tcp", "internal_port_id": vm1.ID, "internal_ip_address": ip1, "internal_port": 443, "external_port": 443}).Extract()
	wantError(t, err, http.StatusConflict, "FloatingIPPortAlreadyAssociated")

	// Other projects see nothing.
	_, err = portforwarding.Get(ctx, b, f.ID, pf1.ID).Extract()
	wantError(t, err, http.StatusNotFound, "FloatingIPNotFound")
	_, err = pfCreate(b, map[string]any{"protocol": "tcp", "internal_port_id": bp.ID, "internal_ip_address": bp.FixedIPs[0].IPAddress, "internal_port": 7, "external_port": 7001})
	wantError(t, err, http.StatusNotFound, "FloatingIPNotFound")

	// List, filter, get, update.
	all, err := portforwarding.List(a, portforwarding.ListOpts{}, f.ID).AllPages(ctx)
	must(t, err)
	list, err := portforwarding.ExtractPortForwardings(all)
	must(t, err)
	if len(list) != 5 {
		t.Fatalf("%d forwardings listed, want 5", len(list))
	}
	res := shared.raw(t, shared.a, "GET", "/v2.0/floatingips/"+f.ID+"/port_forwardings?protocol=udp", "").json(t)["port_forwardings"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["external_port"] != float64(8080) {
		t.Fatalf("udp forwardings: %v", res)
	}
	if _, hidden := res[0].(map[string]any)["project_id"]; hidden {
		t.Errorf("project_id shown: %v", res[0])
	}
	up, err := portforwarding.Update(ctx, a, f.ID, pf1.ID, portforwarding.UpdateOpts{ExternalPort: 8088}).Extract()
	must(t, err)
	if up.ExternalPort != 8088 || up.InternalPort != 80 {
		t.Fatalf("updated forwarding: %+v", up)
	}
	_, err = portforwarding.Update(ctx, a, f.ID, pf1.ID, portforwarding.UpdateOpts{ExternalPort: 8081}).Extract()
	wantError(t, err, http.StatusBadRequest, "BadRequest")
	_, err = portforwarding.Get(ctx, a, f.ID, "00000000-0000-0000-0000-000000000001").Extract()
	wantError(t, err, http.StatusNotFound, "PortForwardingNotFound")

	// Deleting a port deletes the forwardings to it; the last one gone,
	// the floating IP leaves the router.
	must(t, ports.Delete(ctx, a, vm2.ID).ExtractErr())
	all, err = portforwarding.List(a, portforwarding.ListOpts{}, f.ID).AllPages(ctx)
	must(t, err)
	list, err = portforwarding.ExtractPortForwardings(all)
	must(t, err)
	if len(list) != 2 {
		t.Fatalf("%d forwardings after deleting vm2, want 2: %+v", len(list), list)
	}
	for _, pf := range list {
		must(t, portforwarding.Delete(ctx, a, f.ID, pf.ID).ExtractErr())
	}
	g, err = floatingips.Get(ctx, a, f.ID).Extract()
	must(t, err)
	if g.RouterID != "" {
		t.Errorf("router of a floating IP without forwardings: %s", g.RouterID)
	}
	must(t, floatingips.Delete(ctx, a, f.ID).ExtractErr())
}

// rawPF is a port forwarding create body given attribute by attribute.
type rawPF map[string]any

func (r rawPF) ToPortForwardingCreateMap() (map[string]any, error) {
	return map[string]any{"port_forwarding": map[string]any(r)}, nil
}
