package service

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/ipam"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// Device owners whose ports belong to the network's own services.
const (
	OwnerDHCP            = "network:dhcp"
	OwnerRouterInterface = "network:router_interface"
	OwnerRouterGateway   = "network:router_gateway"
)

// GetPort returns a port the caller may see.
func (s *Service) GetPort(ctx context.Context, id string) (*model.Port, error) {
	p, ok := cachedAs[*model.Port](s, Ports, id)
	if ok {
		n, _ := cachedAs[*model.Network](s, Networks, p.NetworkID)
		if policy.CanSeePort(creds(ctx), p, n) {
			return p, nil
		}
	}
	return nil, apierr.NotFound("Port", "Port", id)
}

// portPlan collects one request's transaction: what must hold and what to write.
type portPlan struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	// taken holds alloc keys this request already reserved, so that a bulk
	// create never hands one address to two of its ports.
	taken map[string]bool
	// explicit holds the keys the caller named (addresses, MACs): losing
	// one of them is the caller's conflict, not a race to retry.
	explicit map[string]error
}

func newPortPlan() *portPlan {
	return &portPlan{taken: map[string]bool{}, explicit: map[string]error{}}
}

// netView is a network and its subnets as read for one port operation.
type netView struct {
	net     *model.Network
	subnets []*model.Subnet
}

func (v *netView) subnet(id string) *model.Subnet {
	for _, sn := range v.subnets {
		if sn.ID == id {
			return sn
		}
	}
	return nil
}

// loadNetView reads a network and its subnets, from the cache when it has
// them (the store otherwise, for objects another server just wrote). Every
// write that depends on them compares their existence in its transaction,
// so a stale read can only make it retry, never write something wrong.
func (s *Service) loadNetView(ctx context.Context, netID string, p *portPlan) (*netView, error) {
	n, ok := cachedAs[*model.Network](s, Networks, netID)
	if !ok {
		var err error
		if n, _, err = load[model.Network](ctx, s, Networks, netID); err != nil {
			return nil, err
		}
	}
	if n == nil {
		return nil, apierr.NotFound("Network", "Network", netID)
	}
	v := &netView{net: n}
	p.cmps = append(p.cmps, exists(s.st.Keys.Resource(Networks, netID)))
	for _, id := range n.Subnets {
		sn, ok := cachedAs[*model.Subnet](s, Subnets, id)
		if !ok {
			var err error
			if sn, _, err = load[model.Subnet](ctx, s, Subnets, id); err != nil {
				return nil, err
			}
		}
		if sn != nil {
			v.subnets = append(v.subnets, sn)
		}
	}
	return v, nil
}

// CreatePorts creates one or more ports atomically.
func (s *Service) CreatePorts(ctx context.Context, items []model.Fields) ([]*model.Port, error) {
	return s.createPorts(ctx, items, true)
}

// createPorts creates ports; the network's own service ports (DHCP) are
// created without a quota claim, as Neutron's plugin-level creates.
func (s *Service) createPorts(ctx context.Context, items []model.Fields, quota bool) ([]*model.Port, error) {
	c := creds(ctx)
	var out []*model.Port
	err := retry(ctx, "create ports", func() error {
		out = out[:0]
		p := newPortPlan()
		views := map[string]*netView{}
		for _, f := range items {
			project, err := checkCreate(c, model.PortSpec, f)
			if err != nil {
				return err
			}
			netID := f["network_id"].(string)
			v, ok := views[netID]
			if !ok {
				if v, err = s.loadNetView(ctx, netID, p); err != nil {
					return err
				}
				views[netID] = v
			}
			if !policy.CanUseNetwork(c, v.net, s.grants(c, netID)) {
				return apierr.NotFound("Network", "Network", netID)
			}
			port, err := s.planPort(ctx, p, v, f, project)
			if err != nil {
				return err
			}
			out = append(out, port)
		}
		if quota {
			qc, qo, err := s.quotaClaim(ctx, Ports, stds(out))
			if err != nil {
				return err
			}
			p.cmps, p.ops = append(p.cmps, qc...), append(p.ops, qo...)
		}
		for _, port := range out {
			// Written last: quotaClaim recorded the slot in the object.
			p.ops = append(p.ops, s.putJSON(Ports, port.ID, port))
		}
		if err := s.commitPlan(ctx, p); err != nil {
			return err
		}
		return nil
	})
	return out, err
}

// planPort builds a new port and adds its reservations to the plan.
func (s *Service) planPort(ctx context.Context, p *portPlan, v *netView, f model.Fields, project string) (*model.Port, error) {
	now := model.Now()
	id := uuid.NewString()
	if given, ok := f["id"].(string); ok {
		// Only the server's own callers name ids (deterministic service ports).
		id = given
	}
	port := &model.Port{
		Standard:            model.Standard{ID: id, ProjectID: project, CreatedAt: now, UpdatedAt: now, Tags: []string{}},
		NetworkID:           v.net.ID,
		AdminStateUp:        true,
		Status:              model.StatusDown,
		VIFType:             model.VIFUnbound,
		VIFDetails:          map[string]any{},
		VNICType:            "normal",
		Profile:             map[string]any{},
		PortSecurityEnabled: v.net.PortSecurityEnabled,
		AllowedAddressPairs: []model.AddressPair{},
		SecurityGroups:      []string{},
		FixedIPs:            []model.FixedIP{},
		ExtraDHCPOpts:       []model.ExtraDHCPOpt{},
	}
	applyPort(port, f)
	if v, ok := f["mac_address"]; ok {
		port.MACAddress = v.(string)
	}
	s.bind(port, v.net)
	if err := s.planMAC(ctx, p, port, port.MACAddress != ""); err != nil {
		return nil, err
	}
	var reqs []model.FixedIPRequest
	explicit := false
	if !f.Has("fixed_ips") {
		var err error
		if reqs, err = defaultFixedIPs(v, port.DeviceOwner); err != nil {
			return nil, err
		}
	} else {
		reqs, explicit = f["fixed_ips"].([]model.FixedIPRequest), true
	}
	ips, err := s.planFixedIPs(ctx, p, v, port, reqs, explicit, nil)
	if err != nil {
		return nil, err
	}
	port.FixedIPs = ips
	if err := checkAddressPairs(port); err != nil {
		return nil, err
	}
	if err := s.planPortGroups(ctx, p, port, f); err != nil {
		return nil, err
	}
	portKey := s.st.Keys.Resource(Ports, port.ID)
	p.cmps = append(p.cmps, notExists(portKey))
	p.explicit[portKey] = apierr.Conflict("PortExists", "Port %s already exists.", port.ID)
	p.ops = append(p.ops, s.indexOp(Ports, &port.Standard),
		clientv3.OpPut(s.st.Keys.NetworkPort(v.net.ID, port.ID), ""))
	return port, nil
}

// applyPort sets the attributes create and update share.
func applyPort(port *model.Port, f model.Fields) {
	port.ApplyStandard(f)
	port.DeviceID = stringOr(f, "device_id", port.DeviceID)
	port.DeviceOwner = stringOr(f, "device_owner", port.DeviceOwner)
	port.HostID = stringOr(f, "binding:host_id", port.HostID)
	port.VNICType = stringOr(f, "binding:vnic_type", port.VNICType)
	if v, ok := f["admin_state_up"]; ok {
		port.AdminStateUp = v.(bool)
	}
	if v, ok := f["binding:profile"]; ok {
		port.Profile = v.(map[string]any)
	}
	if v, ok := f["port_security_enabled"]; ok {
		port.PortSecurityEnabled = v.(bool)
	}
	if v, ok := f["allowed_address_pairs"]; ok {
		port.AllowedAddressPairs = v.([]model.AddressPair)
	}
	if v, ok := f["security_groups"]; ok {
		port.SecurityGroups = v.([]string)
	}
	if v, ok := f["dns_name"]; ok {
		port.DNSName = v.(string)
	}
	if v, ok := f["extra_dhcp_opts"]; ok {
		port.ExtraDHCPOpts = model.MergeDHCPOpts(port.ExtraDHCPOpts, v.([]model.ExtraDHCPOpt))
	}
}

func stringOr(f model.Fields, k, def string) string {
	if v, ok := f[k]; ok {
		return v.(string)
	}
	return def
}

// checkAddressPairs refuses address pairs on a port without port security,
// as Neutron does.
func checkAddressPairs(port *model.Port) error {
	if !port.PortSecurityEnabled && len(port.AllowedAddressPairs) > 0 {
		return apierr.Conflict("AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
	}
	return nil
}

// planMAC reserves the port's MAC in its network, generating one if asked.
func (s *Service) planMAC(ctx context.Context, p *portPlan, port *model.Port, given bool) error {
	for try := 0; ; try++ {
		if !given {
			port.MACAddress = s.randomMAC()
		}
		key := s.st.Keys.MACAlloc(port.NetworkID, port.MACAddress)
		// The index knows the network's MACs: a generated one is checked
		// there (a full network makes collisions likely: 100,000 ports hold
		// 0.6% of the 2^24 MACs of a base), the transaction settles races.
		inUse := p.taken[key] || !given && s.idx.macUsed(port.NetworkID, port.MACAddress)
		if !inUse && given {
			resp, err := s.st.Client.Get(ctx, key, clientv3.WithCountOnly(), clientv3.WithSerializable())
			if err != nil {
				return storeErr(err)
			}
			inUse = resp.Count > 0
		}
		if !inUse {
			p.taken[key] = true
			p.cmps = append(p.cmps, notExists(key))
			p.ops = append(p.ops, clientv3.OpPut(key, port.ID))
			if given {
				p.explicit[key] = macInUse(port.NetworkID, port.MACAddress)
			}
			return nil
		}
		if given {
			return macInUse(port.NetworkID, port.MACAddress)
		}
		if try > 16 {
			return apierr.Conflict("MacAddressGenerationFailure", "Unable to generate unique mac on network %s.", port.NetworkID)
		}
	}
}

func macInUse(netID, mac string) error {
	return apierr.Conflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", netID, mac)
}

// randomMAC returns base_mac's first three octets and three random ones.
func (s *Service) randomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	mac := net.HardwareAddr{s.cfg.MACBase[0], s.cfg.MACBase[1], s.cfg.MACBase[2], b[0], b[1], b[2]}
	return mac.String()
}

// defaultFixedIPs is what a port gets when fixed_ips is not given, as
// Neutron: one address from an IPv4 subnet, one from a stateful IPv6
// subnet, and an automatic address in every SLAAC subnet, among the
// subnets that serve the port's device owner (subnets typed for it first).
func defaultFixedIPs(v *netView, owner string) ([]model.FixedIPRequest, error) {
	var reqs []model.FixedIPRequest
	var v4, v6 []*model.Subnet
	for _, sn := range eligible(v.subnets, owner) {
		switch {
		case sn.AutoAddress():
			reqs = append(reqs, model.FixedIPRequest{SubnetID: sn.ID})
		case sn.IPVersion == 4:
			v4 = append(v4, sn)
		default:
			v6 = append(v6, sn)
		}
	}
	if len(v.subnets) > 0 && len(reqs)+len(v4)+len(v6) == 0 {
		return nil, noMatchingSubnet(v.net.ID, owner)
	}
	// Any subnet of a family will do; planFixedIPs falls through to the
	// next one when a subnet is full (see anyOf).
	if len(v4) > 0 {
		reqs = append(reqs, model.FixedIPRequest{SubnetID: anyOf(v4)})
	}
	if len(v6) > 0 {
		reqs = append(reqs, model.FixedIPRequest{SubnetID: anyOf(v6)})
	}
	return reqs, nil
}

// eligible returns the subnets serving a device owner, typed ones first.
func eligible(subnets []*model.Subnet, owner string) []*model.Subnet {
	var typed, untyped []*model.Subnet
	for _, sn := range subnets {
		switch {
		case len(sn.ServiceTypes) == 0:
			untyped = append(untyped, sn)
		case sn.ServesOwner(owner):
			typed = append(typed, sn)
		}
	}
	return append(typed, untyped...)
}

func noMatchingSubnet(netID, owner string) error {
	return apierr.Conflict("IpAddressGenerationFailureNoMatchingSubnet",
		"No valid service subnet for the given device owner, network %s, service type %s.", netID, owner)
}

// anyOf encodes "the first of these subnets with room" as a request id.
func anyOf(subnets []*model.Subnet) string {
	ids := make([]string, len(subnets))
	for i, sn := range subnets {
		ids[i] = sn.ID
	}
	return strings.Join(ids, ",")
}

// planFixedIPs resolves and reserves a port's addresses. held are the
// addresses the port already has (on update), which it keeps if asked for.
func (s *Service) planFixedIPs(ctx context.Context, p *portPlan, v *netView, port *model.Port,
	reqs []model.FixedIPRequest, explicit bool, held []model.FixedIP) ([]model.FixedIP, error) {
	if len(reqs) > s.cfg.MaxFixedIPsPerPort && explicit {
		return nil, apierr.New(400, "InvalidInput", "Invalid input for operation: Exceeded maximum amount of fixed ips per port.")
	}
	out := []model.FixedIP{}
	seen := map[netip.Addr]bool{}
	for _, r := range reqs {
		fip, err := s.planOneIP(ctx, p, v, port, r, explicit, held)
		if err != nil {
			return nil, err
		}
		if seen[fip.IPAddress] {
			return nil, apierr.InvalidInput("Duplicate IP address '%s'", fip.IPAddress)
		}
		seen[fip.IPAddress] = true
		out = append(out, fip)
	}
	return out, nil
}

func (s *Service) planOneIP(ctx context.Context, p *portPlan, v *netView, port *model.Port,
	r model.FixedIPRequest, explicit bool, held []model.FixedIP) (model.FixedIP, error) {
	netID := v.net.ID
	if strings.Contains(r.SubnetID, ",") {
		var lastErr error
		for _, id := range strings.Split(r.SubnetID, ",") {
			fip, err := s.planOneIP(ctx, p, v, port, model.FixedIPRequest{SubnetID: id}, explicit, held)
			if err == nil {
				return fip, nil
			}
			lastErr = err
		}
		return model.FixedIP{}, lastErr
	}
	var sn *model.Subnet
	switch {
	case r.SubnetID != "":
		if sn = v.subnet(r.SubnetID); sn == nil {
			return model.FixedIP{}, apierr.InvalidInput("Failed to create port on network %s, because fixed_ips included invalid subnet %s", netID, r.SubnetID)
		}
		if r.IPAddress.IsValid() && !sn.CIDR.Contains(r.IPAddress) {
			return model.FixedIP{}, apierr.New(400, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", r.IPAddress)
		}
	default:
		for _, c := range v.subnets {
			if c.CIDR.Contains(r.IPAddress) {
				sn = c
				break
			}
		}
		if sn == nil {
			return model.FixedIP{}, apierr.New(400, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of the subnets on the specified network.", r.IPAddress)
		}
	}
	for _, h := range held {
		if h.SubnetID == sn.ID && (!r.IPAddress.IsValid() || h.IPAddress == r.IPAddress) && !sn.AutoAddress() {
			return h, nil // kept: its reservation stays as it is
		}
	}
	if !sn.ServesOwner(port.DeviceOwner) {
		return model.FixedIP{}, noMatchingSubnet(netID, port.DeviceOwner)
	}
	var ip netip.Addr
	// Router interfaces take the subnet's gateway even on SLAAC subnets,
	// as in Neutron: the router is what announces the prefix there.
	routerIface := port.DeviceOwner == model.OwnerRouterInterface || port.DeviceOwner == "network:router_interface_distributed"
	switch {
	case sn.AutoAddress() && !(routerIface && r.IPAddress.IsValid()):
		if r.IPAddress.IsValid() {
			return model.FixedIP{}, apierr.New(400, "AllocationOnAutoAddressSubnet", "IPv6 address %s cannot be directly assigned to a port on subnet %s as the subnet is configured for automatic addresses", r.IPAddress, sn.ID)
		}
		mac, _ := net.ParseMAC(port.MACAddress)
		a, err := ipam.EUI64(sn.CIDR, mac)
		if err != nil {
			return model.FixedIP{}, apierr.InvalidInput("%v", err)
		}
		ip = a
		for _, h := range held {
			if h.SubnetID == sn.ID && h.IPAddress == ip {
				return h, nil
			}
		}
	case r.IPAddress.IsValid():
		ip = r.IPAddress
		if ipam.IsNetworkOrBroadcast(sn.CIDR, ip) {
			return model.FixedIP{}, apierr.New(400, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", ip)
		}
		if ip == sn.GatewayIP && !strings.HasPrefix(port.DeviceOwner, "network:router") {
			return model.FixedIP{}, ipInUse(ip, sn.ID)
		}
	default:
		pick := ipam.Pick
		if port.DeviceOwner == OwnerDHCP {
			pick = ipam.PickFirst
		}
		a, ok := pick(sn.AllocationPools, func(a netip.Addr) bool {
			return s.idx.ipUsed(sn.ID, a) || p.taken[s.st.Keys.IPAlloc(sn.ID, a.String())]
		})
		if !ok {
			return model.FixedIP{}, apierr.Conflict("IpAddressGenerationFailure", "No more IP addresses available on network %s.", netID)
		}
		ip = a
	}
	key := s.st.Keys.IPAlloc(sn.ID, ip.String())
	if p.taken[key] {
		return model.FixedIP{}, ipInUse(ip, sn.ID)
	}
	p.taken[key] = true
	p.cmps = append(p.cmps, notExists(key), exists(s.st.Keys.Resource(Subnets, sn.ID)))
	p.ops = append(p.ops, clientv3.OpPut(key, port.ID))
	if r.IPAddress.IsValid() || sn.AutoAddress() {
		p.explicit[key] = ipInUse(ip, sn.ID)
	}
	return model.FixedIP{SubnetID: sn.ID, IPAddress: ip}, nil
}

func ipInUse(ip netip.Addr, subnetID string) error {
	return apierr.Conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ip, subnetID)
}

// commitPlan commits a port plan's transaction; a failed compare is
// explained (which address or MAC was taken) rather than retried blindly.
func (s *Service) commitPlan(ctx context.Context, p *portPlan) error {
	ok, err := s.commit(ctx, p.cmps, p.ops)
	if err != nil {
		return err
	}
	if !ok {
		return s.explainPortConflict(ctx, p)
	}
	return nil
}

// explainPortConflict finds which reservation a failed transaction lost: a
// named address or MAC is the caller's 409; anything else is a race to retry.
func (s *Service) explainPortConflict(ctx context.Context, p *portPlan) error {
	keys := make([]string, 0, len(p.explicit))
	for k := range p.explicit {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		resp, err := s.st.Client.Get(ctx, k, clientv3.WithCountOnly())
		if err != nil {
			return storeErr(err)
		}
		if resp.Count > 0 {
			return p.explicit[k]
		}
	}
	return errConflict
}

// UpdatePort changes a port; a fixed_ips change releases and reserves
// addresses in the same transaction.
func (s *Service) UpdatePort(ctx context.Context, id string, f model.Fields) (*model.Port, error) {
	c := creds(ctx)
	if !c.IsAdmin() {
		if given := model.PortSpec.AdminOnlyGiven(f); len(given) > 0 {
			return nil, apierr.PolicyNotAuthorized("update_port:" + given[0])
		}
		if f.Has("mac_address") {
			return nil, apierr.PolicyNotAuthorized("update_port:mac_address")
		}
	}
	var out *model.Port
	err := retry(ctx, "update port", func() error {
		port, rev, err := load[model.Port](ctx, s, Ports, id)
		if err != nil {
			return err
		}
		if port == nil {
			return apierr.NotFound("Port", "Port", id)
		}
		n, _ := cachedAs[*model.Network](s, Networks, port.NetworkID)
		if !policy.CanSeePort(c, port, n) {
			return apierr.NotFound("Port", "Port", id)
		}
		if !policy.CanChange(c, port.ProjectID) && !(n != nil && policy.CanChange(c, n.ProjectID)) {
			return apierr.PolicyNotAuthorized("update_port")
		}
		if err := checkIfMatch(ctx, port.RevisionNumber); err != nil {
			return err
		}
		p := newPortPlan()
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(Ports, id), rev))
		oldMAC, oldIPs, oldSGs := port.MACAddress, port.FixedIPs, port.SecurityGroups
		applyPort(port, f)
		if err := s.planPortUpdate(ctx, p, port, f, oldMAC, oldIPs); err != nil {
			return err
		}
		if f.Has("fixed_ips") {
			// Floating IPs and port forwardings follow the addresses.
			lc, lo, err := s.l3PortUpdate(ctx, port, oldIPs)
			if err != nil {
				return err
			}
			p.cmps, p.ops = append(p.cmps, lc...), append(p.ops, lo...)
		}
		if f.Has("binding:host_id") && n != nil {
			s.bind(port, n)
		}
		if err := checkAddressPairs(port); err != nil {
			return err
		}
		if err := s.planPortGroupsUpdate(ctx, p, port, f, oldSGs); err != nil {
			return err
		}
		port.Touch()
		p.ops = append(p.ops, s.putJSON(Ports, id, port))
		if err := s.commitPlan(ctx, p); err != nil {
			return err
		}
		out = port
		return nil
	})
	return out, err
}

// planPortUpdate reserves a changed MAC and changed addresses and releases
// the old ones.
func (s *Service) planPortUpdate(ctx context.Context, p *portPlan, port *model.Port, f model.Fields, oldMAC string, oldIPs []model.FixedIP) error {
	macChanged := f.Has("mac_address") && f["mac_address"].(string) != oldMAC
	if !f.Has("fixed_ips") && !macChanged {
		return nil
	}
	v, err := s.loadNetView(ctx, port.NetworkID, p)
	if err != nil {
		return err
	}
	if macChanged {
		if port.HostID != "" {
			return apierr.Conflict("PortBound", "Unable to complete operation on port %s, port is already bound, port type: %s, old_mac %s, new_mac %s.", port.ID, port.VIFType, oldMAC, f["mac_address"])
		}
		port.MACAddress = f["mac_address"].(string)
		// A null MAC asks for a new generated one (port-mac-address-regenerate).
		if err := s.planMAC(ctx, p, port, port.MACAddress != ""); err != nil {
			return err
		}
		p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.MACAlloc(port.NetworkID, oldMAC)))
	}
	reqs := make([]model.FixedIPRequest, 0, len(oldIPs))
	for _, h := range oldIPs {
		r := model.FixedIPRequest{SubnetID: h.SubnetID, IPAddress: h.IPAddress}
		if sn := v.subnet(h.SubnetID); sn != nil && sn.AutoAddress() {
			// Automatic addresses follow the MAC: ask for the subnet only.
			r.IPAddress = netip.Addr{}
		}
		reqs = append(reqs, r)
	}
	if f.Has("fixed_ips") {
		reqs = f["fixed_ips"].([]model.FixedIPRequest)
	}
	ips, err := s.planFixedIPs(ctx, p, v, port, reqs, true, oldIPs)
	if err != nil {
		return err
	}
	for _, h := range oldIPs {
		if !slices.Contains(ips, h) {
			p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.IPAlloc(h.SubnetID, h.IPAddress.String())))
		}
	}
	port.FixedIPs = ips
	return nil
}

// DeletePort deletes a port and releases its addresses and MAC.
func (s *Service) DeletePort(ctx context.Context, id string) error {
	c := creds(ctx)
	return retry(ctx, "delete port", func() error {
		port, rev, err := load[model.Port](ctx, s, Ports, id)
		if err != nil {
			return err
		}
		if port == nil {
			return apierr.NotFound("Port", "Port", id)
		}
		n, _ := cachedAs[*model.Network](s, Networks, port.NetworkID)
		if !policy.CanSeePort(c, port, n) {
			return apierr.NotFound("Port", "Port", id)
		}
		if !policy.CanChange(c, port.ProjectID) && !(n != nil && policy.CanChange(c, n.ProjectID)) {
			return apierr.PolicyNotAuthorized("delete_port")
		}
		if err := checkIfMatch(ctx, port.RevisionNumber); err != nil {
			return err
		}
		// Router and floating IP ports are refused; floating IPs and port
		// forwardings targeting the port go with it.
		lc, lo, err := s.l3PortDelete(ctx, port)
		if err != nil {
			return err
		}
		cmps := append([]clientv3.Cmp{unchanged(s.st.Keys.Resource(Ports, id), rev)}, lc...)
		ok, err := s.commit(ctx, cmps, append(s.portDeleteOps(port), lo...))
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		return nil
	})
}

// portDeleteOps are the operations removing a port and everything it holds.
func (s *Service) portDeleteOps(port *model.Port) []clientv3.Op {
	ops := []clientv3.Op{
		clientv3.OpDelete(s.st.Keys.Resource(Ports, port.ID)),
		clientv3.OpDelete(s.st.Keys.NetworkPort(port.NetworkID, port.ID)),
		clientv3.OpDelete(s.st.Keys.MACAlloc(port.NetworkID, port.MACAddress)),
	}
	ops = append(ops, s.releaseOps(Ports, &port.Standard)...)
	ops = append(ops, s.portGroupDeleteOps(port)...)
	for _, f := range port.FixedIPs {
		ops = append(ops, clientv3.OpDelete(s.st.Keys.IPAlloc(f.SubnetID, f.IPAddress.String())))
	}
	return ops
}

// autoDeleteOwners are device owners whose ports belong to the network's
// own services: deleting the network or subnet takes them along, as
// Neutron's AUTO_DELETE_PORT_OWNERS.
var autoDeleteOwners = []string{OwnerDHCP, "network:distributed", "network:floatingip_agent_gateway"}

// servicePorts reads the ports whose ids are the values (or last key
// element) of the keys under prefix, and reports whether all of them are
// service ports; rev is the revision of the read.
func (s *Service) servicePorts(ctx context.Context, prefix string, idFromValue bool) (ports []*model.Port, revs []int64, onlyService bool, rev int64, err error) {
	resp, err := s.st.Client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, false, 0, storeErr(err)
	}
	seen := map[string]bool{}
	for _, kv := range resp.Kvs {
		id := string(kv.Value)
		if !idFromValue {
			id = strings.TrimPrefix(string(kv.Key), prefix)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		p, prev, err := load[model.Port](ctx, s, Ports, id)
		if err != nil {
			return nil, nil, false, 0, err
		}
		if p == nil {
			continue
		}
		if !slices.Contains(autoDeleteOwners, p.DeviceOwner) {
			return nil, nil, false, resp.Header.Revision, nil
		}
		ports, revs = append(ports, p), append(revs, prev)
	}
	return ports, revs, true, resp.Header.Revision, nil
}
