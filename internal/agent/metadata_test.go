package agent

import (
	"net/netip"
	"testing"

	"github.com/vland/vland/internal/agentapi"
)

func TestMetaIndexIdentifiesCallersAndGuardsProjects(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.5")
	subnets := map[string]agentapi.Subnet{"s1": {ID: "s1", NetworkID: "n1", CIDR: netip.MustParsePrefix("10.0.0.0/24")},
		"s2": {ID: "s2", NetworkID: "n2", CIDR: netip.MustParsePrefix("10.0.0.0/24")}}
	ports := map[string]agentapi.Port{
		"qr":  {ID: "qr", NetworkID: "n1", DeviceOwner: OwnerRouterInterface, FixedIPs: []agentapi.FixedIP{{SubnetID: "s1", IPAddress: netip.MustParseAddr("10.0.0.1")}}},
		"vm1": {ID: "vm1", NetworkID: "n1", DeviceID: "dev-a", ProjectID: "pa", MACAddress: "fa:16:3e:00:00:01", FixedIPs: []agentapi.FixedIP{{SubnetID: "s1", IPAddress: ip}}},
		// Project pb's port names pa's device: it must not see pa's data.
		"vm2": {ID: "vm2", NetworkID: "n2", DeviceID: "dev-a", ProjectID: "pb", MACAddress: "fa:16:3e:00:00:02", FixedIPs: []agentapi.FixedIP{{SubnetID: "s2", IPAddress: ip}}},
	}
	routers := map[string]agentapi.Router{"r1": {ID: "r1", Interfaces: []string{"qr"}, FloatingIPs: []agentapi.FloatingIP{{PortID: "vm1", FloatingIP: netip.MustParseAddr("203.0.113.9")}}}}
	instances := map[string]agentapi.Instance{"dev-a": {DeviceID: "dev-a", ProjectID: "pa", Name: "a", UserData: []byte("secret")}}
	ix := newMetaIndex(viewMaps{subnets: subnets, ports: ports, routers: routers, instances: instances}, []string{"n2"})

	in, ok := ix.instance("r1", ip)
	if !ok || in.ID != "dev-a" || string(in.UserData) != "secret" || in.Name != "a" || in.PublicIPv4 != netip.MustParseAddr("203.0.113.9") {
		t.Fatalf("router caller: %+v %v", in, ok)
	}
	in, ok = ix.instance("n2", ip)
	if !ok || in.UserData != nil || in.Name == "a" {
		t.Errorf("another project's port naming the device got its data: %+v", in)
	}
	if _, ok := ix.instance("r1", netip.MustParseAddr("10.0.0.77")); ok {
		t.Error("an unknown source address was answered")
	}
	if _, ok := ix.instance("n1", ip); ok {
		t.Error("a network with a router is served from DHCP as isolated")
	}
}
