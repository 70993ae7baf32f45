package agent

import (
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/router"
)

// Device owners of router ports.
const (
	OwnerRouterInterface = "network:router_interface"
	OwnerRouterGateway   = "network:router_gateway"
)

// routerDesired translates the routers of a host view into the router
// package's terms: each router placed here that is administratively up,
// with its interface and gateway ports (local ports of the view) giving MACs,
// addresses with their subnets' prefix lengths, MTUs, and the external
// subnets' gateways. A port the view does not (yet) hold is left out until
// it does. Pure: the same view gives the same routers.
func routerDesired(routers map[string]agentapi.Router, networks map[string]agentapi.Network, subnets map[string]agentapi.Subnet, ports map[string]agentapi.Port, metadataPort uint16) router.Desired {
	var d router.Desired
	for _, id := range slices.Sorted(maps.Keys(routers)) {
		r := routers[id]
		if !r.AdminStateUp {
			continue
		}
		out := router.Router{ID: r.ID, MetadataPort: metadataPort}
		for _, pid := range r.Interfaces {
			p, ok := ports[pid]
			if !ok || !p.Local {
				continue
			}
			mac, err := net.ParseMAC(p.MACAddress)
			if err != nil {
				continue
			}
			itf := router.Interface{PortID: p.ID, MAC: mac, MTU: networks[p.NetworkID].MTU}
			itf.Addrs, _ = portPrefixes(p, subnets)
			out.Interfaces = append(out.Interfaces, itf)
		}
		if p, ok := ports[r.GatewayPort]; ok && p.Local {
			if mac, err := net.ParseMAC(p.MACAddress); err == nil {
				g := &router.Gateway{PortID: p.ID, MAC: mac, MTU: networks[p.NetworkID].MTU, EnableSNAT: r.EnableSNAT}
				g.Addrs, g.DefaultGateways = portPrefixes(p, subnets)
				out.Gateway = g
			}
		}
		for _, rt := range r.Routes {
			out.Routes = append(out.Routes, router.Route{Destination: rt.Destination, NextHop: rt.NextHop})
		}
		for _, f := range r.FloatingIPs {
			out.FloatingIPs = append(out.FloatingIPs, router.FloatingIP{ID: f.ID, FloatingIP: f.FloatingIP, FixedIP: f.FixedIP})
		}
		for _, pf := range r.PortForwards {
			out.PortForwards = append(out.PortForwards, router.PortForward{
				ID: pf.ID, FloatingIP: pf.FloatingIP, Protocol: pf.Protocol,
				ExternalPortMin: pf.ExternalPortMin, ExternalPortMax: pf.ExternalPortMax,
				InternalIP: pf.InternalIP, InternalPortMin: pf.InternalPortMin, InternalPortMax: pf.InternalPortMax,
			})
		}
		d.Routers = append(d.Routers, out)
	}
	return d
}

// portPrefixes are a port's fixed IPs with their subnets' prefix lengths,
// and the gateways of those subnets.
func portPrefixes(p agentapi.Port, subnets map[string]agentapi.Subnet) (addrs []netip.Prefix, gateways []netip.Addr) {
	for _, f := range p.FixedIPs {
		sn, ok := subnets[f.SubnetID]
		if !ok || !sn.CIDR.IsValid() {
			continue
		}
		addrs = append(addrs, netip.PrefixFrom(f.IPAddress, sn.CIDR.Bits()))
		if sn.GatewayIP.IsValid() && !slices.Contains(gateways, sn.GatewayIP) {
			gateways = append(gateways, sn.GatewayIP)
		}
	}
	return addrs, gateways
}
