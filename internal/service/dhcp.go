package service

import (
	"context"
	"crypto/sha1"
	"net"
	"slices"

	"github.com/google/uuid"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// dhcpNamespace derives the DHCP port ids and device ids of hosts.
var dhcpNamespace = uuid.MustParse("0d1c4b0e-3a4f-4c7e-8f3e-5b0c2d9e7a11")

// DHCPPortID is the id of the DHCP port of a network on a host:
// deterministic, so two schedulers racing create it once.
func DHCPPortID(networkID, host string) string {
	return uuid.NewSHA1(dhcpNamespace, []byte("port/"+networkID+"/"+host)).String()
}

// dhcpDeviceID is Neutron's device_id of a DHCP port: "dhcp<host uuid>-<network id>".
func dhcpDeviceID(networkID, host string) string {
	return "dhcp" + uuid.NewSHA1(dhcpNamespace, []byte("host/"+host)).String() + "-" + networkID
}

// adminContext is the identity the server's own controllers act as.
func adminContext(ctx context.Context) context.Context {
	return policy.With(ctx, &policy.Credentials{UserID: "vland-server", ProjectID: "", Roles: []string{policy.RoleAdmin, policy.RoleMember, policy.RoleReader}})
}

// dhcpState is what one scheduling pass works from.
type dhcpState struct {
	nets    []*model.Network
	subnets map[string]*model.Subnet
	ports   map[string][]*model.Port // network id → its DHCP ports
	agents  map[string]*model.Agent  // host → DHCP agent
	load    map[string]int           // host → DHCP ports it holds
}

func (s *Service) dhcpSnapshot() dhcpState {
	st := dhcpState{subnets: map[string]*model.Subnet{}, ports: map[string][]*model.Port{}, agents: map[string]*model.Agent{}, load: map[string]int{}}
	s.cache.Read(func(snap storeSnapshot) {
		snap.Each(Networks, func(_ string, it storeItem) bool {
			st.nets = append(st.nets, it.Value.(*model.Cached).Obj.(*model.Network))
			return true
		})
		snap.Each(Subnets, func(id string, it storeItem) bool {
			st.subnets[id] = it.Value.(*model.Cached).Obj.(*model.Subnet)
			return true
		})
		// The index knows each network's DHCP ports: no scan of every port
		// on each pass (a pass runs after every change).
		for _, n := range st.nets {
			for _, id := range s.idx.dhcpPorts(n.ID) {
				if it, ok := snap.Get(Ports, id); ok {
					p := it.Value.(*model.Cached).Obj.(*model.Port)
					st.ports[n.ID] = append(st.ports[n.ID], p)
					st.load[p.HostID]++
				}
			}
		}
		snap.Each(Agents, func(_ string, it storeItem) bool {
			if a := it.Value.(*model.Cached).Obj.(*model.Agent); a.AgentType == model.AgentTypeDHCP {
				st.agents[a.Host] = a
			}
			return true
		})
	})
	slices.SortFunc(st.nets, func(a, b *model.Network) int { return compareStrings(a.ID, b.ID) })
	return st
}

// dhcpSubnets returns a network's DHCP-enabled subnets.
func (st dhcpState) dhcpSubnets(n *model.Network) []*model.Subnet {
	var out []*model.Subnet
	for _, id := range n.Subnets {
		if sn, ok := st.subnets[id]; ok && sn.EnableDHCP {
			out = append(out, sn)
		}
	}
	return out
}

// ScheduleDHCP is one pass of the DHCP scheduler, as Neutron's with
// automatic failover: every network with a DHCP-enabled subnet gets a DHCP
// port on DHCPAgentsPerNetwork live network hosts (least loaded first); a
// port on a dead host is removed so the network moves; a port misses no
// DHCP-enabled subnet; networks without DHCP lose their DHCP ports.
func (s *Service) ScheduleDHCP(ctx context.Context) error {
	ctx = adminContext(ctx)
	st := s.dhcpSnapshot()
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, n := range st.nets {
		subnets := st.dhcpSubnets(n)
		var live []*model.Port
		for _, p := range st.ports[n.ID] {
			a, ok := st.agents[p.HostID]
			managed := p.ID == DHCPPortID(p.NetworkID, p.HostID)
			switch {
			case !managed:
				// A DHCP port someone made by hand: left alone, and it
				// counts if a live DHCP agent serves it.
				if ok && s.AgentAlive(a) {
					live = append(live, p)
				}
			case len(subnets) == 0 || !ok || !s.AgentAlive(a):
				// No DHCP wanted, or its host's agent is gone: free the
				// port so the network can move.
				keep(ignoreNotFound(s.DeletePort(ctx, p.ID)))
				st.load[p.HostID]--
			default:
				live = append(live, p)
				keep(s.ensureDHCPAddresses(ctx, p, subnets))
			}
		}
		if len(subnets) == 0 {
			continue
		}
		for _, host := range s.dhcpCandidates(st, live, n.AZHints) {
			if len(live) >= s.cfg.DHCPAgentsPerNetwork {
				break
			}
			p, err := s.createDHCPPort(ctx, n, host, subnets)
			if err != nil {
				keep(err)
				continue
			}
			live = append(live, p)
			st.load[host]++
		}
	}
	return firstErr
}

// dhcpCandidates are live, enabled DHCP agents' hosts not already serving,
// in the hinted availability zones if any, least loaded first.
func (s *Service) dhcpCandidates(st dhcpState, serving []*model.Port, zones []string) []string {
	var hosts []string
	for host, a := range st.agents {
		if !s.AgentAlive(a) || !a.AdminStateUp || slices.ContainsFunc(serving, func(p *model.Port) bool { return p.HostID == host }) {
			continue
		}
		if len(zones) > 0 && !slices.Contains(zones, a.AvailabilityZone) {
			continue
		}
		hosts = append(hosts, host)
	}
	slices.SortFunc(hosts, func(a, b string) int {
		if st.load[a] != st.load[b] {
			return st.load[a] - st.load[b]
		}
		return compareStrings(a, b)
	})
	return hosts
}

// createDHCPPort creates the network's DHCP port on host with an address
// in each DHCP-enabled subnet.
func (s *Service) createDHCPPort(ctx context.Context, n *model.Network, host string, subnets []*model.Subnet) (*model.Port, error) {
	reqs := make([]model.FixedIPRequest, len(subnets))
	for i, sn := range subnets {
		reqs[i] = model.FixedIPRequest{SubnetID: sn.ID}
	}
	id := DHCPPortID(n.ID, host)
	f := model.Fields{
		"id": id, "network_id": n.ID, "project_id": n.ProjectID,
		"device_owner": OwnerDHCP, "device_id": dhcpDeviceID(n.ID, host), "binding:host_id": host,
		"fixed_ips": reqs, "name": "",
		// A port recreated on the same host (its agent came back) keeps
		// its MAC, so guests' ARP entries for the DHCP server stay right.
		"mac_address": s.derivedMAC(id),
	}
	ports, err := s.createPorts(ctx, []model.Fields{f}, false)
	if e, ok := apierr.As(err); ok && e.Type == "MacAddressInUse" {
		delete(f, "mac_address")
		ports, err = s.createPorts(ctx, []model.Fields{f}, false)
	}
	if err != nil {
		if e, ok := apierr.As(err); ok && e.Type == "PortExists" {
			p, _, err := load[model.Port](ctx, s, Ports, DHCPPortID(n.ID, host))
			return p, err
		}
		return nil, err
	}
	s.log.Info("scheduled DHCP", "network", n.ID, "host", host, "port", ports[0].ID)
	return ports[0], nil
}

// ensureDHCPAddresses gives a DHCP port an address in every DHCP-enabled
// subnet it lacks one in (a subnet added after scheduling).
func (s *Service) ensureDHCPAddresses(ctx context.Context, p *model.Port, subnets []*model.Subnet) error {
	var missing bool
	reqs := make([]model.FixedIPRequest, 0, len(p.FixedIPs)+1)
	for _, f := range p.FixedIPs {
		reqs = append(reqs, model.FixedIPRequest{SubnetID: f.SubnetID, IPAddress: f.IPAddress})
	}
	for _, sn := range subnets {
		if !slices.ContainsFunc(p.FixedIPs, func(f model.FixedIP) bool { return f.SubnetID == sn.ID }) {
			reqs = append(reqs, model.FixedIPRequest{SubnetID: sn.ID})
			missing = true
		}
	}
	if !missing {
		return nil
	}
	_, err := s.UpdatePort(ctx, p.ID, model.Fields{"fixed_ips": reqs})
	return ignoreNotFound(err)
}

func ignoreNotFound(err error) error {
	if e, ok := apierr.As(err); ok && e.Status == 404 {
		return nil
	}
	return err
}

// DHCPNetworks lists the networks an agent's host serves DHCP for.
func (s *Service) DHCPNetworks(ctx context.Context, agentID string) ([]*model.Network, error) {
	a, err := s.dhcpAgent(ctx, agentID)
	if err != nil {
		return nil, err
	}
	st := s.dhcpSnapshot()
	var out []*model.Network
	for _, n := range st.nets {
		if slices.ContainsFunc(st.ports[n.ID], func(p *model.Port) bool { return p.HostID == a.Host }) {
			out = append(out, n)
		}
	}
	return out, nil
}

func (s *Service) dhcpAgent(ctx context.Context, agentID string) (*model.Agent, error) {
	a, err := s.GetAgent(ctx, agentID)
	if err != nil {
		return nil, err
	}
	if a.AgentType != model.AgentTypeDHCP {
		return nil, apierr.New(404, "AgentNotFoundByTypeHost", "Agent with agent_type=%s and host=%s could not be found", model.AgentTypeDHCP, a.Host)
	}
	return a, nil
}

// AddDHCPNetwork schedules a network to an agent by hand.
func (s *Service) AddDHCPNetwork(ctx context.Context, agentID, networkID string) error {
	a, err := s.dhcpAgent(ctx, agentID)
	if err != nil {
		return err
	}
	n, err := s.GetNetwork(ctx, networkID)
	if err != nil {
		return err
	}
	st := s.dhcpSnapshot()
	if slices.ContainsFunc(st.ports[n.ID], func(p *model.Port) bool { return p.HostID == a.Host }) {
		return apierr.Conflict("NetworkHostedByDHCPAgent", "The network %s has been already hosted by the DHCP Agent %s.", networkID, agentID)
	}
	_, err = s.createDHCPPort(adminContext(ctx), n, a.Host, st.dhcpSubnets(n))
	return err
}

// RemoveDHCPNetwork unschedules a network from an agent by hand.
func (s *Service) RemoveDHCPNetwork(ctx context.Context, agentID, networkID string) error {
	a, err := s.dhcpAgent(ctx, agentID)
	if err != nil {
		return err
	}
	st := s.dhcpSnapshot()
	for _, p := range st.ports[networkID] {
		if p.HostID == a.Host {
			return s.DeletePort(adminContext(ctx), p.ID)
		}
	}
	return apierr.New(404, "NetworkNotHostedByDhcpAgent", "The network %s is not hosted by the DHCP agent %s.", networkID, agentID)
}

// DHCPAgentsOf lists the DHCP agents serving a network.
func (s *Service) DHCPAgentsOf(ctx context.Context, networkID string) ([]*model.Agent, error) {
	if !creds(ctx).IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("get_dhcp-agents")
	}
	if _, err := s.GetNetwork(ctx, networkID); err != nil {
		return nil, err
	}
	st := s.dhcpSnapshot()
	var out []*model.Agent
	for _, p := range st.ports[networkID] {
		if a, ok := st.agents[p.HostID]; ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// derivedMAC is a MAC under the base derived from an id.
func (s *Service) derivedMAC(id string) string {
	h := sha1.Sum([]byte(id))
	return net.HardwareAddr{s.cfg.MACBase[0], s.cfg.MACBase[1], s.cfg.MACBase[2], h[0], h[1], h[2]}.String()
}
