package service

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// L3 resource kinds, as they appear in URLs and store keys.
const (
	Routers         = "routers"
	FloatingIPs     = "floatingips"
	PortForwardings = "port_forwardings"
)

// OwnerFloatingIP is the device owner of a floating IP's port.
const OwnerFloatingIP = model.OwnerFloatingIP

// maxRoutes is Neutron's default max_routes (quota_router_route).
const maxRoutes = 30

func init() {
	RegisterQuota("router", Routers, 10)
	RegisterQuota("floatingip", FloatingIPs, 50)
}

func routerNotFound(id string) error {
	return apierr.New(404, "RouterNotFound", "Router %s could not be found", id)
}

// badRequest is neutron-lib's BadRequest: "Bad <resource> request: <msg>."
func badRequest(resource, format string, args ...any) error {
	return apierr.New(400, "BadRequest", "Bad %s request: %s.", resource, fmt.Sprintf(format, args...))
}

func canSeeOwned(c *policy.Credentials, project string) bool { return c.IsAdmin() || c.Owns(project) }

// GetRouter returns a router the caller may see.
func (s *Service) GetRouter(ctx context.Context, id string) (*model.Router, error) {
	r, ok := cachedAs[*model.Router](s, Routers, id)
	if !ok || !canSeeOwned(creds(ctx), r.ProjectID) {
		return nil, routerNotFound(id)
	}
	return r, nil
}

// loadRouter reads a router for a change by the caller: 404 when it may
// not see it, 403 when it may see but not change it.
func (s *Service) loadRouter(ctx context.Context, id, action string) (*model.Router, int64, error) {
	c := creds(ctx)
	r, rev, err := load[model.Router](ctx, s, Routers, id)
	if err != nil {
		return nil, 0, err
	}
	if r == nil || !canSeeOwned(c, r.ProjectID) {
		return nil, 0, routerNotFound(id)
	}
	if !policy.CanChange(c, r.ProjectID) {
		return nil, 0, apierr.PolicyNotAuthorized(action)
	}
	return r, rev, nil
}

// checkGatewayPolicy applies Neutron's default policy on the gateway's
// sub-attributes: only admins choose enable_snat and external_fixed_ips.
func checkGatewayPolicy(c *policy.Credentials, action string, g model.GatewayRequest) error {
	if c.IsAdmin() {
		return nil
	}
	if g.EnableSNAT != nil {
		return apierr.PolicyNotAuthorized(action + ":external_gateway_info:enable_snat")
	}
	if g.HasFixedIPs {
		return apierr.PolicyNotAuthorized(action + ":external_gateway_info:external_fixed_ips")
	}
	return nil
}

// CreateRouters creates one or more routers (with their gateway ports)
// atomically.
func (s *Service) CreateRouters(ctx context.Context, items []model.Fields) ([]*model.Router, error) {
	c := creds(ctx)
	var out []*model.Router
	err := retry(ctx, "create routers", func() error {
		out = out[:0]
		p := newPortPlan()
		for _, f := range items {
			project, err := checkCreate(c, model.RouterSpec, f)
			if err != nil {
				return err
			}
			now := model.Now()
			r := &model.Router{
				Standard:     model.Standard{ID: uuid.NewString(), ProjectID: project, CreatedAt: now, UpdatedAt: now, Tags: []string{}},
				AdminStateUp: true,
				Status:       model.StatusActive,
				Routes:       []model.HostRoute{},
			}
			r.Apply(f)
			if g, ok := f["external_gateway_info"].(model.GatewayRequest); ok && g.NetworkID != "" {
				if err := checkGatewayPolicy(c, "create_router", g); err != nil {
					return err
				}
				if err := s.planGateway(ctx, p, r, g); err != nil {
					return err
				}
			}
			p.cmps = append(p.cmps, notExists(s.st.Keys.Resource(Routers, r.ID)))
			out = append(out, r)
		}
		qc, qo, err := s.quotaClaim(ctx, Routers, stds(out))
		if err != nil {
			return err
		}
		p.cmps, p.ops = append(p.cmps, qc...), append(p.ops, qo...)
		for _, r := range out {
			p.ops = append(p.ops, s.indexOp(Routers, &r.Standard), s.putJSON(Routers, r.ID, r))
		}
		if err := s.commitPlan(ctx, p); err != nil {
			return err
		}
		return nil
	})
	return out, err
}

// planGateway adds a gateway port on g's external network to the plan and
// records it in r, as Neutron's _create_gw_port: the port has no project,
// device_owner network:router_gateway and the router as device.
func (s *Service) planGateway(ctx context.Context, p *portPlan, r *model.Router, g model.GatewayRequest) error {
	c := creds(ctx)
	v, err := s.loadNetView(ctx, g.NetworkID, p)
	if err != nil {
		return err
	}
	if !policy.CanSeeNetwork(c, v.net, s.grants(c, v.net.ID)) {
		return apierr.NotFound("Network", "Network", g.NetworkID)
	}
	if !v.net.External {
		return badRequest("router", "Network %s is not an external network", g.NetworkID)
	}
	for _, ip := range g.FixedIPs {
		for _, sn := range v.subnets {
			if ip.IPAddress.IsValid() && sn.GatewayIP == ip.IPAddress {
				return badRequest("router", "External IP %s is the same as the gateway IP", ip.IPAddress)
			}
		}
	}
	f := model.Fields{
		"network_id": v.net.ID, "device_owner": OwnerRouterGateway, "device_id": r.ID, "name": "", "admin_state_up": true,
	}
	if len(g.FixedIPs) > 0 {
		f["fixed_ips"] = g.FixedIPs
	}
	port, err := s.planPort(ctx, p, v, f, "")
	if err != nil {
		return err
	}
	p.ops = append(p.ops, s.putJSON(Ports, port.ID, port))
	r.GatewayNetworkID, r.GatewayPortID, r.GatewayIPs = v.net.ID, port.ID, port.FixedIPs
	// ext-gw-mode: enable_snat_by_default unless given.
	r.EnableSNAT = g.EnableSNAT == nil || *g.EnableSNAT
	return nil
}

// planGatewayRemoval deletes r's gateway port in the plan, refusing while
// floating IPs use the router (RouterExternalGatewayInUseByFloatingIp).
func (s *Service) planGatewayRemoval(ctx context.Context, p *portPlan, r *model.Router) error {
	if r.GatewayNetworkID == "" {
		return nil
	}
	n, err := s.routerFIPCount(ctx, p, r.ID)
	if err != nil {
		return err
	}
	if n > 0 {
		return apierr.Conflict("RouterExternalGatewayInUseByFloatingIp", "Gateway cannot be updated for router %s, since a gateway to external network %s is required by one or more floating IPs.", r.ID, r.GatewayNetworkID)
	}
	if r.GatewayPortID != "" {
		port, rev, err := load[model.Port](ctx, s, Ports, r.GatewayPortID)
		if err != nil {
			return err
		}
		if port != nil {
			p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Ports, port.ID), rev))
			p.ops = append(p.ops, s.portDeleteOps(port)...)
		}
	}
	r.GatewayNetworkID, r.GatewayPortID, r.GatewayIPs, r.EnableSNAT = "", "", nil, false
	return nil
}

// routerFIPCount counts the floating IPs using a router and makes the plan
// fail if one is added before it commits.
func (s *Service) routerFIPCount(ctx context.Context, p *portPlan, routerID string) (int64, error) {
	prefix := s.st.Keys.RouterFIPPrefix(routerID)
	resp, err := s.st.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, storeErr(err)
	}
	p.cmps = append(p.cmps, noneNewUnder(prefix, resp.Header.Revision))
	return resp.Count, nil
}

// planGatewayChange applies an external_gateway_info update, as Neutron's
// _update_router_gw_info: same network and new addresses readdress the
// port; another network (or none) replaces it.
func (s *Service) planGatewayChange(ctx context.Context, p *portPlan, r *model.Router, g model.GatewayRequest) error {
	switch {
	case g.NetworkID == "":
		return s.planGatewayRemoval(ctx, p, r)
	case g.NetworkID == r.GatewayNetworkID:
		r.EnableSNAT = g.EnableSNAT == nil || *g.EnableSNAT
		if !gatewayIPsChange(r.GatewayIPs, g.FixedIPs) {
			return nil
		}
		return s.planGatewayReaddress(ctx, p, r, g)
	default:
		if err := s.planGatewayRemoval(ctx, p, r); err != nil {
			return err
		}
		return s.planGateway(ctx, p, r, g)
	}
}

// gatewayIPsChange is Neutron's _check_for_external_ip_change.
func gatewayIPsChange(have []model.FixedIP, want []model.FixedIPRequest) bool {
	if len(want) == 0 {
		return false
	}
	subnets, ips := map[string]bool{}, map[netip.Addr]bool{}
	for _, h := range have {
		subnets[h.SubnetID], ips[h.IPAddress] = true, true
	}
	wantSubnets, wantIPs := map[string]bool{}, map[netip.Addr]bool{}
	for _, w := range want {
		if w.SubnetID != "" {
			wantSubnets[w.SubnetID] = true
		}
		if w.IPAddress.IsValid() {
			wantIPs[w.IPAddress] = true
		}
	}
	sameKeys := func(a, b map[string]bool) bool {
		if len(a) != len(b) {
			return false
		}
		for k := range a {
			if !b[k] {
				return false
			}
		}
		return true
	}
	if !sameKeys(subnets, wantSubnets) {
		return true
	}
	if len(ips) != len(wantIPs) {
		return true
	}
	for a := range ips {
		if !wantIPs[a] {
			return true
		}
	}
	return false
}

// planGatewayReaddress changes the gateway port's fixed IPs.
func (s *Service) planGatewayReaddress(ctx context.Context, p *portPlan, r *model.Router, g model.GatewayRequest) error {
	port, rev, err := load[model.Port](ctx, s, Ports, r.GatewayPortID)
	if err != nil {
		return err
	}
	if port == nil {
		return errConflict
	}
	v, err := s.loadNetView(ctx, port.NetworkID, p)
	if err != nil {
		return err
	}
	for _, ip := range g.FixedIPs {
		for _, sn := range v.subnets {
			if ip.IPAddress.IsValid() && sn.GatewayIP == ip.IPAddress {
				return badRequest("router", "External IP %s is the same as the gateway IP", ip.IPAddress)
			}
		}
	}
	ips, err := s.planFixedIPs(ctx, p, v, port, g.FixedIPs, true, port.FixedIPs)
	if err != nil {
		return err
	}
	for _, h := range port.FixedIPs {
		if !slices.Contains(ips, h) {
			p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.IPAlloc(h.SubnetID, h.IPAddress.String())))
		}
	}
	port.FixedIPs = ips
	port.Touch()
	p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Ports, port.ID), rev))
	p.ops = append(p.ops, s.putJSON(Ports, port.ID, port))
	r.GatewayIPs = ips
	return nil
}

// UpdateRouter changes a router: name, description, admin state, gateway
// and extra routes.
func (s *Service) UpdateRouter(ctx context.Context, id string, f model.Fields) (*model.Router, error) {
	c := creds(ctx)
	var out *model.Router
	err := retry(ctx, "update router", func() error {
		r, rev, err := s.loadRouter(ctx, id, "update_router")
		if err != nil {
			return err
		}
		if err := checkIfMatch(ctx, r.RevisionNumber); err != nil {
			return err
		}
		p := newPortPlan()
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Routers, id), rev))
		r.Apply(f)
		gwChanged := false
		if g, ok := f["external_gateway_info"].(model.GatewayRequest); ok {
			if err := checkGatewayPolicy(c, "update_router", g); err != nil {
				return err
			}
			oldNet := r.GatewayNetworkID
			if err := s.planGatewayChange(ctx, p, r, g); err != nil {
				return err
			}
			gwChanged = oldNet != r.GatewayNetworkID
		}
		if routes, ok := f["routes"].([]model.HostRoute); ok {
			if err := s.checkRoutes(ctx, r, routes); err != nil {
				return err
			}
			r.Routes = routes
		} else if gwChanged && len(r.Routes) > 0 {
			// Neutron's _validate_gw_info: routes must stay reachable.
			if err := s.checkRoutes(ctx, r, r.Routes); err != nil {
				return err
			}
		}
		r.Touch()
		p.ops = append(p.ops, s.putJSON(Routers, id, r))
		if err := s.commitPlan(ctx, p); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// DeleteRouter deletes a router without interfaces, and its gateway port.
func (s *Service) DeleteRouter(ctx context.Context, id string) error {
	return retry(ctx, "delete router", func() error {
		r, rev, err := s.loadRouter(ctx, id, "delete_router")
		if err != nil {
			return err
		}
		if err := checkIfMatch(ctx, r.RevisionNumber); err != nil {
			return err
		}
		if len(r.Interfaces) > 0 {
			return apierr.Conflict("RouterInUse", "Router %s has ports still attached: %s", id, strings.Join(r.Interfaces, ", "))
		}
		p := newPortPlan()
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Routers, id), rev))
		if err := s.planGatewayRemoval(ctx, p, r); err != nil {
			return err
		}
		p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.Resource(Routers, id)))
		p.ops = append(p.ops, s.releaseOps(Routers, &r.Standard)...)
		ok, err := s.commit(ctx, p.cmps, p.ops)
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		return nil
	})
}

// routerPorts returns a router's ports: its interfaces and its gateway.
func (s *Service) routerPorts(ctx context.Context, r *model.Router) ([]*model.Port, error) {
	ids := slices.Clone(r.Interfaces)
	if r.GatewayPortID != "" {
		ids = append(ids, r.GatewayPortID)
	}
	var out []*model.Port
	for _, id := range ids {
		p, err := s.portNow(ctx, id)
		if err != nil {
			return nil, err
		}
		if p != nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// portNow reads a port from the cache, or from the store for one another
// server just wrote.
func (s *Service) portNow(ctx context.Context, id string) (*model.Port, error) {
	if p, ok := cachedAs[*model.Port](s, Ports, id); ok {
		return p, nil
	}
	p, _, err := load[model.Port](ctx, s, Ports, id)
	return p, err
}

// portAt reads a port with its mod revision, from the cache or the store,
// for a plan that must fail if the port changes before it commits.
func (s *Service) portAt(ctx context.Context, id string) (*model.Port, int64, error) {
	if it, ok := s.cache.Get(Ports, id); ok {
		return it.Value.(*model.Cached).Obj.(*model.Port), it.ModRev, nil
	}
	return load[model.Port](ctx, s, Ports, id)
}

// subnetNow reads a subnet from the cache, or from the store.
func (s *Service) subnetNow(ctx context.Context, id string) (*model.Subnet, error) {
	if sn, ok := cachedAs[*model.Subnet](s, Subnets, id); ok {
		return sn, nil
	}
	sn, _, err := load[model.Subnet](ctx, s, Subnets, id)
	return sn, err
}

// checkRoutes validates a router's extra routes as Neutron's extraroute:
// at most maxRoutes, each next hop on a subnet of the router and not one
// of its own addresses.
func (s *Service) checkRoutes(ctx context.Context, r *model.Router, routes []model.HostRoute) error {
	if len(routes) > maxRoutes {
		return apierr.Conflict("OverQuota", "Quota exceeded for resources: ['router_route'].")
	}
	ports, err := s.routerPorts(ctx, r)
	if err != nil {
		return err
	}
	var cidrs []netip.Prefix
	var ips []netip.Addr
	for _, port := range ports {
		for _, f := range port.FixedIPs {
			sn, err := s.subnetNow(ctx, f.SubnetID)
			if err != nil {
				return err
			}
			if sn != nil {
				cidrs = append(cidrs, sn.CIDR)
			}
			ips = append(ips, f.IPAddress)
		}
	}
	for _, rt := range routes {
		if !slices.ContainsFunc(cidrs, func(c netip.Prefix) bool { return c.Contains(rt.NextHop) }) {
			return invalidRoutes(routes, "the nexthop is not connected with router")
		}
		if slices.Contains(ips, rt.NextHop) {
			return invalidRoutes(routes, "the nexthop is used by router")
		}
	}
	return nil
}

// invalidRoutes is extraroute's InvalidRoutes, quoting the routes as
// Neutron's Python does.
func invalidRoutes(routes []model.HostRoute, why string) error {
	parts := make([]string, len(routes))
	for i, rt := range routes {
		parts[i] = fmt.Sprintf("{'destination': '%s', 'nexthop': '%s'}", rt.Destination, rt.NextHop)
	}
	return apierr.New(400, "InvalidRoutes", "Invalid format for routes: [%s], %s", strings.Join(parts, ", "), why)
}

// ChangeExtraRoutes adds or removes extra routes in one step
// (extraroute-atomic): exact duplicates merge, missing ones are ignored.
func (s *Service) ChangeExtraRoutes(ctx context.Context, id string, routes []model.HostRoute, add bool) (*model.Router, error) {
	action := "remove_extraroutes"
	if add {
		action = "add_extraroutes"
	}
	var out *model.Router
	err := retry(ctx, action, func() error {
		r, rev, err := s.loadRouter(ctx, id, action)
		if err != nil {
			return err
		}
		next := slices.Clone(r.Routes)
		for _, rt := range routes {
			i := slices.Index(next, rt)
			switch {
			case add && i < 0:
				next = append(next, rt)
			case !add && i >= 0:
				next = slices.Delete(next, i, i+1)
			}
		}
		if err := s.checkRoutes(ctx, r, next); err != nil {
			return err
		}
		if next == nil {
			next = []model.HostRoute{}
		}
		r.Routes = next
		r.Touch()
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(Routers, id), rev)}, []clientv3.Op{s.putJSON(Routers, id, r)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out = r
		return nil
	})
	return out, err
}

// RoutersOnHost returns the ids of the routers the L3 scheduler placed on
// host, sorted: what host's agent must build (qrouter- namespaces).
func (s *Service) RoutersOnHost(host string) []string { return s.idx.routersOn(host) }

// RouterHost returns the host a router is placed on ("" when unhosted).
func (s *Service) RouterHost(routerID string) string {
	if r, ok := cachedAs[*model.Router](s, Routers, routerID); ok {
		return r.Placement.Host
	}
	return ""
}

// l3Index is the part of the service index the L3 resources need.
type l3Index struct {
	hosts     map[string]map[string]bool   // host → routers placed there
	subnetRPs map[string]map[string]string // subnet → router interface port → router
	pfsByFIP  map[string]map[string]bool   // floating IP → its port forwardings
	pfsByPort map[string]map[string]bool   // internal port → port forwardings to it
}

func newL3Index() l3Index {
	return l3Index{hosts: map[string]map[string]bool{}, subnetRPs: map[string]map[string]string{},
		pfsByFIP: map[string]map[string]bool{}, pfsByPort: map[string]map[string]bool{}}
}

// l3SetIn adds or removes v in the set m[k].
func l3SetIn(m map[string]map[string]bool, k, v string, add bool) {
	if add {
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][v] = true
		return
	}
	delete(m[k], v)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}

// apply records one object's change; it runs under the index's lock.
func (x l3Index) apply(id string, obj model.Object, add bool) {
	switch o := obj.(type) {
	case *model.Router:
		if o.Placement.Host != "" {
			l3SetIn(x.hosts, o.Placement.Host, id, add)
		}
	case *model.Port:
		if o.DeviceOwner != OwnerRouterInterface {
			return
		}
		for _, f := range o.FixedIPs {
			m := x.subnetRPs[f.SubnetID]
			if add {
				if m == nil {
					m = map[string]string{}
					x.subnetRPs[f.SubnetID] = m
				}
				m[id] = o.DeviceID
			} else {
				delete(m, id)
				if len(m) == 0 {
					delete(x.subnetRPs, f.SubnetID)
				}
			}
		}
	case *model.PortForwarding:
		l3SetIn(x.pfsByFIP, o.FloatingIPID, id, add)
		l3SetIn(x.pfsByPort, o.InternalPortID, id, add)
	}
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (ix *index) routersOn(host string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return sortedSet(ix.l3.hosts[host])
}

// routerCount returns how many routers each host holds.
func (ix *index) routerCount() map[string]int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make(map[string]int, len(ix.l3.hosts))
	for h, rs := range ix.l3.hosts {
		out[h] = len(rs)
	}
	return out
}

// routerInterfacesOn returns the router interface ports with an address on
// a subnet, by port id, with their routers.
func (ix *index) routerInterfacesOn(subnet string) map[string]string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make(map[string]string, len(ix.l3.subnetRPs[subnet]))
	for p, r := range ix.l3.subnetRPs[subnet] {
		out[p] = r
	}
	return out
}

func (ix *index) pfsOfFIP(fip string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return sortedSet(ix.l3.pfsByFIP[fip])
}

func (ix *index) pfsToPort(port string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return sortedSet(ix.l3.pfsByPort[port])
}
