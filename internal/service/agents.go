package service

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/segments"
)

// agentNamespace makes agent ids stable: the same host and type always get
// the same id, so a restarted agent finds its record again.
var agentNamespace = uuid.MustParse("6f0e4b8a-5d52-4c1e-9d37-0b6a1c6a9e10")

// AgentID is the id of host's agent record of a type.
func AgentID(host, agentType string) string {
	return uuid.NewSHA1(agentNamespace, []byte(host+"/"+agentType)).String()
}

// AgentAlive reports whether a is alive now.
func (s *Service) AgentAlive(a *model.Agent) bool {
	return a.Alive(time.Now(), s.cfg.AgentDownTime)
}

// GetAgent returns an agent record (admins only; others get 404).
func (s *Service) GetAgent(ctx context.Context, id string) (*model.Agent, error) {
	a, ok := cachedAs[*model.Agent](s, Agents, id)
	if !ok || !creds(ctx).IsAdmin() {
		return nil, apierr.New(404, "AgentNotFound", "Agent %s could not be found.", id)
	}
	return a, nil
}

// UpdateAgent changes an agent's admin_state_up or description.
func (s *Service) UpdateAgent(ctx context.Context, id string, f model.Fields) (*model.Agent, error) {
	if _, err := s.GetAgent(ctx, id); err != nil {
		return nil, err
	}
	var out *model.Agent
	err := retry(ctx, "update agent", func() error {
		a, rev, err := load[model.Agent](ctx, s, Agents, id)
		if err != nil {
			return err
		}
		if a == nil {
			return apierr.New(404, "AgentNotFound", "Agent %s could not be found.", id)
		}
		if v, ok := f["admin_state_up"]; ok {
			a.AdminStateUp = v.(bool)
		}
		if v, ok := f["description"]; ok {
			a.Description = v.(string)
		}
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(Agents, id), rev)}, []clientv3.Op{s.putJSON(Agents, id, a)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out = a
		return nil
	})
	return out, err
}

// DeleteAgent removes an agent record; a live agent registers again with
// its next heartbeat, as in Neutron.
func (s *Service) DeleteAgent(ctx context.Context, id string) error {
	if _, err := s.GetAgent(ctx, id); err != nil {
		return err
	}
	_, err := s.commit(ctx, nil, []clientv3.Op{clientv3.OpDelete(s.st.Keys.Resource(Agents, id))})
	return err
}

// ReportStatus records a host agent's heartbeat and the wiring of its
// ports: a port becomes ACTIVE when its tap is wired, DOWN when not.
func (s *Service) ReportStatus(ctx context.Context, host string, st agentapi.Status) error {
	// A report that only carries port changes refreshes the heartbeat only
	// when it is due, so wiring a tap never waits on an agent-record write.
	if len(st.Ports) == 0 || s.heartbeatDue(host) {
		if err := s.heartbeat(ctx, host, st.Agent); err != nil {
			return err
		}
	}
	var changed []*model.Port
	for id, status := range st.Ports {
		if status != model.StatusActive && status != model.StatusDown {
			return apierr.BadRequest("invalid status %q for port %s", status, id)
		}
		p, ok := cachedAs[*model.Port](s, Ports, id)
		if !ok || p.Status == status || p.HostID != host {
			continue
		}
		cp := *p
		cp.Status = status
		cp.Touch()
		changed = append(changed, &cp)
	}
	// Statuses are written in batches (a cold agent reports thousands at
	// once); a batch that loses a race falls back to one port at a time.
	for len(changed) > 0 {
		n := min(len(changed), 100)
		batch := changed[:n]
		changed = changed[n:]
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, p := range batch {
			it, _ := s.cache.Get(Ports, p.ID)
			cmps = append(cmps, unchanged(s.st.Keys.Resource(Ports, p.ID), it.ModRev))
			ops = append(ops, s.putJSON(Ports, p.ID, p))
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		if ok {
			continue
		}
		for _, p := range batch {
			if err := s.setPortStatus(ctx, host, p.ID, p.Status); err != nil {
				return err
			}
		}
	}
	return nil
}

// heartbeatDue reports whether host's L2 agent record is older than a
// third of the down time (or missing).
func (s *Service) heartbeatDue(host string) bool {
	a, ok := cachedAs[*model.Agent](s, Agents, AgentID(host, model.AgentTypeL2))
	return !ok || time.Since(a.HeartbeatAt) > s.cfg.AgentDownTime/3
}

// heartbeat records the agent records of a host: its L2 agent, and on
// network hosts its DHCP and L3 agents.
func (s *Service) heartbeat(ctx context.Context, host string, info agentapi.AgentInfo) error {
	if err := s.heartbeatOf(ctx, host, model.AgentTypeL2, info); err != nil {
		return err
	}
	if slices.Contains(info.Roles, "network") {
		if err := s.heartbeatOf(ctx, host, model.AgentTypeDHCP, info); err != nil {
			return err
		}
		return s.heartbeatOf(ctx, host, model.AgentTypeL3, info)
	}
	return nil
}

func (s *Service) heartbeatOf(ctx context.Context, host, agentType string, info agentapi.AgentInfo) error {
	now := time.Now().UTC()
	id := AgentID(host, agentType)
	a, ok := cachedAs[*model.Agent](s, Agents, id)
	rec := model.Agent{ID: id, AgentType: agentType, Host: host, Topic: "N/A", AdminStateUp: true, CreatedAt: now}
	switch agentType {
	case model.AgentTypeDHCP:
		rec.Topic = "dhcp_agent"
	case model.AgentTypeL3:
		rec.Topic = "l3_agent"
	}
	if ok {
		rec = *a
	}
	rec.Binary = info.Binary
	rec.AvailabilityZone = info.AvailabilityZone
	rec.Configurations = info.Configurations
	rec.LocalIP = info.LocalIP
	rec.Roles = info.Roles
	rec.InterfaceMappings = info.InterfaceMappings
	rec.VLANSupported = info.VLANSupported
	rec.HeartbeatAt = now
	if t, err := time.Parse(time.RFC3339, info.StartedAt); err == nil {
		rec.StartedAt = t.UTC()
	}
	_, err := s.commit(ctx, nil, []clientv3.Op{s.putJSON(Agents, id, &rec)})
	return err
}

func (s *Service) setPortStatus(ctx context.Context, host, id, status string) error {
	return retry(ctx, "set port status", func() error {
		p, rev, err := load[model.Port](ctx, s, Ports, id)
		if err != nil || p == nil || p.HostID != host || p.Status == status {
			return err
		}
		p.Status = status
		p.Touch()
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(Ports, id), rev)}, []clientv3.Op{s.putJSON(Ports, id, p)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		return nil
	})
}

// l2Agent returns host's live L2 agent, if any.
func (s *Service) l2Agent(host string) (*model.Agent, bool) {
	a, ok := cachedAs[*model.Agent](s, Agents, AgentID(host, model.AgentTypeL2))
	if !ok || !s.AgentAlive(a) {
		return nil, false
	}
	return a, true
}

// bind sets a port's binding from its host's agent, as ML2's mechanism
// driver does: the host must run a live agent that can serve a segment of
// the network.
func (s *Service) bind(port *model.Port, n *model.Network) {
	port.VIFDetails = map[string]any{}
	if port.HostID == "" {
		port.VIFType = model.VIFUnbound
		return
	}
	a, ok := s.l2Agent(port.HostID)
	if !ok || !a.AdminStateUp {
		port.VIFType = model.VIFBindingFailed
		return
	}
	for _, seg := range n.Segments {
		if canServe(a, seg) {
			port.VIFType = "bridge"
			port.VIFDetails = map[string]any{
				"connectivity": "l2", "port_filter": true,
				"bridge_name": "brq" + n.ID[:11], "tap_name": "tap" + port.ID[:11],
			}
			return
		}
	}
	port.VIFType = model.VIFBindingFailed
}

// canServe reports whether agent a can wire a port of segment seg.
func canServe(a *model.Agent, seg segments.Segment) bool {
	switch seg.NetworkType {
	case segments.Local:
		return true
	case segments.VXLAN:
		return a.LocalIP.IsValid()
	case segments.Flat:
		_, ok := a.InterfaceMappings[seg.Physnet()]
		return ok
	case segments.VLAN:
		_, ok := a.InterfaceMappings[seg.Physnet()]
		return ok && a.VLANSupported
	}
	return false
}

// HostView computes what host needs (docs/design/agent-api.md): its bound
// ports, their networks and subnets, and every bound port of those networks
// elsewhere with its host's VXLAN endpoint; for networks whose DHCP port is
// on this host, every port of the network, bound or not.
func (s *Service) HostView(host string) agentapi.View {
	v := agentapi.View{Host: host, Networks: []agentapi.Network{}, Subnets: []agentapi.Subnet{}, Ports: []agentapi.Port{}}
	s.cache.Read(func(snap storeSnapshot) {
		v.Revision = snap.Rev
		vteps := map[string]netip.Addr{}
		snap.Each(Agents, func(_ string, it storeItem) bool {
			a := it.Value.(*model.Cached).Obj.(*model.Agent)
			if a.AgentType == model.AgentTypeL2 && s.AgentAlive(a) {
				vteps[a.Host] = a.LocalIP
			}
			return true
		})
		nets, dhcpNets := map[string]bool{}, map[string]bool{}
		snap.Each(Ports, func(_ string, it storeItem) bool {
			p := it.Value.(*model.Cached).Obj.(*model.Port)
			if p.HostID == host {
				nets[p.NetworkID] = true
				if p.DeviceOwner == OwnerDHCP {
					dhcpNets[p.NetworkID] = true
				}
			}
			return true
		})
		for id := range nets {
			it, ok := snap.Get(Networks, id)
			if !ok {
				continue
			}
			n := it.Value.(*model.Cached).Obj.(*model.Network)
			v.Networks = append(v.Networks, hostNetwork(n))
			for _, sid := range n.Subnets {
				if sit, ok := snap.Get(Subnets, sid); ok {
					v.Subnets = append(v.Subnets, hostSubnet(sit.Value.(*model.Cached).Obj.(*model.Subnet)))
				}
			}
		}
		snap.Each(Ports, func(_ string, it storeItem) bool {
			p := it.Value.(*model.Cached).Obj.(*model.Port)
			if !nets[p.NetworkID] {
				return true
			}
			vtep, alive := vteps[p.HostID]
			bound := p.HostID == host || p.HostID != "" && alive
			if !bound && !dhcpNets[p.NetworkID] {
				return true
			}
			v.Ports = append(v.Ports, hostPort(p, host, vtep))
			return true
		})
		hostRouters(snap, host, &v)
	})
	s.hostSecurity(&v)
	s.hostInstances(&v)
	slices.SortFunc(v.Networks, func(a, b agentapi.Network) int { return compareStrings(a.ID, b.ID) })
	slices.SortFunc(v.Subnets, func(a, b agentapi.Subnet) int { return compareStrings(a.ID, b.ID) })
	slices.SortFunc(v.Ports, func(a, b agentapi.Port) int { return compareStrings(a.ID, b.ID) })
	return v
}

func hostSubnet(sn *model.Subnet) agentapi.Subnet {
	out := agentapi.Subnet{
		ID: sn.ID, NetworkID: sn.NetworkID, IPVersion: sn.IPVersion, CIDR: sn.CIDR, GatewayIP: sn.GatewayIP,
		EnableDHCP: sn.EnableDHCP, DNSNameservers: sn.DNSNameservers, IPv6AddressMode: sn.IPv6AddressMode, IPv6RAMode: sn.IPv6RAMode,
	}
	for _, r := range sn.HostRoutes {
		out.HostRoutes = append(out.HostRoutes, agentapi.HostRoute{Destination: r.Destination, NextHop: r.NextHop})
	}
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func hostNetwork(n *model.Network) agentapi.Network {
	out := agentapi.Network{ID: n.ID, ProjectID: n.ProjectID, MTU: n.MTU, AdminStateUp: n.AdminStateUp}
	if len(n.Segments) > 0 {
		seg := n.Segments[0]
		out.Type, out.PhysicalNetwork = seg.NetworkType, seg.Physnet()
		if seg.SegmentationID != nil {
			out.SegmentationID = *seg.SegmentationID
		}
	}
	return out
}

func hostPort(p *model.Port, host string, vtep netip.Addr) agentapi.Port {
	out := agentapi.Port{
		ID: p.ID, NetworkID: p.NetworkID, MACAddress: p.MACAddress, DeviceOwner: p.DeviceOwner,
		DeviceID: p.DeviceID, AdminStateUp: p.AdminStateUp, Host: p.HostID, VTEP: vtep, Local: p.HostID == host,
		DNSName:  p.DNSName,
		FixedIPs: make([]agentapi.FixedIP, len(p.FixedIPs)),
	}
	for i, f := range p.FixedIPs {
		out.FixedIPs[i] = agentapi.FixedIP{SubnetID: f.SubnetID, IPAddress: f.IPAddress}
	}
	for _, o := range p.ExtraDHCPOpts {
		out.ExtraDHCPOpts = append(out.ExtraDHCPOpts, agentapi.DHCPOpt{OptName: o.OptName, OptValue: o.OptValue, IPVersion: o.IPVersion})
	}
	out.ProjectID = p.ProjectID // the metadata service checks it against the instance's
	if out.Local {
		portSecurity(&out, p)
	}
	return out
}
