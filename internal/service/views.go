package service

import (
	"context"
	"maps"
	"slices"

	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// Visible returns the cached objects of kind the caller may see.
func (s *Service) Visible(ctx context.Context, kind string) []*model.Cached {
	c := creds(ctx)
	items := s.cache.List(kind)
	out := make([]*model.Cached, 0, len(items))
	nets := map[string]*model.Network{}
	network := func(id string) *model.Network {
		n, ok := nets[id]
		if !ok {
			n, _ = cachedAs[*model.Network](s, Networks, id)
			nets[id] = n
		}
		return n
	}
	for _, it := range items {
		cv := it.Value.(*model.Cached)
		var ok bool
		switch o := cv.Obj.(type) {
		case *model.Network:
			ok = policy.CanSeeNetwork(c, o, s.grants(c, o.ID))
		case *model.Subnet:
			ok = policy.CanSeeSubnet(c, o, network(o.NetworkID), s.grants(c, o.NetworkID))
		case *model.Port:
			ok = policy.CanSeePort(c, o, network(o.NetworkID))
		case *model.Agent:
			ok = c.IsAdmin()
		case *model.SubnetPool:
			ok = s.canSeePool(c, o)
		case *model.AddressScope:
			ok = s.canSeeScope(c, o)
		case *model.SecurityGroupRule:
			ok = s.canSeeRule(c, o)
		default:
			ok = c.IsAdmin() || c.Owns(cv.Obj.Std().ProjectID)
		}
		if ok {
			out = append(out, cv)
		}
	}
	return out
}

// CachedView returns the rendered view of an object the caller may see, as
// cached; found is false when the caller may not see it.
func (s *Service) CachedView(ctx context.Context, kind, id string) (map[string]any, bool) {
	var err error
	switch kind {
	case Networks:
		_, err = s.GetNetwork(ctx, id)
	case Subnets:
		_, err = s.GetSubnet(ctx, id)
	case Ports:
		_, err = s.GetPort(ctx, id)
	case Agents:
		_, err = s.GetAgent(ctx, id)
	case RBACPolicies:
		_, err = s.GetRBAC(ctx, id)
	case SubnetPools:
		_, err = s.GetSubnetPool(ctx, id)
	case AddressScopes:
		_, err = s.GetAddressScope(ctx, id)
	case SecurityGroups:
		_, err = s.GetSecurityGroup(ctx, id)
	case SecurityGroupRules:
		_, err = s.GetSecurityGroupRule(ctx, id)
	case AddressGroups:
		_, err = s.GetAddressGroup(ctx, id)
	case Routers:
		_, err = s.GetRouter(ctx, id)
	case FloatingIPs:
		_, err = s.GetFloatingIP(ctx, id)
	case InstanceMetadataKind:
		_, err = s.GetInstanceMetadata(ctx, id)
	}
	if err != nil {
		return nil, false
	}
	it, ok := s.cache.Get(kind, id)
	if !ok {
		return nil, false
	}
	return it.Value.(*model.Cached).View, true
}

// NetworkViewFor adapts a network's view to the moment and the caller: a
// network shared with the caller's project through RBAC shows as shared to
// it, as in Neutron, and availability_zones are the zones of the DHCP
// agents serving it now.
func (s *Service) NetworkViewFor(ctx context.Context, v map[string]any) map[string]any {
	id, _ := v["id"].(string)
	zones := s.networkZones(id)
	shared := v["shared"] != true && s.grants(creds(ctx), id).Shared
	if len(zones) == 0 && !shared {
		return v
	}
	out := maps.Clone(v)
	if shared {
		out["shared"] = true
	}
	if len(zones) > 0 {
		out["availability_zones"] = zones
	}
	return out
}

// networkZones returns the sorted zones of the DHCP agents serving a network.
func (s *Service) networkZones(netID string) []string {
	var zones []string
	for _, host := range s.idx.dhcpHosts(netID) {
		if a, ok := cachedAs[*model.Agent](s, Agents, AgentID(host, model.AgentTypeDHCP)); ok && a.AvailabilityZone != "" && !slices.Contains(zones, a.AvailabilityZone) {
			zones = append(zones, a.AvailabilityZone)
		}
	}
	slices.Sort(zones)
	return zones
}

// AvailabilityZones lists the zones of the DHCP agents as network zones,
// available while one of their agents is alive (availability_zone).
func (s *Service) AvailabilityZones(ctx context.Context) []map[string]any {
	state := map[string]bool{}
	for _, it := range s.cache.List(Agents) {
		a := it.Value.(*model.Cached).Obj.(*model.Agent)
		if a.AgentType != model.AgentTypeDHCP || a.AvailabilityZone == "" {
			continue
		}
		state[a.AvailabilityZone] = state[a.AvailabilityZone] || s.AgentAlive(a) && a.AdminStateUp
	}
	out := []map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(state)) {
		st := "unavailable"
		if state[name] {
			st = "available"
		}
		out = append(out, map[string]any{"name": name, "resource": "network", "state": st})
	}
	return out
}
