package service_test

import (
	"testing"

	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
)

// TestHostViewCarriesEveryRoutersFloatingIPs: with several routers on one
// host, each router of the view has its own floating IP (a view built
// with pointers into a growing slice once lost all but the last router's).
func TestHostViewCarriesEveryRoutersFloatingIPs(t *testing.T) {
	svc := newService(t, service.DefaultConfig())
	admin := asProject("admin", policy.RoleAdmin, policy.RoleMember)
	ext, err := svc.CreateNetworks(admin, []model.Fields{decode(t, model.NetworkSpec, map[string]any{
		"name": "public", "router:external": true, "provider:network_type": "flat", "provider:physical_network": "public"})})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateSubnets(admin, []model.Fields{decode(t, model.SubnetSpec, map[string]any{
		"network_id": ext[0].ID, "ip_version": "4", "cidr": "203.0.113.0/24", "enable_dhcp": false})}); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, svc, "net1")
	const n = 5
	want := map[string]string{} // router id -> floating IP id
	for i := range n {
		ctx := asProject("p" + string(rune('a'+i)))
		_, sub := mustNetworkWithSubnet(t, svc, ctx, "10.0.0.0/24")
		r := newRouter(t, svc, ctx, map[string]any{"name": "r", "external_gateway_info": map[string]any{"network_id": ext[0].ID}})
		if _, err := svc.AddRouterInterface(ctx, r.ID, service.InterfaceRequest{SubnetID: sub.ID}); err != nil {
			t.Fatal(err)
		}
		ports, err := svc.CreatePorts(ctx, []model.Fields{decode(t, model.PortSpec, map[string]any{"network_id": sub.NetworkID})})
		if err != nil {
			t.Fatal(err)
		}
		fips, err := svc.CreateFloatingIPs(ctx, []model.Fields{decode(t, model.FloatingIPSpec, map[string]any{
			"floating_network_id": ext[0].ID, "port_id": ports[0].ID})})
		if err != nil {
			t.Fatal(err)
		}
		want[r.ID] = fips[0].ID
	}
	schedule(t, svc)
	v := svc.HostView("net1")
	if len(v.Routers) != n {
		t.Fatalf("view has %d routers, want %d", len(v.Routers), n)
	}
	for _, r := range v.Routers {
		if len(r.FloatingIPs) != 1 || r.FloatingIPs[0].ID != want[r.ID] {
			t.Errorf("router %s carries floating IPs %+v, want %s", r.ID, r.FloatingIPs, want[r.ID])
		}
	}
}
