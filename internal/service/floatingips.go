package service

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// RoleManager is the project-manager role of Neutron's newer policies
// (ADMIN_OR_PROJECT_MANAGER), honoured when an identity grants it.
const RoleManager = "manager"

// statusNA is the status of ports that are never wired (a floating IP's).
const statusNA = "N/A"

func fipNotFound(id string) error {
	return apierr.New(404, "FloatingIPNotFound", "Floating IP %s could not be found", id)
}

// GetFloatingIP returns a floating IP the caller may see.
func (s *Service) GetFloatingIP(ctx context.Context, id string) (*model.FloatingIP, error) {
	f, ok := cachedAs[*model.FloatingIP](s, FloatingIPs, id)
	if !ok || !canSeeOwned(creds(ctx), f.ProjectID) {
		return nil, fipNotFound(id)
	}
	return f, nil
}

// loadFIP reads a floating IP for a change by the caller.
func (s *Service) loadFIP(ctx context.Context, id, action string) (*model.FloatingIP, int64, error) {
	c := creds(ctx)
	f, rev, err := load[model.FloatingIP](ctx, s, FloatingIPs, id)
	if err != nil {
		return nil, 0, err
	}
	if f == nil || !canSeeOwned(c, f.ProjectID) {
		return nil, 0, fipNotFound(id)
	}
	if !policy.CanChange(c, f.ProjectID) {
		return nil, 0, apierr.PolicyNotAuthorized(action)
	}
	return f, rev, nil
}

// FloatingIPViewFor adds port_details (fip-port-details) to a floating
// IP's view: the associated port as it is now.
func (s *Service) FloatingIPViewFor(_ context.Context, v map[string]any) map[string]any {
	id, _ := v["port_id"].(string)
	if id == "" {
		return v
	}
	p, ok := cachedAs[*model.Port](s, Ports, id)
	if !ok {
		return v
	}
	out := maps.Clone(v)
	out["port_details"] = model.PortDetails(p)
	return out
}

// waitCache waits until the cache reflects rev, so what it holds is at
// least as new as an object read at rev.
func (s *Service) waitCache(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.cache.WaitRev(wctx, rev); err != nil {
		return storeErr(err)
	}
	return nil
}

// CreateFloatingIPs allocates floating IPs (each with its port on the
// external network), associating those given a port_id, atomically.
func (s *Service) CreateFloatingIPs(ctx context.Context, items []model.Fields) ([]*model.FloatingIP, error) {
	c := creds(ctx)
	var out []*model.FloatingIP
	err := retry(ctx, "create floating IPs", func() error {
		out = out[:0]
		p := newPortPlan()
		for _, f := range items {
			fip, err := s.planFloatingIP(ctx, c, p, f)
			if err != nil {
				return err
			}
			out = append(out, fip)
		}
		qc, qo, err := s.quotaClaim(ctx, FloatingIPs, stds(out))
		if err != nil {
			return err
		}
		p.cmps, p.ops = append(p.cmps, qc...), append(p.ops, qo...)
		for _, fip := range out {
			p.ops = append(p.ops, s.indexOp(FloatingIPs, &fip.Standard), s.putJSON(FloatingIPs, fip.ID, fip))
		}
		if err := s.commitPlan(ctx, p); err != nil {
			return err
		}
		return nil
	})
	return out, err
}

// planFloatingIP builds one floating IP and its port, as Neutron's
// _create_floatingip.
func (s *Service) planFloatingIP(ctx context.Context, c *policy.Credentials, p *portPlan, f model.Fields) (*model.FloatingIP, error) {
	project, err := checkCreate(c, model.FloatingIPSpec, f)
	if err != nil {
		return nil, err
	}
	addr, _ := f["floating_ip_address"].(netip.Addr)
	if addr.IsValid() && !c.IsAdmin() && !(slices.Contains(c.Roles, RoleManager) && c.Owns(project)) {
		return nil, apierr.PolicyNotAuthorized("create_floatingip:floating_ip_address")
	}
	netID := f["floating_network_id"].(string)
	v, err := s.loadNetView(ctx, netID, p)
	if err != nil {
		return nil, err
	}
	if !policy.CanSeeNetwork(c, v.net, s.grants(c, netID)) {
		return nil, apierr.NotFound("Network", "Network", netID)
	}
	if !v.net.External {
		return nil, badRequest("floatingip", "Network %s is not a valid external network", netID)
	}
	var v4 []*model.Subnet
	for _, sn := range v.subnets {
		if sn.IPVersion == 4 {
			v4 = append(v4, sn)
		}
	}
	if len(v4) == 0 {
		return nil, badRequest("floatingip", "Network %s does not contain any IPv4 subnet", netID)
	}
	now := model.Now()
	fip := &model.FloatingIP{
		Standard:          model.Standard{ID: uuid.NewString(), ProjectID: project, CreatedAt: now, UpdatedAt: now, Tags: []string{}},
		FloatingNetworkID: netID,
		Status:            model.StatusDown,
	}
	fip.ApplyStandard(f)
	req := model.FixedIPRequest{IPAddress: addr}
	req.SubnetID, _ = f["subnet_id"].(string)
	if !req.IPAddress.IsValid() && req.SubnetID == "" {
		// Any IPv4 subnet of the network with room (Neutron's default
		// allocation would also take an IPv6 address nobody uses).
		req.SubnetID = anyOf(eligible(v4, OwnerFloatingIP))
		if req.SubnetID == "" {
			return nil, noMatchingSubnet(netID, OwnerFloatingIP)
		}
	}
	port, err := s.planPort(ctx, p, v, model.Fields{
		"network_id": netID, "device_owner": OwnerFloatingIP, "device_id": fip.ID, "name": "", "admin_state_up": true,
		"fixed_ips": []model.FixedIPRequest{req},
	}, "")
	if err != nil {
		return nil, err
	}
	port.Status = statusNA
	i := slices.IndexFunc(port.FixedIPs, func(f model.FixedIP) bool { return f.IPAddress.Is4() })
	if i < 0 {
		return nil, apierr.New(400, "ExternalIpAddressExhausted", "Unable to find any IP address on external network %s.", netID)
	}
	fip.FloatingIPAddress, fip.FloatingPortID = port.FixedIPs[i].IPAddress, port.ID
	p.ops = append(p.ops, s.putJSON(Ports, port.ID, port))
	portID, _ := f["port_id"].(string)
	fixed, _ := f["fixed_ip_address"].(netip.Addr)
	switch {
	case portID != "":
		if err := s.planAssociation(ctx, p, fip, portID, fixed); err != nil {
			return nil, err
		}
	case fixed.IsValid():
		return nil, badRequest("floatingip", "fixed_ip_address cannot be specified without a port_id")
	}
	fip.Status = s.fipStatus(fip)
	p.cmps = append(p.cmps, notExists(s.st.Keys.Resource(FloatingIPs, fip.ID)))
	return fip, nil
}

// planAssociation floats fip to a fixed IP of a port (chosen when not
// given), as Neutron's _get_assoc_data and _check_and_get_fip_assoc; it
// updates fip and adds the keys the association holds to the plan.
func (s *Service) planAssociation(ctx context.Context, p *portPlan, fip *model.FloatingIP, portID string, fixed netip.Addr) error {
	c := creds(ctx)
	port, portRev, err := s.portAt(ctx, portID)
	if err != nil {
		return err
	}
	var n *model.Network
	if port != nil {
		n, _ = cachedAs[*model.Network](s, Networks, port.NetworkID)
	}
	if port == nil || !policy.CanSeePort(c, port, n) {
		return apierr.NotFound("Port", "Port", portID)
	}
	if port.ProjectID != fip.ProjectID && !c.IsAdmin() {
		return badRequest("floatingip", "Cannot process floating IP association with Port %s, since that port is owned by a different project", portID)
	}
	if port.DeviceOwner == OwnerDHCP {
		return badRequest("floatingip", "Port %s is unable to be assigned a floating IP", portID)
	}
	var subnetID string
	if fixed.IsValid() {
		if !fixed.Is4() {
			return badRequest("floatingip", "Cannot process floating IP association with %s, since that is not an IPv4 address", fixed)
		}
		for _, f := range port.FixedIPs {
			if f.IPAddress == fixed {
				subnetID = f.SubnetID
			}
		}
		if subnetID == "" {
			return badRequest("floatingip", "Port %s does not have fixed ip %s", port.ID, fixed)
		}
	} else {
		var v4 []model.FixedIP
		for _, f := range port.FixedIPs {
			if f.IPAddress.Is4() {
				v4 = append(v4, f)
			}
		}
		switch len(v4) {
		case 0:
			return badRequest("floatingip", "Cannot add floating IP to port %s that has no fixed IPv4 addresses", port.ID)
		case 1:
			fixed, subnetID = v4[0].IPAddress, v4[0].SubnetID
		default:
			return badRequest("floatingip", "Port %s has multiple fixed IPv4 addresses.  Must provide a specific IPv4 address when assigning a floating IP", port.ID)
		}
	}
	r, rrev, err := s.routerForFIP(ctx, port, subnetID, fip.FloatingNetworkID)
	if err != nil {
		return err
	}
	if r == nil {
		return apierr.New(404, "ExternalGatewayForFloatingIPNotFound", "External network %s is not reachable from subnet %s.  Therefore, cannot associate Port %s with a Floating IP.", fip.FloatingNetworkID, subnetID, port.ID)
	}
	// The port must keep the address (a concurrent readdressing would
	// leave the floating IP pointing nowhere).
	p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Routers, r.ID), rrev), unchanged(s.st.Keys.Resource(Ports, port.ID), portRev))
	if port.ID != fip.PortID || fixed != fip.FixedIPAddress {
		key := s.st.Keys.PortFIP(port.ID, fip.FloatingNetworkID, fixed.String())
		taken := apierr.Conflict("FloatingIPPortAlreadyAssociated", "Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
			fip.FloatingIPAddress, fip.ID, port.ID, fixed, fip.FloatingNetworkID)
		resp, err := s.st.Client.Get(ctx, key, clientv3.WithCountOnly())
		if err != nil {
			return storeErr(err)
		}
		if resp.Count > 0 {
			return taken
		}
		p.cmps = append(p.cmps, notExists(key))
		p.ops = append(p.ops, clientv3.OpPut(key, fip.ID))
		p.explicit[key] = taken
		s.planDissociation(p, fip)
	}
	fip.PortID, fip.FixedIPAddress = port.ID, fixed
	s.setFIPRouter(p, fip, r.ID)
	return nil
}

// planDissociation releases what fip's current association holds (not
// its router: see setFIPRouter).
func (s *Service) planDissociation(p *portPlan, fip *model.FloatingIP) {
	if fip.PortID != "" {
		p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.PortFIP(fip.PortID, fip.FloatingNetworkID, fip.FixedIPAddress.String())))
	}
	fip.PortID, fip.FixedIPAddress = "", netip.Addr{}
}

// setFIPRouter sets the router fip uses and keeps the router's
// floating-IP index in step; it rewrites the index key even when the
// router stays, so that a concurrent interface removal notices.
func (s *Service) setFIPRouter(p *portPlan, fip *model.FloatingIP, routerID string) {
	if fip.RouterID != "" && fip.RouterID != routerID {
		p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.RouterFIP(fip.RouterID, fip.ID)))
	}
	if routerID != "" {
		p.ops = append(p.ops, clientv3.OpPut(s.st.Keys.RouterFIP(routerID, fip.ID), ""))
	}
	fip.RouterID = routerID
}

// routerForFIP finds the router that connects a port's subnet to an
// external network, as Neutron's get_router_for_floatingip: among routers
// with an interface on the subnet and a gateway on the network, the one
// whose interface holds the subnet's gateway address, else the first.
// It returns nil when there is none.
func (s *Service) routerForFIP(ctx context.Context, port *model.Port, subnetID, extNetID string) (*model.Router, int64, error) {
	sn, err := s.subnetNow(ctx, subnetID)
	if err != nil || sn == nil {
		return nil, 0, err
	}
	ifaces := s.idx.routerInterfacesOn(subnetID)
	portIDs := slices.Sorted(maps.Keys(ifaces))
	var first *model.Router
	var firstRev int64
	for _, pid := range portIDs {
		it, ok := s.cache.Get(Routers, ifaces[pid])
		if !ok {
			continue
		}
		r := it.Value.(*model.Cached).Obj.(*model.Router)
		if r.GatewayNetworkID != extNetID || !r.HasInterface(pid) {
			continue
		}
		ip, ok := cachedAs[*model.Port](s, Ports, pid)
		if !ok || ip.NetworkID != port.NetworkID {
			continue
		}
		if slices.ContainsFunc(ip.FixedIPs, func(f model.FixedIP) bool { return f.SubnetID == subnetID && f.IPAddress == sn.GatewayIP }) {
			return r, it.ModRev, nil
		}
		if first == nil {
			first, firstRev = r, it.ModRev
		}
	}
	return first, firstRev, nil
}

// fipStatus is ACTIVE while the floating IP's router is up on a live L3
// agent, DOWN otherwise. (The agent's own reports refine this later.)
func (s *Service) fipStatus(fip *model.FloatingIP) string {
	if fip.RouterID != "" && s.routerActive(fip.RouterID) {
		return model.StatusActive
	}
	return model.StatusDown
}

// routerActive reports whether a router is up and hosted by a live,
// enabled L3 agent.
func (s *Service) routerActive(routerID string) bool {
	r, ok := cachedAs[*model.Router](s, Routers, routerID)
	if !ok || !r.AdminStateUp || r.Placement.Host == "" {
		return false
	}
	a, ok := cachedAs[*model.Agent](s, Agents, AgentID(r.Placement.Host, model.AgentTypeL3))
	return ok && s.AgentAlive(a)
}

// UpdateFloatingIP associates, re-associates or dissociates a floating IP
// (port_id, fixed_ip_address) and changes its description.
func (s *Service) UpdateFloatingIP(ctx context.Context, id string, f model.Fields) (*model.FloatingIP, error) {
	var out *model.FloatingIP
	err := retry(ctx, "update floating IP", func() error {
		fip, rev, err := s.loadFIP(ctx, id, "update_floatingip")
		if err != nil {
			return err
		}
		if err := checkIfMatch(ctx, fip.RevisionNumber); err != nil {
			return err
		}
		p := newPortPlan()
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(FloatingIPs, id), rev))
		fip.ApplyStandard(f)
		portID, portGiven := f["port_id"].(string)
		fixed, _ := f["fixed_ip_address"].(netip.Addr)
		switch {
		case portGiven && portID != "":
			if err := s.waitCache(ctx, rev); err != nil {
				return err
			}
			if len(s.idx.pfsOfFIP(id)) > 0 {
				return apierr.Conflict("FipInUseByPortForwarding", "Floating IP %s in use by Port Forwarding resources.", id)
			}
			if err := s.planAssociation(ctx, p, fip, portID, fixed); err != nil {
				return err
			}
		case fixed.IsValid() && (portGiven || fip.PortID == ""):
			return badRequest("floatingip", "fixed_ip_address cannot be specified without a port_id")
		case fixed.IsValid():
			if err := s.planAssociation(ctx, p, fip, fip.PortID, fixed); err != nil {
				return err
			}
		case portGiven && fip.PortID != "":
			s.planDissociation(p, fip)
			// (One carrying port forwardings is never associated.)
			s.setFIPRouter(p, fip, "")
		}
		fip.Status = s.fipStatus(fip)
		fip.Touch()
		p.ops = append(p.ops, s.putJSON(FloatingIPs, id, fip))
		if err := s.commitPlan(ctx, p); err != nil {
			return err
		}
		out = fip
		return nil
	})
	return out, err
}

// DeleteFloatingIP releases a floating IP and its port; one carrying port
// forwardings is refused (FipInUseByPortForwarding).
func (s *Service) DeleteFloatingIP(ctx context.Context, id string) error {
	return retry(ctx, "delete floating IP", func() error {
		fip, rev, err := s.loadFIP(ctx, id, "delete_floatingip")
		if err != nil {
			return err
		}
		if err := checkIfMatch(ctx, fip.RevisionNumber); err != nil {
			return err
		}
		if err := s.waitCache(ctx, rev); err != nil {
			return err
		}
		if len(s.idx.pfsOfFIP(id)) > 0 {
			return apierr.Conflict("FipInUseByPortForwarding", "Floating IP %s in use by Port Forwarding resources.", id)
		}
		p := newPortPlan()
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(FloatingIPs, id), rev))
		port, prev, err := load[model.Port](ctx, s, Ports, fip.FloatingPortID)
		if err != nil {
			return err
		}
		if port != nil {
			p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Ports, port.ID), prev))
			p.ops = append(p.ops, s.portDeleteOps(port)...)
		}
		s.planDissociation(p, fip)
		s.setFIPRouter(p, fip, "")
		p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.Resource(FloatingIPs, id)))
		p.ops = append(p.ops, s.releaseOps(FloatingIPs, &fip.Standard)...)
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

// servicePortOwner names the router or floating IP that owns a port, if
// the port is one of theirs and its owner still exists.
func (s *Service) servicePortOwner(ctx context.Context, port *model.Port) (bool, error) {
	var kind string
	switch port.DeviceOwner {
	case OwnerRouterInterface, OwnerRouterGateway, "network:router_interface_distributed", "network:ha_router_replicated_interface":
		kind = Routers
	case OwnerFloatingIP:
		kind = FloatingIPs
	default:
		return false, nil
	}
	resp, err := s.st.Client.Get(ctx, s.st.Keys.Resource(kind, port.DeviceID), clientv3.WithCountOnly())
	if err != nil {
		return false, storeErr(err)
	}
	return resp.Count > 0, nil
}

// l3PortDelete is what deleting a port means for L3, as Neutron's
// prevent_l3_port_deletion, disassociate_floatingips and the port
// forwarding plugin's port handler: a port a router or floating IP owns
// is refused (ServicePortInUse); floating IPs floating to the port are
// dissociated and port forwardings to it deleted, in the same transaction.
func (s *Service) l3PortDelete(ctx context.Context, port *model.Port) ([]clientv3.Cmp, []clientv3.Op, error) {
	owned, err := s.servicePortOwner(ctx, port)
	if err != nil {
		return nil, nil, err
	}
	if owned {
		return nil, nil, apierr.Conflict("ServicePortInUse", "Port %s cannot be deleted directly via the port API: has device owner %s.", port.ID, port.DeviceOwner)
	}
	return s.l3PortRelease(ctx, port, nil)
}

// l3PortUpdate keeps floating IPs and port forwardings consistent with a
// port whose addresses change from old: an address a floating IP floats to
// must stay (as Neutron's prevent_internal_ip_change_for_fip); forwardings
// to an address that goes are deleted.
func (s *Service) l3PortUpdate(ctx context.Context, port *model.Port, old []model.FixedIP) ([]clientv3.Cmp, []clientv3.Op, error) {
	keep := map[netip.Addr]bool{}
	for _, f := range port.FixedIPs {
		keep[f.IPAddress] = true
	}
	changed := false
	for _, f := range old {
		changed = changed || !keep[f.IPAddress]
	}
	if !changed {
		return nil, nil, nil
	}
	return s.l3PortRelease(ctx, port, keep)
}

// l3PortRelease dissociates the floating IPs and deletes the port
// forwardings that target addresses of port outside keep (all when keep
// is nil); a floating IP is refused when keep is not nil.
func (s *Service) l3PortRelease(ctx context.Context, port *model.Port, keep map[netip.Addr]bool) ([]clientv3.Cmp, []clientv3.Op, error) {
	prefix := s.st.Keys.PortL3Prefix(port.ID)
	resp, err := s.st.Client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, storeErr(err)
	}
	p := newPortPlan()
	p.cmps = append(p.cmps, noneNewUnder(prefix, resp.Header.Revision))
	fips := map[string]*model.FloatingIP{}
	fipRevs := map[string]int64{}
	changed := map[string]bool{}
	loadFIP := func(id string) (*model.FloatingIP, error) {
		if f, ok := fips[id]; ok {
			return f, nil
		}
		f, rev, err := load[model.FloatingIP](ctx, s, FloatingIPs, id)
		if err != nil || f == nil {
			return nil, err
		}
		fips[id], fipRevs[id] = f, rev
		return f, nil
	}
	goneByFIP := map[string][]string{} // floating IP → its forwardings deleted here
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), prefix)
		fipID := string(kv.Value)
		fip, err := loadFIP(fipID)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case strings.HasPrefix(rest, "fip/"):
			if fip == nil || fip.PortID != port.ID {
				p.ops = append(p.ops, clientv3.OpDelete(string(kv.Key)))
				continue
			}
			if keep != nil {
				if keep[fip.FixedIPAddress] {
					continue
				}
				return nil, nil, badRequest("port", "Cannot update the fixed_ips of the port %s, because its original fixed_ip has been associated to a floating ip", port.ID)
			}
			s.planDissociation(p, fip)
			s.setFIPRouter(p, fip, "")
			fip.Status = model.StatusDown
			fip.Touch()
			changed[fip.ID] = true
		case strings.HasPrefix(rest, "pf/"):
			pfID := strings.TrimPrefix(rest, "pf/")
			pf, pfRev, err := load[model.PortForwarding](ctx, s, PortForwardings, pfID)
			if err != nil {
				return nil, nil, err
			}
			if pf == nil {
				p.ops = append(p.ops, clientv3.OpDelete(string(kv.Key)))
				continue
			}
			if keep != nil && keep[pf.InternalIPAddress] {
				continue
			}
			p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(PortForwardings, pfID), pfRev))
			p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.Resource(PortForwardings, pfID)), clientv3.OpDelete(string(kv.Key)))
			if fip != nil {
				goneByFIP[fip.ID] = append(goneByFIP[fip.ID], pfID)
				// Port forwarding changes rewrite their floating IP (see
				// portforwardings.go), without a new revision.
				changed[fip.ID] = true
			}
		}
	}
	for id, gone := range goneByFIP {
		fip := fips[id]
		if err := s.waitCache(ctx, fipRevs[id]); err != nil {
			return nil, nil, err
		}
		left := slices.DeleteFunc(s.idx.pfsOfFIP(id), func(pf string) bool { return slices.Contains(gone, pf) })
		if len(left) == 0 && fip.PortID == "" {
			// Its last forwarding gone, the floating IP leaves the router.
			s.setFIPRouter(p, fip, "")
			fip.Status = model.StatusDown
			fip.Touch()
		}
	}
	for id := range changed {
		fip := fips[id]
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(FloatingIPs, id), fipRevs[id]))
		p.ops = append(p.ops, s.putJSON(FloatingIPs, id, fip))
	}
	return p.cmps, p.ops, nil
}

// fixedIPsRepr renders fixed IPs as Neutron quotes them in messages.
func fixedIPsRepr(ips []model.FixedIP) string {
	parts := make([]string, len(ips))
	for i, f := range ips {
		parts[i] = fmt.Sprintf("{'subnet_id': '%s', 'ip_address': '%s'}", f.SubnetID, f.IPAddress)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
