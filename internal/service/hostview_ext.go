package service

import (
	"maps"
	"slices"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/model"
)

// What a host view holds beyond L2 and DHCP: the routers scheduled to the
// host with their floating IPs and port forwardings (hostRouters, read from
// the same snapshot as the rest of the view), and the security groups of
// its local ports with the address groups and remote-group members their
// rules need (hostSecurity).

// hostRouters adds the routers placed on host.
func hostRouters(snap storeSnapshot, host string, v *agentapi.View) {
	byID := map[string]*agentapi.Router{}
	snap.Each(Routers, func(_ string, it storeItem) bool {
		r := it.Value.(*model.Cached).Obj.(*model.Router)
		if r.Placement.Host != host {
			return true
		}
		out := agentapi.Router{
			ID: r.ID, ProjectID: r.ProjectID, AdminStateUp: r.AdminStateUp,
			Interfaces: slices.Clone(r.Interfaces), GatewayPort: r.GatewayPortID, EnableSNAT: r.EnableSNAT,
		}
		if out.Interfaces == nil {
			out.Interfaces = []string{}
		}
		for _, rt := range r.Routes {
			out.Routes = append(out.Routes, agentapi.HostRoute{Destination: rt.Destination, NextHop: rt.NextHop})
		}
		v.Routers = append(v.Routers, out)
		return true
	})
	if len(v.Routers) == 0 {
		return
	}
	// Pointers into v.Routers only now that it no longer grows.
	for i := range v.Routers {
		byID[v.Routers[i].ID] = &v.Routers[i]
	}
	fips := map[string]*model.FloatingIP{}
	snap.Each(FloatingIPs, func(_ string, it storeItem) bool {
		f := it.Value.(*model.Cached).Obj.(*model.FloatingIP)
		r := byID[f.RouterID]
		if r == nil {
			return true
		}
		fips[f.ID] = f
		if f.PortID != "" && f.FixedIPAddress.IsValid() {
			r.FloatingIPs = append(r.FloatingIPs, agentapi.FloatingIP{ID: f.ID, FloatingIP: f.FloatingIPAddress, FixedIP: f.FixedIPAddress, PortID: f.PortID})
		}
		return true
	})
	snap.Each(PortForwardings, func(_ string, it storeItem) bool {
		pf := it.Value.(*model.Cached).Obj.(*model.PortForwarding)
		f := fips[pf.FloatingIPID]
		if f == nil {
			return true
		}
		byID[f.RouterID].PortForwards = append(byID[f.RouterID].PortForwards, agentapi.PortForwarding{
			ID: pf.ID, FloatingIP: f.FloatingIPAddress, Protocol: pf.Protocol,
			ExternalPortMin: uint16(pf.External.First), ExternalPortMax: uint16(pf.External.Last),
			InternalIP: pf.InternalIPAddress, InternalPortMin: uint16(pf.Internal.First), InternalPortMax: uint16(pf.Internal.Last),
		})
		return true
	})
	for _, r := range v.Routers {
		slices.SortFunc(r.FloatingIPs, func(a, b agentapi.FloatingIP) int { return compareStrings(a.ID, b.ID) })
		slices.SortFunc(r.PortForwards, func(a, b agentapi.PortForwarding) int { return compareStrings(a.ID, b.ID) })
	}
	slices.SortFunc(v.Routers, func(a, b agentapi.Router) int { return compareStrings(a.ID, b.ID) })
}

// hostSecurity adds the security groups the host's local ports use, every
// group their rules name as remote group (with its members' addresses) and
// the address groups they name.
func (s *Service) hostSecurity(v *agentapi.View) {
	used := map[string]bool{}
	for _, p := range v.Ports {
		if p.Local && p.PortSecurity {
			for _, g := range p.SecurityGroups {
				used[g] = true
			}
		}
	}
	groups := map[string]*agentapi.SecurityGroup{}
	remote, addrGroups := map[string]bool{}, map[string]bool{}
	add := func(id string) *agentapi.SecurityGroup {
		if g := groups[id]; g != nil {
			return g
		}
		sg, ok := s.SecurityGroup(id)
		if !ok {
			return nil
		}
		g := &agentapi.SecurityGroup{ID: id, Name: sg.Name, Stateful: sg.Stateful, Rules: []agentapi.SecurityGroupRule{}}
		groups[id] = g
		return g
	}
	for id := range used {
		g := add(id)
		if g == nil {
			continue
		}
		for _, r := range s.SecurityGroupRules(id) {
			out := agentapi.SecurityGroupRule{
				ID: r.ID, Direction: r.Direction, Ethertype: r.EtherType, Protocol: r.Protocol,
				RemoteIPPrefix: r.RemoteIPPrefix.Masked(), RemoteGroupID: r.RemoteGroupID, RemoteAddressGroupID: r.RemoteAddressGroupID,
			}
			out.PortRangeMin, out.PortRangeMax = r.PortRangeMin, r.PortRangeMax
			g.Rules = append(g.Rules, out)
			if r.RemoteGroupID != "" {
				remote[r.RemoteGroupID] = true
			}
			if r.RemoteAddressGroupID != "" {
				addrGroups[r.RemoteAddressGroupID] = true
			}
		}
	}
	for id := range remote {
		g := add(id)
		if g == nil {
			continue
		}
		g.Members = s.SecurityGroupAddresses(id)
	}
	for _, id := range slices.Sorted(maps.Keys(groups)) {
		v.SecurityGroups = append(v.SecurityGroups, *groups[id])
	}
	for _, id := range slices.Sorted(maps.Keys(addrGroups)) {
		if ag, ok := s.AddressGroup(id); ok {
			v.AddressGroups = append(v.AddressGroups, agentapi.AddressGroup{ID: id, Addresses: slices.Clone(ag.Addresses)})
		}
	}
}

// portSecurity fills in a local port's firewall fields.
func portSecurity(out *agentapi.Port, p *model.Port) {
	out.PortSecurity = p.PortSecurityEnabled
	out.SecurityGroups = slices.Clone(p.SecurityGroups)
	out.ProjectID = p.ProjectID
	for _, ap := range p.AllowedAddressPairs {
		out.AllowedAddressPairs = append(out.AllowedAddressPairs, agentapi.AddressPair{IPAddress: ap.IPAddress, MACAddress: ap.MACAddress})
	}
}

// hostInstances adds the instance metadata of every device with a port in
// the view, on hosts that serve metadata (they hold a router or a DHCP
// port): the metadata service answers those devices' VMs.
func (s *Service) hostInstances(v *agentapi.View) {
	serves := len(v.Routers) > 0
	for _, p := range v.Ports {
		serves = serves || p.Local && p.DeviceOwner == OwnerDHCP
	}
	if !serves {
		return
	}
	seen := map[string]bool{}
	for _, p := range v.Ports {
		if p.DeviceID == "" || seen[p.DeviceID] {
			continue
		}
		seen[p.DeviceID] = true
		m, ok := s.InstanceMetadata(p.DeviceID)
		if !ok {
			continue
		}
		v.Instances = append(v.Instances, agentapi.Instance{
			DeviceID: m.DeviceID, ProjectID: m.ProjectID, Name: m.Name, Hostname: m.Hostname,
			UserData: m.UserData, Meta: m.Meta, PublicKeys: m.PublicKeys, AvailabilityZone: m.AvailabilityZone,
		})
	}
	slices.SortFunc(v.Instances, func(a, b agentapi.Instance) int { return compareStrings(a.DeviceID, b.DeviceID) })
}
