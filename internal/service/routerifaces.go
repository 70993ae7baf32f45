package service

import (
	"context"
	"net/netip"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/ipam"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// InterfaceRequest is the body of add_router_interface and
// remove_router_interface: a subnet, a port, or (removal only) both.
type InterfaceRequest struct {
	SubnetID string
	PortID   string
}

// ParseInterfaceRequest validates an interface body as Neutron's
// _validate_interface_info.
func ParseInterfaceRequest(body map[string]any, removal bool) (InterfaceRequest, error) {
	var r InterfaceRequest
	_, hasPort := body["port_id"]
	_, hasSubnet := body["subnet_id"]
	if !hasPort && !hasSubnet {
		return r, badRequest("router", "Either subnet_id or port_id must be specified")
	}
	for k, dst := range map[string]*string{"port_id": &r.PortID, "subnet_id": &r.SubnetID} {
		v, ok := body[k]
		if !ok {
			continue
		}
		id, err := model.ParseUUID(v)
		if err != nil {
			return r, badRequest("router", "%v", err)
		}
		*dst = id.(string)
	}
	if !removal && hasPort && hasSubnet {
		return r, badRequest("router", "Cannot specify both subnet-id and port-id")
	}
	return r, nil
}

// interfaceInfo is the answer of both interface actions.
func interfaceInfo(routerID string, port *model.Port, subnets []*model.Subnet, first bool) map[string]any {
	ids := make([]string, len(subnets))
	for i, sn := range subnets {
		ids[i] = sn.ID
	}
	var sub any
	if len(ids) > 0 {
		sub = ids[len(ids)-1]
		if first {
			sub = ids[0]
		}
	}
	return map[string]any{
		"id": routerID, "tenant_id": port.ProjectID, "project_id": port.ProjectID, "port_id": port.ID,
		"network_id": port.NetworkID, "subnet_id": sub, "subnet_ids": ids,
	}
}

// AddRouterInterface attaches a subnet (a new port with the subnet's
// gateway address) or an unused port to a router.
func (s *Service) AddRouterInterface(ctx context.Context, routerID string, req InterfaceRequest) (map[string]any, error) {
	var info map[string]any
	err := retry(ctx, "add router interface", func() error {
		r, rev, err := s.loadRouter(ctx, routerID, "add_router_interface")
		if err != nil {
			return err
		}
		p := newPortPlan()
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Routers, routerID), rev))
		var port *model.Port
		var subnets []*model.Subnet
		newIface := true
		if req.PortID != "" {
			port, subnets, err = s.planInterfaceByPort(ctx, p, r, req.PortID)
		} else {
			port, subnets, newIface, err = s.planInterfaceBySubnet(ctx, p, r, req.SubnetID)
		}
		if err != nil {
			return err
		}
		if newIface {
			r.Interfaces = append(r.Interfaces, port.ID)
		}
		r.Touch()
		p.ops = append(p.ops, s.putJSON(Routers, routerID, r))
		if err := s.commitPlan(ctx, p); err != nil {
			return err
		}
		info = interfaceInfo(routerID, port, subnets, false)
		return nil
	})
	return info, err
}

// validateSubnetAddressMode refuses IPv6 subnets whose hosts take router
// advertisements from an external router.
func validateSubnetAddressMode(sn *model.Subnet) error {
	if sn.IPVersion == 6 && sn.IPv6RAMode == "" && sn.IPv6AddressMode != "" {
		return badRequest("router", "IPv6 subnet %s configured to receive RAs from an external router cannot be added to Neutron Router.", sn.ID)
	}
	return nil
}

// checkRouterSubnets refuses subnets the router is already on or that
// overlap its other subnets (those of its interfaces and of its gateway's
// network), as Neutron's _check_for_dup_router_subnets.
func (s *Service) checkRouterSubnets(ctx context.Context, r *model.Router, news []*model.Subnet, skipPort string) error {
	ports, err := s.routerPorts(ctx, r)
	if err != nil {
		return err
	}
	var have []string
	for _, port := range ports {
		if port.ID == skipPort {
			continue
		}
		for _, f := range port.FixedIPs {
			if slices.ContainsFunc(news, func(sn *model.Subnet) bool { return sn.ID == f.SubnetID }) {
				return badRequest("router", "Router already has a port on subnet %s", f.SubnetID)
			}
			if port.DeviceOwner == OwnerRouterGateway {
				if n, ok := cachedAs[*model.Network](s, Networks, port.NetworkID); ok {
					have = append(have, n.Subnets...)
				}
			} else {
				have = append(have, f.SubnetID)
			}
		}
	}
	for _, id := range have {
		sub, err := s.subnetNow(ctx, id)
		if err != nil {
			return err
		}
		if sub == nil {
			continue
		}
		for _, sn := range news {
			if sub.CIDR.Overlaps(sn.CIDR) {
				return badRequest("router", "Cidr %s of subnet %s overlaps with cidr %s of subnet %s", sn.CIDR, sn.ID, sub.CIDR, sub.ID)
			}
		}
	}
	return nil
}

// planInterfaceBySubnet plans a new interface port holding the subnet's
// gateway address, or, for an IPv6 subnet on a network where the router
// already has an IPv6 port, adds the address to that port (newIface false).
func (s *Service) planInterfaceBySubnet(ctx context.Context, p *portPlan, r *model.Router, subnetID string) (*model.Port, []*model.Subnet, bool, error) {
	c := creds(ctx)
	sn, err := s.GetSubnet(ctx, subnetID)
	if err != nil {
		return nil, nil, false, err
	}
	if !sn.GatewayIP.IsValid() {
		return nil, nil, false, badRequest("router", "Subnet for router interface must have a gateway IP")
	}
	if sn.ProjectID != c.ProjectID && !c.IsAdmin() && !s.rbacTargets(sn.NetworkID, c.ProjectID) {
		// A subnet of a network shared with this project by name may be
		// attached; one shared with everyone may not (LP-1757482).
		return nil, nil, false, badRequest("router", "Cannot add interface to router because subnet %s is not owned by project making the request", subnetID)
	}
	if err := validateSubnetAddressMode(sn); err != nil {
		return nil, nil, false, err
	}
	if err := s.checkRouterSubnets(ctx, r, []*model.Subnet{sn}, ""); err != nil {
		return nil, nil, false, err
	}
	v, err := s.loadNetView(ctx, sn.NetworkID, p)
	if err != nil {
		return nil, nil, false, err
	}
	if sn.IPVersion == 6 {
		if port, rev, err := s.routerV6Port(ctx, r, sn.NetworkID); err != nil {
			return nil, nil, false, err
		} else if port != nil {
			ip, err := s.planOneIP(ctx, p, v, port, model.FixedIPRequest{SubnetID: sn.ID, IPAddress: sn.GatewayIP}, true, nil)
			if err != nil {
				return nil, nil, false, err
			}
			port.FixedIPs = append(port.FixedIPs, ip)
			port.Touch()
			p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Ports, port.ID), rev))
			p.ops = append(p.ops, s.putJSON(Ports, port.ID, port))
			return port, []*model.Subnet{sn}, false, nil
		}
	}
	f := model.Fields{
		"network_id": sn.NetworkID, "device_owner": OwnerRouterInterface, "device_id": r.ID, "name": "", "admin_state_up": true,
		"fixed_ips": []model.FixedIPRequest{{SubnetID: sn.ID, IPAddress: sn.GatewayIP}},
	}
	port, err := s.planPort(ctx, p, v, f, r.ProjectID)
	if err != nil {
		return nil, nil, false, err
	}
	// The interface port counts against the router's project's port quota,
	// as Neutron creates it with the caller's context.
	qc, qo, err := s.quotaClaim(ctx, Ports, []*model.Standard{&port.Standard})
	if err != nil {
		return nil, nil, false, err
	}
	p.cmps, p.ops = append(p.cmps, qc...), append(p.ops, qo...)
	p.ops = append(p.ops, s.putJSON(Ports, port.ID, port))
	return port, []*model.Subnet{sn}, true, nil
}

// rbacTargets reports whether an access_as_shared policy names project
// (not "*") on a network.
func (s *Service) rbacTargets(netID, project string) bool {
	for _, r := range s.rbacOf(netID) {
		if r.Action == model.AccessAsShared && project != "" && r.TargetProject == project {
			return true
		}
	}
	return false
}

// routerV6Port returns the router's interface port on a network that has
// an IPv6 address, if any.
func (s *Service) routerV6Port(ctx context.Context, r *model.Router, netID string) (*model.Port, int64, error) {
	for _, id := range r.Interfaces {
		port, rev, err := load[model.Port](ctx, s, Ports, id)
		if err != nil {
			return nil, 0, err
		}
		if port != nil && port.NetworkID == netID && port.DeviceOwner == OwnerRouterInterface && hasV6(port) {
			return port, rev, nil
		}
	}
	return nil, 0, nil
}

func hasV6(p *model.Port) bool {
	return slices.ContainsFunc(p.FixedIPs, func(f model.FixedIP) bool { return f.IPAddress.Is6() })
}

// planInterfaceByPort makes an unused port of the caller's a router
// interface, as Neutron's _add_interface_by_port.
func (s *Service) planInterfaceByPort(ctx context.Context, p *portPlan, r *model.Router, portID string) (*model.Port, []*model.Subnet, error) {
	c := creds(ctx)
	port, rev, err := load[model.Port](ctx, s, Ports, portID)
	if err != nil {
		return nil, nil, err
	}
	var n *model.Network
	if port != nil {
		n, _ = cachedAs[*model.Network](s, Networks, port.NetworkID)
	}
	if port == nil || !policy.CanSeePort(c, port, n) {
		return nil, nil, apierr.NotFound("Port", "Port", portID)
	}
	if port.DeviceID != "" {
		return nil, nil, apierr.Conflict("PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.", port.ID, port.NetworkID, port.DeviceID)
	}
	if len(port.FixedIPs) == 0 {
		return nil, nil, badRequest("router", "Router port must have at least one fixed IP")
	}
	var subnets []*model.Subnet
	v4 := 0
	for _, f := range port.FixedIPs {
		sn, err := s.subnetNow(ctx, f.SubnetID)
		if err != nil {
			return nil, nil, err
		}
		if sn == nil {
			return nil, nil, errConflict
		}
		if err := validateSubnetAddressMode(sn); err != nil {
			return nil, nil, err
		}
		if sn.IPVersion == 4 {
			v4++
		}
		subnets = append(subnets, sn)
	}
	if hasV6(port) {
		if other, _, err := s.routerV6Port(ctx, r, port.NetworkID); err != nil {
			return nil, nil, err
		} else if other != nil {
			return nil, nil, badRequest("router", "Router already contains IPv6 port %s belonging to network id %s. Only one IPv6 port from the same network subnet can be connected to a router.", other.ID, other.NetworkID)
		}
	}
	if err := s.checkRouterSubnets(ctx, r, subnets, port.ID); err != nil {
		return nil, nil, err
	}
	if v4 > 1 {
		return nil, nil, badRequest("router", "Cannot have multiple IPv4 subnets on router port")
	}
	if !c.IsAdmin() {
		for i, f := range port.FixedIPs {
			sn := subnets[i]
			if !inPools(sn.AllocationPools, f.IPAddress) && sn.ProjectID != c.ProjectID {
				return nil, nil, badRequest("router", "Cannot add interface to router because specified port %s has an IP address out of the allocation pool of subnet %s, which is not owned by the project making the request", port.ID, sn.ID)
			}
		}
	}
	port.DeviceID, port.DeviceOwner = r.ID, OwnerRouterInterface
	port.Touch()
	p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Ports, port.ID), rev))
	p.ops = append(p.ops, s.putJSON(Ports, port.ID, port))
	return port, subnets, nil
}

func inPools(pools []ipam.Pool, a netip.Addr) bool {
	for _, pl := range pools {
		if pl.Start.Compare(a) <= 0 && a.Compare(pl.End) <= 0 {
			return true
		}
	}
	return false
}

// RemoveRouterInterface detaches an interface by port or by subnet: the
// port is deleted, or only loses its address on the subnet when it has
// addresses on others (IPv6 prefixes).
func (s *Service) RemoveRouterInterface(ctx context.Context, routerID string, req InterfaceRequest) (map[string]any, error) {
	var info map[string]any
	err := retry(ctx, "remove router interface", func() error {
		r, rev, err := s.loadRouter(ctx, routerID, "remove_router_interface")
		if err != nil {
			return err
		}
		p := newPortPlan()
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Routers, routerID), rev))
		var port *model.Port
		var subnets []*model.Subnet
		if req.PortID != "" {
			port, subnets, err = s.planRemoveByPort(ctx, p, r, req)
		} else {
			port, subnets, err = s.planRemoveBySubnet(ctx, p, r, req.SubnetID)
		}
		if err != nil {
			return err
		}
		r.Touch()
		p.ops = append(p.ops, s.putJSON(Routers, routerID, r))
		ok, err := s.commit(ctx, p.cmps, p.ops)
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		info = interfaceInfo(routerID, port, subnets, true)
		return nil
	})
	return info, err
}

func (s *Service) planRemoveByPort(ctx context.Context, p *portPlan, r *model.Router, req InterfaceRequest) (*model.Port, []*model.Subnet, error) {
	if !r.HasInterface(req.PortID) {
		return nil, nil, apierr.New(404, "RouterInterfaceNotFound", "Router %s does not have an interface with id %s", r.ID, req.PortID)
	}
	port, rev, err := load[model.Port](ctx, s, Ports, req.PortID)
	if err != nil {
		return nil, nil, err
	}
	if port == nil {
		return nil, nil, errConflict
	}
	if req.SubnetID != "" && !slices.ContainsFunc(port.FixedIPs, func(f model.FixedIP) bool { return f.SubnetID == req.SubnetID }) {
		return nil, nil, apierr.New(400, "SubnetMismatchForPort", "Subnet on port %s does not match the requested subnet %s.", port.ID, req.SubnetID)
	}
	var subnets []*model.Subnet
	for _, f := range port.FixedIPs {
		sn, err := s.subnetNow(ctx, f.SubnetID)
		if err != nil {
			return nil, nil, err
		}
		if sn == nil {
			continue
		}
		if err := s.checkInterfaceNotInUse(ctx, p, r, sn); err != nil {
			return nil, nil, err
		}
		subnets = append(subnets, sn)
	}
	p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Ports, port.ID), rev))
	p.ops = append(p.ops, s.portDeleteOps(port)...)
	r.Interfaces = slices.DeleteFunc(r.Interfaces, func(id string) bool { return id == port.ID })
	return port, subnets, nil
}

func (s *Service) planRemoveBySubnet(ctx context.Context, p *portPlan, r *model.Router, subnetID string) (*model.Port, []*model.Subnet, error) {
	sn, err := s.GetSubnet(ctx, subnetID)
	if err != nil {
		return nil, nil, err
	}
	var onNet []*model.Port
	var revs []int64
	for _, id := range r.Interfaces {
		port, rev, err := load[model.Port](ctx, s, Ports, id)
		if err != nil {
			return nil, nil, err
		}
		if port != nil && port.NetworkID == sn.NetworkID {
			onNet, revs = append(onNet, port), append(revs, rev)
		}
	}
	if len(onNet) > 0 {
		if err := s.checkInterfaceNotInUse(ctx, p, r, sn); err != nil {
			return nil, nil, err
		}
	}
	for i, port := range onNet {
		j := slices.IndexFunc(port.FixedIPs, func(f model.FixedIP) bool { return f.SubnetID == sn.ID })
		if j < 0 {
			continue
		}
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Ports, port.ID), revs[i]))
		if len(port.FixedIPs) > 1 {
			// A port with prefixes of several IPv6 subnets keeps the others.
			gone := port.FixedIPs[j]
			port.FixedIPs = slices.Delete(slices.Clone(port.FixedIPs), j, j+1)
			port.Touch()
			p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.IPAlloc(gone.SubnetID, gone.IPAddress.String())), s.putJSON(Ports, port.ID, port))
			return port, []*model.Subnet{sn}, nil
		}
		p.ops = append(p.ops, s.portDeleteOps(port)...)
		r.Interfaces = slices.DeleteFunc(r.Interfaces, func(id string) bool { return id == port.ID })
		return port, []*model.Subnet{sn}, nil
	}
	return nil, nil, apierr.New(404, "RouterInterfaceNotFoundForSubnet", "Router %s has no interface on subnet %s", r.ID, sn.ID)
}

// checkInterfaceNotInUse refuses to detach a subnet that floating IPs,
// port forwardings or extra routes of the router still need.
func (s *Service) checkInterfaceNotInUse(ctx context.Context, p *portPlan, r *model.Router, sn *model.Subnet) error {
	prefix := s.st.Keys.RouterFIPPrefix(r.ID)
	resp, err := s.st.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return storeErr(err)
	}
	p.cmps = append(p.cmps, noneNewUnder(prefix, resp.Header.Revision))
	onSubnet := func(portID string, ip netip.Addr) bool {
		if !sn.CIDR.Contains(ip) {
			return false
		}
		port, err := s.portNow(ctx, portID)
		return err == nil && port != nil && slices.ContainsFunc(port.FixedIPs, func(f model.FixedIP) bool { return f.SubnetID == sn.ID })
	}
	inUse := apierr.Conflict("RouterInterfaceInUseByFloatingIP", "Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", sn.ID, r.ID)
	for _, kv := range resp.Kvs {
		fipID := string(kv.Key[len(prefix):])
		fip, fipRev, err := load[model.FloatingIP](ctx, s, FloatingIPs, fipID)
		if err != nil {
			return err
		}
		if fip == nil {
			continue
		}
		if err := s.waitCache(ctx, fipRev); err != nil {
			return err
		}
		for _, id := range s.idx.pfsOfFIP(fip.ID) {
			if pf, ok := cachedAs[*model.PortForwarding](s, PortForwardings, id); ok && onSubnet(pf.InternalPortID, pf.InternalIPAddress) {
				return inUse
			}
		}
		if fip.PortID != "" && onSubnet(fip.PortID, fip.FixedIPAddress) {
			return inUse
		}
	}
	for _, rt := range r.Routes {
		if sn.CIDR.Contains(rt.NextHop) {
			return apierr.Conflict("RouterInterfaceInUseByRoute", "Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more routes.", sn.ID, r.ID)
		}
	}
	return nil
}
