package service

import (
	"context"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
)

// The L3 scheduler (l3_agent_scheduler) places each router on one network
// host's L3 agent. The placement is the router's Placement field, so a
// router is on one host at a time by construction; each change is a
// compare-and-put of the router. RoutersOnHost and RouterHost read it.

// l3State is what one scheduling pass works from.
type l3State struct {
	routers []storeItem
	agents  map[string]*model.Agent // host → L3 agent
	load    map[string]int          // host → routers placed there
	fips    []storeItem
}

func (s *Service) l3Snapshot() l3State {
	st := l3State{agents: map[string]*model.Agent{}, load: s.idx.routerCount()}
	s.cache.Read(func(snap storeSnapshot) {
		snap.Each(Routers, func(_ string, it storeItem) bool {
			st.routers = append(st.routers, it)
			return true
		})
		snap.Each(Agents, func(_ string, it storeItem) bool {
			if a := it.Value.(*model.Cached).Obj.(*model.Agent); a.AgentType == model.AgentTypeL3 {
				st.agents[a.Host] = a
			}
			return true
		})
		snap.Each(FloatingIPs, func(_ string, it storeItem) bool {
			st.fips = append(st.fips, it)
			return true
		})
	})
	id := func(it storeItem) string { return it.Value.(*model.Cached).Obj.Std().ID }
	slices.SortFunc(st.routers, func(a, b storeItem) int { return compareStrings(id(a), id(b)) })
	slices.SortFunc(st.fips, func(a, b storeItem) int { return compareStrings(id(a), id(b)) })
	return st
}

// l3Candidate returns the live, enabled L3 agent's host with the fewest
// routers ("" when there is none).
func (s *Service) l3Candidate(st l3State) string {
	best := ""
	for host, a := range st.agents {
		if !s.AgentAlive(a) || !a.AdminStateUp {
			continue
		}
		if best == "" || st.load[host] < st.load[best] || st.load[host] == st.load[best] && host < best {
			best = host
		}
	}
	return best
}

// wantHost is where a router should be: where it is while its agent
// lives; elsewhere (or nowhere) when the agent died; on the least loaded
// live agent when unplaced, unless it is down or an admin unplaced it.
func (s *Service) wantHost(st l3State, r *model.Router) string {
	if h := r.Placement.Host; h != "" {
		if a, ok := st.agents[h]; ok && s.AgentAlive(a) {
			return h
		}
		if !r.AdminStateUp {
			return ""
		}
		return s.l3Candidate(st)
	}
	if r.Placement.Manual || !r.AdminStateUp {
		return ""
	}
	return s.l3Candidate(st)
}

// ScheduleL3 is one pass of the L3 scheduler: routers go to live network
// hosts (least routers first) and leave dead ones, their ports are bound
// to their host, and floating IPs' statuses follow their router's.
func (s *Service) ScheduleL3(ctx context.Context) error {
	ctx = adminContext(ctx)
	st := s.l3Snapshot()
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for _, it := range st.routers {
		r := it.Value.(*model.Cached).Obj.(*model.Router)
		host := s.wantHost(st, r)
		if host != r.Placement.Host {
			cp := *r
			cp.Placement = model.L3Placement{Host: host}
			ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(Routers, r.ID), it.ModRev)}, []clientv3.Op{s.putJSON(Routers, r.ID, &cp)})
			keep(err)
			if !ok {
				continue // changed meanwhile: the next pass sees it
			}
			if r.Placement.Host != "" {
				st.load[r.Placement.Host]--
			}
			if host != "" {
				st.load[host]++
			}
			s.log.Info("scheduled router", "router", r.ID, "host", host, "from", r.Placement.Host)
		}
		keep(s.bindRouterPorts(ctx, r, host))
	}
	for _, it := range st.fips {
		fip := it.Value.(*model.Cached).Obj.(*model.FloatingIP)
		if want := s.fipStatus(fip); want != fip.Status {
			cp := *fip
			cp.Status = want
			cp.Touch()
			_, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(FloatingIPs, fip.ID), it.ModRev)}, []clientv3.Op{s.putJSON(FloatingIPs, fip.ID, &cp)})
			keep(err)
		}
	}
	return firstErr
}

// bindRouterPorts binds a router's ports to its host, as Neutron's L3 RPC
// sets binding:host_id of a legacy router's ports to its agent's host: the
// ports' networks then reach that host, and other hosts learn where the
// router's addresses are.
func (s *Service) bindRouterPorts(ctx context.Context, r *model.Router, host string) error {
	ids := slices.Clone(r.Interfaces)
	if r.GatewayPortID != "" {
		ids = append(ids, r.GatewayPortID)
	}
	var firstErr error
	for _, id := range ids {
		p, ok := cachedAs[*model.Port](s, Ports, id)
		if !ok || p.HostID == host {
			continue
		}
		if _, err := s.UpdatePort(ctx, id, model.Fields{"binding:host_id": host}); ignoreNotFound(err) != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// l3Agent returns an L3 agent for the agent scheduler API, refusing
// agents of other types or disabled or dead ones when usable is set.
func (s *Service) l3Agent(ctx context.Context, agentID string, usable bool) (*model.Agent, error) {
	a, err := s.GetAgent(ctx, agentID)
	if err != nil {
		return nil, err
	}
	if usable && (a.AgentType != model.AgentTypeL3 || !a.AdminStateUp || !s.AgentAlive(a)) {
		return nil, apierr.New(404, "InvalidL3Agent", "Agent %s is not a L3 Agent or has been disabled", agentID)
	}
	return a, nil
}

// L3AgentsOf lists the L3 agents hosting a router (admins only).
func (s *Service) L3AgentsOf(ctx context.Context, routerID string) ([]*model.Agent, error) {
	if !creds(ctx).IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("get_l3-agents")
	}
	r, err := s.GetRouter(ctx, routerID)
	if err != nil {
		return nil, err
	}
	out := []*model.Agent{}
	if r.Placement.Host != "" {
		if a, ok := cachedAs[*model.Agent](s, Agents, AgentID(r.Placement.Host, model.AgentTypeL3)); ok {
			out = append(out, a)
		}
	}
	return out, nil
}

// L3Routers lists the routers an L3 agent hosts (admins only).
func (s *Service) L3Routers(ctx context.Context, agentID string) ([]*model.Router, error) {
	if !creds(ctx).IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("get_l3-routers")
	}
	a, err := s.l3Agent(ctx, agentID, false)
	if err != nil {
		return nil, err
	}
	out := []*model.Router{}
	if a.AgentType != model.AgentTypeL3 {
		return out, nil
	}
	for _, id := range s.RoutersOnHost(a.Host) {
		if r, ok := cachedAs[*model.Router](s, Routers, id); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// AddL3Router places a router on an L3 agent by hand (admins only): an
// unplaced router, or one already there; a router on another agent is
// refused (RouterHostedByL3Agent), as for Neutron's legacy routers.
func (s *Service) AddL3Router(ctx context.Context, agentID, routerID string) error {
	if !creds(ctx).IsAdmin() {
		return apierr.PolicyNotAuthorized("create_l3-router")
	}
	a, err := s.l3Agent(ctx, agentID, true)
	if err != nil {
		return err
	}
	return retry(ctx, "add router to L3 agent", func() error {
		r, rev, err := load[model.Router](ctx, s, Routers, routerID)
		if err != nil {
			return err
		}
		if r == nil {
			return routerNotFound(routerID)
		}
		switch r.Placement.Host {
		case a.Host:
			return nil
		case "":
		default:
			return apierr.Conflict("RouterHostedByL3Agent", "The router %s has been already hosted by the L3 Agent %s.", routerID, AgentID(r.Placement.Host, model.AgentTypeL3))
		}
		r.Placement = model.L3Placement{Host: a.Host}
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(Routers, routerID), rev)}, []clientv3.Op{s.putJSON(Routers, routerID, r)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		return nil
	})
}

// RemoveL3Router takes a router off an L3 agent by hand (admins only); it
// stays unplaced until an admin adds it to an agent again.
func (s *Service) RemoveL3Router(ctx context.Context, agentID, routerID string) error {
	if !creds(ctx).IsAdmin() {
		return apierr.PolicyNotAuthorized("delete_l3-router")
	}
	a, err := s.l3Agent(ctx, agentID, false)
	if err != nil {
		return err
	}
	return retry(ctx, "remove router from L3 agent", func() error {
		r, rev, err := load[model.Router](ctx, s, Routers, routerID)
		if err != nil {
			return err
		}
		if r == nil {
			return routerNotFound(routerID)
		}
		if a.AgentType != model.AgentTypeL3 || r.Placement.Host != a.Host {
			return apierr.Conflict("RouterNotHostedByL3Agent", "The router %s is not hosted by the L3 Agent %s.", routerID, agentID)
		}
		r.Placement = model.L3Placement{Manual: true}
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(Routers, routerID), rev)}, []clientv3.Op{s.putJSON(Routers, routerID, r)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		return nil
	})
}

// L3AgentConfigurations adds the number of routers an L3 agent hosts to
// its reported configurations, as Neutron's L3 agents report "routers".
func (s *Service) L3AgentConfigurations(a *model.Agent) map[string]any {
	out := map[string]any{}
	for k, v := range a.Configurations {
		out[k] = v
	}
	if a.AgentType == model.AgentTypeL3 {
		out["routers"] = len(s.RoutersOnHost(a.Host))
	}
	return out
}
