package apitest

import (
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/extradhcpopts"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/networkipavailabilities"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

type portWithOpts struct {
	ports.Port
	extradhcpopts.ExtraDHCPOptsExt
}

// TestExtraDHCPOptsStoredAndMerged: options given at create come back;
// an update replaces by name, and a null value removes one.
func TestExtraDHCPOptsStoredAndMerged(t *testing.T) {
	t.Parallel()
	e := shared
	c := e.a.net(t)
	n, _ := netWithSubnet(t, c, uniq("dhcpopt"), "10.91.0.0/24")
	var p portWithOpts
	must(t, ports.Create(ctx, c, extradhcpopts.CreateOptsExt{
		CreateOptsBuilder: ports.CreateOpts{NetworkID: n.ID},
		ExtraDHCPOpts: []extradhcpopts.CreateExtraDHCPOpt{
			{OptName: "tftp-server", OptValue: "10.91.0.9"},
			{OptName: "bootfile-name", OptValue: "pxelinux.0"},
		},
	}).ExtractInto(&p))
	if len(p.ExtraDHCPOpts) != 2 || p.ExtraDHCPOpts[0].IPVersion != 4 {
		t.Fatalf("created options: %+v", p.ExtraDHCPOpts)
	}
	r := e.raw(t, e.a, "PUT", "/v2.0/ports/"+p.ID, `{"port": {"extra_dhcp_opts": [
		{"opt_name": "tftp-server", "opt_value": "10.91.0.10"}, {"opt_name": "bootfile-name", "opt_value": null}]}}`)
	opts := r.json(t)["port"].(map[string]any)["extra_dhcp_opts"].([]any)
	if len(opts) != 1 || opts[0].(map[string]any)["opt_value"] != "10.91.0.10" {
		t.Fatalf("merged options: %s", r.body)
	}
	wantRaw(t, e.raw(t, e.a, "PUT", "/v2.0/ports/"+p.ID, `{"port": {"extra_dhcp_opts": [{"opt_name": "", "opt_value": "x"}]}}`), 400, "HTTPBadRequest")
}

// TestMACRegenerate: an admin's mac_address null gives the port a new MAC.
func TestMACRegenerate(t *testing.T) {
	t.Parallel()
	e := shared
	n, _ := netWithSubnet(t, e.admin.net(t), uniq("regen"), "10.92.0.0/24")
	p := createPort(t, e.admin.net(t), rawPort{"network_id": n.ID})
	r := e.raw(t, e.admin, "PUT", "/v2.0/ports/"+p.ID, `{"port": {"mac_address": null}}`)
	mac := r.json(t)["port"].(map[string]any)["mac_address"]
	if r.status != 200 || mac == p.MACAddress || mac == "" {
		t.Fatalf("regenerated MAC: %d %v (was %s)", r.status, mac, p.MACAddress)
	}
}

// TestNetworkIPAvailabilityCountsExactly: totals are the pools' sizes and
// used counts follow port creation.
func TestNetworkIPAvailabilityCountsExactly(t *testing.T) {
	t.Parallel()
	e := shared
	admin := e.admin.net(t)
	n, sn := netWithSubnet(t, admin, uniq("avail"), "10.93.0.0/28")
	for range 3 {
		createPort(t, admin, rawPort{"network_id": n.ID})
	}
	a, err := networkipavailabilities.Get(ctx, admin, n.ID).Extract()
	must(t, err)
	if a.TotalIPs != "13" || a.UsedIPs != "3" || len(a.SubnetIPAvailabilities) != 1 || a.SubnetIPAvailabilities[0].SubnetID != sn.ID {
		t.Fatalf("availability: total %s used %s subnets %+v", a.TotalIPs, a.UsedIPs, a.SubnetIPAvailabilities)
	}
	pages, err := networkipavailabilities.List(admin, networkipavailabilities.ListOpts{NetworkID: n.ID}).AllPages(ctx)
	must(t, err)
	list, err := networkipavailabilities.ExtractNetworkIPAvailabilities(pages)
	must(t, err)
	if len(list) != 1 {
		t.Fatalf("filtered list: %d entries", len(list))
	}
	_, err = networkipavailabilities.Get(ctx, e.a.net(t), n.ID).Extract()
	wantError(t, err, 403, "PolicyNotAuthorized")
}

// TestSubnetServiceTypes: a subnet typed for router gateways serves only
// them; ordinary ports take the untyped subnet, and a network with only
// typed subnets refuses others with IpAddressGenerationFailureNoMatchingSubnet.
func TestSubnetServiceTypes(t *testing.T) {
	t.Parallel()
	e := shared
	c := e.admin.net(t)
	n := createNet(t, c, rawNet{"name": uniq("svct")})
	typed := e.raw(t, e.admin, "POST", "/v2.0/subnets", jsonBody(t, map[string]any{"subnet": map[string]any{
		"network_id": n.ID, "cidr": "10.94.1.0/24", "ip_version": 4, "service_types": []string{"network:router_gateway"}}}))
	if typed.status != 201 {
		t.Fatalf("typed subnet: %d %s", typed.status, typed.body)
	}
	typedID := typed.json(t)["subnet"].(map[string]any)["id"]
	r := e.raw(t, e.admin, "POST", "/v2.0/ports", jsonBody(t, map[string]any{"port": map[string]any{"network_id": n.ID}}))
	wantRaw(t, r, 409, "IpAddressGenerationFailureNoMatchingSubnet")
	gw := createPort(t, c, rawPort{"network_id": n.ID, "device_owner": "network:router_gateway"})
	if len(gw.FixedIPs) != 1 || gw.FixedIPs[0].SubnetID != typedID {
		t.Fatalf("gateway port: %+v", gw.FixedIPs)
	}
	createSubnet(t, c, n.ID, "10.94.2.0/24")
	vm := createPort(t, c, rawPort{"network_id": n.ID, "device_owner": "compute:nova"})
	if len(vm.FixedIPs) != 1 || vm.FixedIPs[0].SubnetID == typedID {
		t.Fatalf("compute port took the gateway subnet: %+v", vm.FixedIPs)
	}
	r = e.raw(t, e.admin, "POST", "/v2.0/subnets", jsonBody(t, map[string]any{"subnet": map[string]any{
		"network_id": n.ID, "cidr": "10.94.3.0/24", "ip_version": 4, "service_types": []string{"bogus"}}}))
	wantRaw(t, r, 400, "HTTPBadRequest")
}

// TestDNSNameAndAssignment: a port's dns_name shows in dns_assignment with
// the configured domain; without one the host-<address> name is used;
// invalid names are refused.
func TestDNSNameAndAssignment(t *testing.T) {
	t.Parallel()
	e := shared
	c := e.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("dns"), "10.95.0.0/24")
	r := e.raw(t, e.a, "POST", "/v2.0/ports", jsonBody(t, map[string]any{"port": map[string]any{
		"network_id": n.ID, "dns_name": "Web-1", "fixed_ips": []any{map[string]any{"subnet_id": sn.ID, "ip_address": "10.95.0.7"}}}}))
	p := r.json(t)["port"].(map[string]any)
	a := p["dns_assignment"].([]any)[0].(map[string]any)
	if p["dns_name"] != "web-1" || a["hostname"] != "web-1" || a["fqdn"] != "web-1.openstacklocal." || a["ip_address"] != "10.95.0.7" {
		t.Fatalf("dns attributes: %v %v", p["dns_name"], a)
	}
	r = e.raw(t, e.a, "POST", "/v2.0/ports", jsonBody(t, map[string]any{"port": map[string]any{
		"network_id": n.ID, "fixed_ips": []any{map[string]any{"subnet_id": sn.ID, "ip_address": "10.95.0.8"}}}}))
	a = r.json(t)["port"].(map[string]any)["dns_assignment"].([]any)[0].(map[string]any)
	if a["hostname"] != "host-10-95-0-8" {
		t.Fatalf("default host name: %v", a)
	}
	wantRaw(t, e.raw(t, e.a, "POST", "/v2.0/ports", jsonBody(t, map[string]any{"port": map[string]any{"network_id": n.ID, "dns_name": "-bad-"}})), 400, "HTTPBadRequest")
	wantRaw(t, e.raw(t, e.a, "POST", "/v2.0/ports", jsonBody(t, map[string]any{"port": map[string]any{"network_id": n.ID, "dns_name": "web.example.com."}})), 400, "HTTPBadRequest")
}
