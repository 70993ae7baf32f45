package service

import (
	"context"
	"net/netip"
	"slices"
	"strconv"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// Port forwardings live under res/port_forwardings/<id>. Every change to
// one rewrites its floating IP in the same transaction (with a compare on
// the floating IP's mod revision, and a new revision_number only when its
// router changes): changes to one floating IP's forwardings commit one at a
// time, each having seen the others, and the cache at the floating IP's
// mod revision holds exactly its forwardings.

func pfNotFound(id string) error {
	return apierr.New(404, "PortForwardingNotFound", "Port Forwarding %s could not be found.", id)
}

// GetPortForwarding returns a port forwarding of a floating IP the caller
// may see.
func (s *Service) GetPortForwarding(ctx context.Context, fipID, id string) (*model.PortForwarding, error) {
	if _, err := s.GetFloatingIP(ctx, fipID); err != nil {
		return nil, err
	}
	pf, ok := cachedAs[*model.PortForwarding](s, PortForwardings, id)
	if !ok || pf.FloatingIPID != fipID {
		return nil, pfNotFound(id)
	}
	return pf, nil
}

// PortForwardingsOf lists a floating IP's port forwardings as cached.
func (s *Service) PortForwardingsOf(ctx context.Context, fipID string) ([]*model.Cached, error) {
	if _, err := s.GetFloatingIP(ctx, fipID); err != nil {
		return nil, err
	}
	var out []*model.Cached
	for _, id := range s.idx.pfsOfFIP(fipID) {
		if it, ok := s.cache.Get(PortForwardings, id); ok {
			out = append(out, it.Value.(*model.Cached))
		}
	}
	return out, nil
}

// pfBadRequest is the BadRequest the port forwarding plugin raises.
func pfBadRequest(format string, args ...any) error {
	return badRequest("port_forwarding", format, args...)
}

// CreatePortForwarding adds a port forwarding to a floating IP.
func (s *Service) CreatePortForwarding(ctx context.Context, fipID string, f model.Fields) (*model.PortForwarding, error) {
	if !creds(ctx).CanWrite() {
		return nil, apierr.PolicyNotAuthorized("create_floatingip_port_forwarding")
	}
	var out *model.PortForwarding
	err := retry(ctx, "create port forwarding", func() error {
		fip, rev, err := s.loadFIP(ctx, fipID, "create_floatingip_port_forwarding")
		if err != nil {
			return err
		}
		pf := &model.PortForwarding{
			Standard:          model.Standard{ID: uuid.NewString(), ProjectID: fip.ProjectID},
			FloatingIPID:      fip.ID,
			Protocol:          f["protocol"].(string),
			InternalPortID:    f["internal_port_id"].(string),
			InternalIPAddress: f["internal_ip_address"].(netip.Addr),
		}
		pf.Description = stringOr(f, "description", "")
		if err := pf.ApplyPorts(f); err != nil {
			return pfBadRequest("%v", err)
		}
		if err := s.commitPF(ctx, fip, rev, pf, nil, 0); err != nil {
			return err
		}
		out = pf
		return nil
	})
	return out, err
}

// UpdatePortForwarding changes a port forwarding.
func (s *Service) UpdatePortForwarding(ctx context.Context, fipID, id string, f model.Fields) (*model.PortForwarding, error) {
	var out *model.PortForwarding
	err := retry(ctx, "update port forwarding", func() error {
		fip, rev, err := s.loadFIP(ctx, fipID, "update_floatingip_port_forwarding")
		if err != nil {
			return err
		}
		pf, pfRev, err := load[model.PortForwarding](ctx, s, PortForwardings, id)
		if err != nil {
			return err
		}
		if pf == nil || pf.FloatingIPID != fipID {
			return pfNotFound(id)
		}
		old := *pf
		pf.Protocol = stringOr(f, "protocol", pf.Protocol)
		pf.InternalPortID = stringOr(f, "internal_port_id", pf.InternalPortID)
		if v, ok := f["internal_ip_address"].(netip.Addr); ok {
			pf.InternalIPAddress = v
		}
		pf.Description = stringOr(f, "description", pf.Description)
		if err := pf.ApplyPorts(f); err != nil {
			return pfBadRequest("%v", err)
		}
		if err := s.commitPF(ctx, fip, rev, pf, &old, pfRev); err != nil {
			return err
		}
		out = pf
		return nil
	})
	return out, err
}

// commitPF validates a new or changed port forwarding as Neutron's port
// forwarding plugin and commits it with its floating IP.
func (s *Service) commitPF(ctx context.Context, fip *model.FloatingIP, fipRev int64, pf, old *model.PortForwarding, oldRev int64) error {
	c := creds(ctx)
	if pf.Internal.First == 0 {
		return pfBadRequest("An internal_port or internal_port_range is required")
	}
	if pf.External.First == 0 {
		return pfBadRequest("An external_port or external_port_range is required")
	}
	if pf.Internal.Len() > 0 && pf.Internal.Len() != pf.External.Len() {
		return pfBadRequest("Invalid ranges of internal and/or external ports. The relation between internal and external ports must be N-N or 1-N")
	}
	if err := s.waitCache(ctx, fipRev); err != nil {
		return err
	}
	for _, id := range s.idx.pfsToPort(pf.InternalPortID) {
		o, ok := cachedAs[*model.PortForwarding](s, PortForwardings, id)
		if ok && id != pf.ID && o.Protocol == pf.Protocol && o.InternalIPAddress == pf.InternalIPAddress && o.Internal.Overlaps(pf.Internal) {
			return pfBadRequest("There is a port collision with the internal_port_range. The following ranges collide: %s and %s", o.Internal, pf.Internal)
		}
	}
	var siblings []*model.PortForwarding
	for _, id := range s.idx.pfsOfFIP(fip.ID) {
		o, ok := cachedAs[*model.PortForwarding](s, PortForwardings, id)
		if !ok || id == pf.ID {
			continue
		}
		if o.Protocol == pf.Protocol && o.External.Overlaps(pf.External) {
			return pfBadRequest("There is a port collision with the external_port_range. The following ranges collide: %s and %s", o.External, pf.External)
		}
		siblings = append(siblings, o)
	}
	p := newPortPlan()
	if old == nil || old.InternalPortID != pf.InternalPortID {
		// PortHasBindingFloatingIP: a port with a floating IP of its own
		// takes no forwardings.
		prefix := s.st.Keys.PortL3Prefix(pf.InternalPortID)
		resp, err := s.st.Client.Get(ctx, prefix+"fip/", clientv3.WithPrefix())
		if err != nil {
			return storeErr(err)
		}
		p.cmps = append(p.cmps, noneNewUnder(prefix, resp.Header.Revision))
		if len(resp.Kvs) > 0 {
			addr := "?"
			other, err := s.portFIP(ctx, string(resp.Kvs[0].Value))
			if err != nil {
				return err
			}
			if other != nil {
				addr = other.FloatingIPAddress.String()
			}
			return apierr.Conflict("PortHasBindingFloatingIP", "Cannot create port forwarding to floating IP %s (%s) with port %s using fixed IP %s, as that port already has a binding floating IP.",
				addr, string(resp.Kvs[0].Value), pf.InternalPortID, pf.InternalIPAddress)
		}
	}
	if fip.PortID != "" {
		return apierr.Conflict("FloatingIPPortAlreadyAssociated", "Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
			fip.FloatingIPAddress, fip.ID, pf.InternalPortID, pf.InternalIPAddress, fip.FloatingNetworkID)
	}
	r, rrev, portRev, err := s.pfRouter(ctx, c, fip, pf, siblings)
	if err != nil {
		return err
	}
	p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(FloatingIPs, fip.ID), fipRev),
		unchanged(s.st.Keys.Resource(Routers, r.ID), rrev), unchanged(s.st.Keys.Resource(Ports, pf.InternalPortID), portRev))
	pfKey := s.st.Keys.Resource(PortForwardings, pf.ID)
	if old == nil {
		p.cmps = append(p.cmps, notExists(pfKey))
	} else {
		p.cmps = append(p.cmps, unchanged(pfKey, oldRev))
		if old.InternalPortID != pf.InternalPortID {
			p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.PortPF(old.InternalPortID, pf.ID)))
		}
	}
	p.ops = append(p.ops, s.putJSON(PortForwardings, pf.ID, pf), clientv3.OpPut(s.st.Keys.PortPF(pf.InternalPortID, pf.ID), fip.ID))
	if fip.RouterID == "" {
		fip.Touch()
	}
	s.setFIPRouter(p, fip, r.ID)
	fip.Status = s.fipStatus(fip)
	p.ops = append(p.ops, s.putJSON(FloatingIPs, fip.ID, fip))
	ok, err := s.commit(ctx, p.cmps, p.ops)
	if err != nil {
		return err
	}
	if !ok {
		return errConflict
	}
	return nil
}

// portFIP reads a floating IP by id from the cache or the store.
func (s *Service) portFIP(ctx context.Context, id string) (*model.FloatingIP, error) {
	if f, ok := cachedAs[*model.FloatingIP](s, FloatingIPs, id); ok {
		return f, nil
	}
	f, _, err := load[model.FloatingIP](ctx, s, FloatingIPs, id)
	return f, err
}

// pfRouter finds the router that will forward for pf, as Neutron's
// _find_a_router_for_fip_port_forwarding and _check_router_match.
// It also returns the router's and the internal port's mod revisions.
func (s *Service) pfRouter(ctx context.Context, c *policy.Credentials, fip *model.FloatingIP, pf *model.PortForwarding, siblings []*model.PortForwarding) (*model.Router, int64, int64, error) {
	port, portRev, err := s.portAt(ctx, pf.InternalPortID)
	if err != nil {
		return nil, 0, 0, err
	}
	var n *model.Network
	if port != nil {
		n, _ = cachedAs[*model.Network](s, Networks, port.NetworkID)
	}
	if port == nil || !policy.CanSeePort(c, port, n) {
		return nil, 0, 0, apierr.NotFound("Port", "Port", pf.InternalPortID)
	}
	var v4 []model.FixedIP
	for _, f := range port.FixedIPs {
		if f.IPAddress.Is4() {
			v4 = append(v4, f)
		}
	}
	if len(v4) == 0 {
		return nil, 0, 0, pfBadRequest("Requested internal port %s must allocate an IPv4 address at least", port.ID)
	}
	i := slices.IndexFunc(v4, func(f model.FixedIP) bool { return f.IPAddress == pf.InternalIPAddress })
	if i < 0 {
		return nil, 0, 0, pfBadRequest("Requested internal IP address %s is not suitable for internal neutron port %s, as its fixed_ips are %s", pf.InternalIPAddress, port.ID, fixedIPsRepr(v4))
	}
	r, rev, err := s.routerForFIP(ctx, port, v4[i].SubnetID, fip.FloatingNetworkID)
	if err != nil {
		return nil, 0, 0, err
	}
	if r == nil {
		return nil, 0, 0, pfBadRequest("External network %s is not reachable from subnet %s. Cannot set Port forwarding for port %s with Floating IP %s", fip.FloatingNetworkID, v4[i].SubnetID, port.ID, fip.ID)
	}
	if fip.RouterID != "" && fip.RouterID != r.ID && len(siblings) > 0 {
		for _, o := range siblings {
			if o.InternalIPAddress == pf.InternalIPAddress && o.Internal == pf.Internal {
				return nil, 0, 0, pfBadRequest("Floating IP %s with params: internal_ip_address: %s, internal_port: %s already exists", fip.ID, pf.InternalIPAddress, portOrRange(pf.Internal))
			}
		}
		return nil, 0, 0, pfBadRequest("The Floating IP %s had been set on router %s, the internal Neutron port %s can not reach it", fip.ID, fip.RouterID, port.ID)
	}
	return r, rev, portRev, nil
}

func portOrRange(r model.PortRange) string {
	if r.Single() {
		return strconv.Itoa(r.First)
	}
	return r.String()
}

// DeletePortForwarding removes a port forwarding; the floating IP's last
// one gone, the floating IP leaves its router.
func (s *Service) DeletePortForwarding(ctx context.Context, fipID, id string) error {
	return retry(ctx, "delete port forwarding", func() error {
		fip, rev, err := s.loadFIP(ctx, fipID, "delete_floatingip_port_forwarding")
		if err != nil {
			return err
		}
		pf, pfRev, err := load[model.PortForwarding](ctx, s, PortForwardings, id)
		if err != nil {
			return err
		}
		if pf == nil || pf.FloatingIPID != fipID {
			return pfNotFound(id)
		}
		if err := s.waitCache(ctx, rev); err != nil {
			return err
		}
		p := newPortPlan()
		p.cmps = append(p.cmps, unchanged(s.st.Keys.Resource(FloatingIPs, fipID), rev), unchanged(s.st.Keys.Resource(PortForwardings, id), pfRev))
		p.ops = append(p.ops, clientv3.OpDelete(s.st.Keys.Resource(PortForwardings, id)), clientv3.OpDelete(s.st.Keys.PortPF(pf.InternalPortID, id)))
		left := slices.DeleteFunc(s.idx.pfsOfFIP(fipID), func(x string) bool { return x == id })
		if len(left) == 0 && fip.PortID == "" && fip.RouterID != "" {
			s.setFIPRouter(p, fip, "")
			fip.Status = s.fipStatus(fip)
			fip.Touch()
		}
		p.ops = append(p.ops, s.putJSON(FloatingIPs, fipID, fip))
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
