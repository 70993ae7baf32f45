package agent

import (
	"net/netip"
	"testing"

	"github.com/vland/vland/internal/agentapi"
)

func TestRouterDesiredFromView(t *testing.T) {
	subnets := map[string]agentapi.Subnet{
		"sn-in":  {ID: "sn-in", NetworkID: "net-in", IPVersion: 4, CIDR: netip.MustParsePrefix("10.0.0.0/24"), GatewayIP: netip.MustParseAddr("10.0.0.1")},
		"sn-ext": {ID: "sn-ext", NetworkID: "net-ext", IPVersion: 4, CIDR: netip.MustParsePrefix("203.0.113.0/24"), GatewayIP: netip.MustParseAddr("203.0.113.1")},
	}
	networks := map[string]agentapi.Network{"net-in": {ID: "net-in", MTU: 1450}, "net-ext": {ID: "net-ext", MTU: 1500}}
	ports := map[string]agentapi.Port{
		"p-qr": {ID: "p-qr", NetworkID: "net-in", MACAddress: "fa:16:3e:00:00:01", Local: true, DeviceOwner: OwnerRouterInterface,
			FixedIPs: []agentapi.FixedIP{{SubnetID: "sn-in", IPAddress: netip.MustParseAddr("10.0.0.1")}}},
		"p-qg": {ID: "p-qg", NetworkID: "net-ext", MACAddress: "fa:16:3e:00:00:02", Local: true, DeviceOwner: OwnerRouterGateway,
			FixedIPs: []agentapi.FixedIP{{SubnetID: "sn-ext", IPAddress: netip.MustParseAddr("203.0.113.20")}}},
	}
	routers := map[string]agentapi.Router{
		"r1": {ID: "r1", AdminStateUp: true, Interfaces: []string{"p-qr", "p-missing"}, GatewayPort: "p-qg", EnableSNAT: true,
			FloatingIPs: []agentapi.FloatingIP{{ID: "f1", FloatingIP: netip.MustParseAddr("203.0.113.30"), FixedIP: netip.MustParseAddr("10.0.0.5")}}},
		"r-down": {ID: "r-down", AdminStateUp: false},
	}
	d := routerDesired(routers, networks, subnets, ports, 9697)
	if len(d.Routers) != 1 {
		t.Fatalf("routers %+v, want r1 only (r-down is administratively down)", d.Routers)
	}
	r := d.Routers[0]
	if len(r.Interfaces) != 1 || r.Interfaces[0].Addrs[0] != netip.MustParsePrefix("10.0.0.1/24") || r.Interfaces[0].MTU != 1450 {
		t.Errorf("interfaces %+v", r.Interfaces)
	}
	g := r.Gateway
	if g == nil || g.Addrs[0] != netip.MustParsePrefix("203.0.113.20/24") || len(g.DefaultGateways) != 1 || !g.EnableSNAT {
		t.Errorf("gateway %+v", g)
	}
	if len(r.FloatingIPs) != 1 || r.MetadataPort != 9697 {
		t.Errorf("floating IPs %+v, metadata port %d", r.FloatingIPs, r.MetadataPort)
	}
}

func TestFirewallDesiredSkipsCloudPortsAndKeepsZones(t *testing.T) {
	ports := map[string]agentapi.Port{
		"vm1": {ID: "vm1", NetworkID: "n1", MACAddress: "fa:16:3e:00:00:01", Local: true, DeviceOwner: "compute:nova", PortSecurity: true,
			SecurityGroups: []string{"sg"}, FixedIPs: []agentapi.FixedIP{{IPAddress: netip.MustParseAddr("10.0.0.5")}},
			AllowedAddressPairs: []agentapi.AddressPair{{IPAddress: netip.MustParsePrefix("10.0.0.100/32"), MACAddress: "fa:16:3e:00:00:99"}}},
		"vm2":    {ID: "vm2", NetworkID: "n2", MACAddress: "fa:16:3e:00:00:02", Local: true, DeviceOwner: "compute:nova"},
		"dhcp":   {ID: "dhcp", NetworkID: "n1", MACAddress: "fa:16:3e:00:00:03", Local: true, DeviceOwner: OwnerDHCP},
		"remote": {ID: "remote", NetworkID: "n1", MACAddress: "fa:16:3e:00:00:04", DeviceOwner: "compute:nova"},
	}
	groups := map[string]agentapi.SecurityGroup{"sg": {ID: "sg", Stateful: true, Members: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")},
		Rules: []agentapi.SecurityGroupRule{{ID: "r", Direction: "ingress", Ethertype: "IPv4", RemoteGroupID: "sg"}}}}
	var z zoneMap
	d := firewallDesired(groups, nil, ports, &z)
	if len(d.Ports) != 2 || d.Ports[0].ID != "vm1" || d.Ports[1].ID != "vm2" {
		t.Fatalf("ports %+v, want vm1 and vm2 only", d.Ports)
	}
	p := d.Ports[0]
	if p.Device != "tapvm1" || p.Bridge != "brqn1" || len(p.AllowedPairs) != 1 || p.AllowedPairs[0].MAC.String() != "fa:16:3e:00:00:99" {
		t.Errorf("vm1 %+v", p)
	}
	if p.Zone == d.Ports[1].Zone || p.Zone != preferredZone("n1") {
		t.Errorf("zones %d and %d: want distinct, n1's preferred %d", p.Zone, d.Ports[1].Zone, preferredZone("n1"))
	}
	if len(d.RemoteGroups["sg"]) != 1 || len(d.Groups["sg"].Rules) != 1 {
		t.Errorf("groups %+v remote %+v", d.Groups, d.RemoteGroups)
	}
	// A restarted agent (a new zoneMap) gives the same zones.
	var z2 zoneMap
	if d2 := firewallDesired(groups, nil, ports, &z2); d2.Ports[0].Zone != p.Zone || d2.Ports[1].Zone != d.Ports[1].Zone {
		t.Error("zones differ after a restart")
	}
}
