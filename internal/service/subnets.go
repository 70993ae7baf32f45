package service

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/ipam"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// GetSubnet returns a subnet the caller may see.
func (s *Service) GetSubnet(ctx context.Context, id string) (*model.Subnet, error) {
	sn, ok := cachedAs[*model.Subnet](s, Subnets, id)
	if ok {
		n, _ := cachedAs[*model.Network](s, Networks, sn.NetworkID)
		if policy.CanSeeSubnet(creds(ctx), sn, n, s.grants(creds(ctx), sn.NetworkID)) {
			return sn, nil
		}
	}
	return nil, apierr.NotFound("Subnet", "Subnet", id)
}

// CreateSubnets creates one or more subnets atomically.
func (s *Service) CreateSubnets(ctx context.Context, items []model.Fields) ([]*model.Subnet, error) {
	c := creds(ctx)
	var out []*model.Subnet
	err := retry(ctx, "create subnets", func() error {
		out = out[:0]
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		nets := map[string]*model.Network{} // networks changed by this request
		pools := map[string]*poolAlloc{}    // pools allocated from
		for _, f := range items {
			project, err := checkCreate(c, model.SubnetSpec, f)
			if err != nil {
				return err
			}
			netID := f["network_id"].(string)
			n, ok := nets[netID]
			if !ok {
				var rev int64
				n, rev, err = load[model.Network](ctx, s, Networks, netID)
				if err != nil {
					return err
				}
				if n == nil || !policy.CanSeeNetwork(c, n, s.grants(c, netID)) {
					return apierr.NotFound("Network", "Network", netID)
				}
				cmps = append(cmps, unchanged(s.st.Keys.Resource(Networks, netID), rev))
				nets[netID] = n
			}
			if !c.IsAdmin() && !c.Owns(n.ProjectID) {
				return apierr.PolicyNotAuthorized("create_subnet")
			}
			f, pa, err := s.subnetFromPool(ctx, c, f, project, pools)
			if err != nil {
				return err
			}
			sn, err := s.newSubnet(f, project)
			if err != nil {
				return err
			}
			if pa != nil {
				sn.SubnetPoolID = pa.pool.ID
				pa.add(sn.CIDR, project)
			}
			// The network's subnets: those stored (the network's compare
			// fixes the list) and those this request adds before sn.
			others, err := s.loadSubnets(ctx, n.Subnets)
			if err != nil {
				return err
			}
			for _, o := range out {
				if o.NetworkID == sn.NetworkID {
					others = append(others, o)
				}
			}
			for _, o := range others {
				if o.CIDR.Overlaps(sn.CIDR) {
					return apierr.InvalidInput("Requested subnet with cidr: %s for network: %s overlaps with another subnet", sn.CIDR, n.ID)
				}
			}
			pc, err := s.checkPoolAffinity(ctx, sn, pa, others, pools)
			if err != nil {
				return err
			}
			cmps = append(cmps, pc...)
			n.Subnets = append(n.Subnets, sn.ID)
			out = append(out, sn)
			cmps = append(cmps, notExists(s.st.Keys.Resource(Subnets, sn.ID)))
		}
		for id, n := range nets {
			n.Touch()
			ops = append(ops, s.putJSON(Networks, id, n))
		}
		for _, pa := range pools {
			pc, po := s.poolAllocOps(pa)
			cmps, ops = append(cmps, pc...), append(ops, po...)
		}
		qc, qo, err := s.quotaClaim(ctx, Subnets, stds(out))
		if err != nil {
			return err
		}
		cmps, ops = append(cmps, qc...), append(ops, qo...)
		for _, sn := range out {
			ops = append(ops, s.indexOp(Subnets, &sn.Standard), s.putJSON(Subnets, sn.ID, sn))
			c, o, err := s.autoAddressExistingPorts(ctx, sn)
			if err != nil {
				return err
			}
			cmps, ops = append(cmps, c...), append(ops, o...)
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		return nil
	})
	return out, err
}

// newSubnet builds and validates a subnet from a create request.
func (s *Service) newSubnet(f model.Fields, project string) (*model.Subnet, error) {
	now := model.Now()
	sn := &model.Subnet{
		Standard:       model.Standard{ID: uuid.NewString(), ProjectID: project, CreatedAt: now, UpdatedAt: now, Tags: []string{}},
		NetworkID:      f["network_id"].(string),
		IPVersion:      f["ip_version"].(int),
		CIDR:           f["cidr"].(netip.Prefix), // given, or allocated from a pool
		EnableDHCP:     true,
		DNSNameservers: []netip.Addr{},
		HostRoutes:     []model.HostRoute{},
		ServiceTypes:   []string{},
	}
	if (sn.IPVersion == 4) != sn.CIDR.Addr().Is4() {
		return nil, apierr.InvalidInput("Cidr %s does not support IP version %d", sn.CIDR, sn.IPVersion)
	}
	if sn.CIDR.Bits() == 0 {
		return nil, apierr.InvalidInput("%s is not allowed as a subnet CIDR", sn.CIDR)
	}
	if sn.IPVersion == 4 && sn.CIDR.Bits() > 30 && sn.CIDR.Bits() < 32 {
		// /31 and /30-and-smaller leave no room for hosts and a gateway.
		sn.GatewayIP = netip.Addr{}
	}
	if v, ok := f["gateway_ip"]; ok {
		sn.GatewayIP = v.(netip.Addr)
	} else if sn.CIDR.Bits() < sn.CIDR.Addr().BitLen()-1 {
		sn.GatewayIP = ipam.DefaultGateway(sn.CIDR)
	}
	s.applySubnet(sn, f)
	if f.Has("allocation_pools") {
		sn.AllocationPools = f["allocation_pools"].([]ipam.Pool)
	} else {
		sn.AllocationPools = ipam.DefaultPools(sn.CIDR, sn.GatewayIP)
	}
	if sn.AllocationPools == nil {
		sn.AllocationPools = []ipam.Pool{}
	}
	if err := s.validateSubnet(sn); err != nil {
		return nil, err
	}
	return sn, nil
}

// applySubnet sets the attributes both create and update may change.
func (s *Service) applySubnet(sn *model.Subnet, f model.Fields) {
	sn.ApplyStandard(f)
	if v, ok := f["enable_dhcp"]; ok {
		sn.EnableDHCP = v.(bool)
	}
	if v, ok := f["dns_nameservers"]; ok {
		sn.DNSNameservers = v.([]netip.Addr)
	}
	if v, ok := f["host_routes"]; ok {
		sn.HostRoutes = v.([]model.HostRoute)
	}
	if v, ok := f["ipv6_ra_mode"]; ok {
		sn.IPv6RAMode = v.(string)
	}
	if v, ok := f["ipv6_address_mode"]; ok {
		sn.IPv6AddressMode = v.(string)
	}
	if v, ok := f["service_types"]; ok {
		sn.ServiceTypes = v.([]string)
	}
}

// validateSubnet checks a subnet's attributes against each other.
func (s *Service) validateSubnet(sn *model.Subnet) error {
	if g := sn.GatewayIP; g.IsValid() {
		if g.Is4() != sn.CIDR.Addr().Is4() {
			return apierr.InvalidInput("Gateway IP version inconsistent with allocation pool version")
		}
		if sn.CIDR.Contains(g) && ipam.IsNetworkOrBroadcast(sn.CIDR, g) {
			return apierr.InvalidInput("Gateway is not valid on subnet")
		}
	}
	if err := ipam.ValidatePools(sn.CIDR, sn.AllocationPools, sn.GatewayIP); err != nil {
		pe := err.(*ipam.PoolError)
		status := 400
		if pe.Kind == "OverlappingAllocationPools" || pe.Kind == "GatewayConflictWithAllocationPools" {
			status = 409
		}
		return &apierr.Error{Status: status, Type: pe.Kind, Message: pe.Message}
	}
	if len(sn.DNSNameservers) > s.cfg.MaxDNSNameservers {
		return apierr.New(400, "DNSNameServersExhausted", "Unable to complete operation for %s. The number of DNS nameservers exceeds the limit %d.", sn.ID, s.cfg.MaxDNSNameservers)
	}
	for _, a := range sn.DNSNameservers {
		if a.Is4() != sn.CIDR.Addr().Is4() && sn.IPVersion == 4 {
			return apierr.InvalidInput("DNS nameserver %s does not match the IP version of the subnet", a)
		}
	}
	if len(sn.HostRoutes) > s.cfg.MaxHostRoutes {
		return apierr.New(400, "HostRoutesExhausted", "Unable to complete operation for %s. The number of host routes exceeds the limit %d.", sn.ID, s.cfg.MaxHostRoutes)
	}
	for _, r := range sn.HostRoutes {
		if r.Destination.Addr().Is4() != sn.CIDR.Addr().Is4() || r.NextHop.Is4() != sn.CIDR.Addr().Is4() {
			return apierr.InvalidInput("Host route %s via %s does not match the IP version of the subnet", r.Destination, r.NextHop)
		}
	}
	return validateIPv6Modes(sn)
}

// validateIPv6Modes applies Neutron's rules on ipv6_ra_mode/ipv6_address_mode.
func validateIPv6Modes(sn *model.Subnet) error {
	ra, addr := sn.IPv6RAMode, sn.IPv6AddressMode
	if sn.IPVersion == 4 {
		if ra != "" || addr != "" {
			return apierr.InvalidInput("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False or ip_version is 4")
		}
		return nil
	}
	if ra != "" && addr != "" && ra != addr {
		return apierr.InvalidInput("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. If both attributes are set, they must be the same value", ra, addr)
	}
	if (addr == model.SLAAC || addr == model.DHCPv6Stateless) && sn.CIDR.Bits() != 64 {
		return apierr.InvalidInput("Invalid CIDR %s for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64", sn.CIDR)
	}
	return nil
}

// autoAddressExistingPorts gives every port already on a SLAAC subnet's
// network its EUI-64 address there, as Neutron does; router interfaces get
// addresses only when attached.
func (s *Service) autoAddressExistingPorts(ctx context.Context, sn *model.Subnet) ([]clientv3.Cmp, []clientv3.Op, error) {
	if !sn.AutoAddress() {
		return nil, nil, nil
	}
	prefix := s.st.Keys.NetworkPortPrefix(sn.NetworkID)
	resp, err := s.st.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, nil, storeErr(err)
	}
	cmps := []clientv3.Cmp{noneNewUnder(prefix, resp.Header.Revision)}
	var ops []clientv3.Op
	for _, kv := range resp.Kvs {
		p, rev, err := load[model.Port](ctx, s, Ports, strings.TrimPrefix(string(kv.Key), prefix))
		if err != nil {
			return nil, nil, err
		}
		if p == nil || strings.HasPrefix(p.DeviceOwner, "network:router") {
			continue
		}
		mac, _ := net.ParseMAC(p.MACAddress)
		ip, err := ipam.EUI64(sn.CIDR, mac)
		if err != nil {
			return nil, nil, apierr.InvalidInput("%v", err)
		}
		key := s.st.Keys.IPAlloc(sn.ID, ip.String())
		p.FixedIPs = append(p.FixedIPs, model.FixedIP{SubnetID: sn.ID, IPAddress: ip})
		p.Touch()
		cmps = append(cmps, unchanged(s.st.Keys.Resource(Ports, p.ID), rev), notExists(key))
		ops = append(ops, clientv3.OpPut(key, p.ID), s.putJSON(Ports, p.ID, p))
	}
	return cmps, ops, nil
}

// UpdateSubnet changes a subnet's mutable attributes.
func (s *Service) UpdateSubnet(ctx context.Context, id string, f model.Fields) (*model.Subnet, error) {
	c := creds(ctx)
	var out *model.Subnet
	err := retry(ctx, "update subnet", func() error {
		sn, rev, err := load[model.Subnet](ctx, s, Subnets, id)
		if err != nil {
			return err
		}
		var n *model.Network
		var nrev int64
		if sn != nil {
			if n, nrev, err = load[model.Network](ctx, s, Networks, sn.NetworkID); err != nil {
				return err
			}
		}
		if sn == nil || !policy.CanSeeSubnet(c, sn, n, s.grants(c, sn.NetworkID)) {
			return apierr.NotFound("Subnet", "Subnet", id)
		}
		if !policy.CanChange(c, sn.ProjectID) {
			return apierr.PolicyNotAuthorized("update_subnet")
		}
		if err := checkIfMatch(ctx, sn.RevisionNumber); err != nil {
			return err
		}
		if v, ok := f["gateway_ip"]; ok {
			sn.GatewayIP = v.(netip.Addr)
		}
		if v, ok := f["allocation_pools"]; ok {
			sn.AllocationPools = v.([]ipam.Pool)
		}
		s.applySubnet(sn, f)
		if err := s.validateSubnet(sn); err != nil {
			return err
		}
		sn.Touch()
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(Subnets, id), rev)}
		ops := []clientv3.Op{s.putJSON(Subnets, id, sn)}
		if n != nil {
			n.Touch()
			cmps = append(cmps, unchanged(s.st.Keys.Resource(Networks, n.ID), nrev))
			ops = append(ops, s.putJSON(Networks, n.ID, n))
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out = sn
		return nil
	})
	return out, err
}

// DeleteSubnet deletes a subnet no port has an address from.
func (s *Service) DeleteSubnet(ctx context.Context, id string) error {
	c := creds(ctx)
	return retry(ctx, "delete subnet", func() error {
		sn, rev, err := load[model.Subnet](ctx, s, Subnets, id)
		if err != nil {
			return err
		}
		var n *model.Network
		var nrev int64
		if sn != nil {
			if n, nrev, err = load[model.Network](ctx, s, Networks, sn.NetworkID); err != nil {
				return err
			}
		}
		if sn == nil || !policy.CanSeeSubnet(c, sn, n, s.grants(c, sn.NetworkID)) {
			return apierr.NotFound("Subnet", "Subnet", id)
		}
		if !policy.CanChange(c, sn.ProjectID) {
			return apierr.PolicyNotAuthorized("delete_subnet")
		}
		if err := checkIfMatch(ctx, sn.RevisionNumber); err != nil {
			return err
		}
		prefix := s.st.Keys.IPAllocPrefix(id)
		svcPorts, portRevs, onlyService, readRev, err := s.servicePorts(ctx, prefix, true)
		if err != nil {
			return err
		}
		if !onlyService {
			return apierr.Conflict("SubnetInUse", "Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
		}
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(Subnets, id), rev), noneNewUnder(prefix, readRev)}
		ops := append([]clientv3.Op{clientv3.OpDelete(s.st.Keys.Resource(Subnets, id)), clientv3.OpDelete(prefix, clientv3.WithPrefix())},
			s.releaseOps(Subnets, &sn.Standard)...)
		for i, p := range svcPorts {
			// Service ports lose their address on this subnet and stay.
			kept := p.FixedIPs[:0:0]
			for _, f := range p.FixedIPs {
				if f.SubnetID != id {
					kept = append(kept, f)
				}
			}
			p.FixedIPs = kept
			p.Touch()
			cmps = append(cmps, unchanged(s.st.Keys.Resource(Ports, p.ID), portRevs[i]))
			ops = append(ops, s.putJSON(Ports, p.ID, p))
		}
		if n != nil {
			kept := n.Subnets[:0:0]
			for _, x := range n.Subnets {
				if x != id {
					kept = append(kept, x)
				}
			}
			n.Subnets = kept
			n.Touch()
			cmps = append(cmps, unchanged(s.st.Keys.Resource(Networks, n.ID), nrev))
			ops = append(ops, s.putJSON(Networks, n.ID, n))
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil || ok {
			return err
		}
		return errConflict
	})
}
