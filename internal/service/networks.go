package service

import (
	"context"
	"strconv"
	"strings"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/segments"
)

// GetNetwork returns a network the caller may see.
func (s *Service) GetNetwork(ctx context.Context, id string) (*model.Network, error) {
	n, ok := cachedAs[*model.Network](s, Networks, id)
	if !ok || !policy.CanSeeNetwork(creds(ctx), n, s.grants(creds(ctx), id)) {
		return nil, apierr.NotFound("Network", "Network", id)
	}
	return n, nil
}

// checkCreate applies the policy every create shares: writers only, their
// own project unless admin, admin-only attributes for admins.
func checkCreate(c *policy.Credentials, spec *model.Spec, f model.Fields) (project string, err error) {
	if !c.CanWrite() {
		return "", apierr.PolicyNotAuthorized("create_" + spec.Singular)
	}
	project = c.ProjectID
	if p, ok := f["project_id"]; ok && p.(string) != "" {
		project = p.(string)
	}
	if !c.IsAdmin() {
		if project != c.ProjectID {
			return "", apierr.PolicyNotAuthorized("create_" + spec.Singular)
		}
		if given := spec.AdminOnlyGiven(f); len(given) > 0 {
			return "", apierr.PolicyNotAuthorized("create_" + spec.Singular + ":" + given[0])
		}
	}
	if project == "" {
		return "", apierr.BadRequest("Failed to parse request. Required attribute 'project_id' not specified")
	}
	return project, nil
}

// netPlan is a network create waiting to be committed.
type netPlan struct {
	net  *model.Network
	cmps []clientv3.Cmp
	ops  []clientv3.Op
}

// CreateNetworks creates one or more networks atomically.
func (s *Service) CreateNetworks(ctx context.Context, items []model.Fields) ([]*model.Network, error) {
	c := creds(ctx)
	var out []*model.Network
	err := retry(ctx, "create networks", func() error {
		out = out[:0]
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		taken := map[string]bool{} // segment keys reserved by this request
		for _, f := range items {
			if !c.IsAdmin() {
				for _, a := range []string{"shared", "router:external"} {
					if v, ok := f[a]; ok && v.(bool) {
						return apierr.PolicyNotAuthorized("create_network:" + a)
					}
				}
			}
			p, err := s.planNetwork(ctx, c, f, taken)
			if err != nil {
				return err
			}
			out = append(out, p.net)
			cmps = append(cmps, p.cmps...)
			ops = append(ops, p.ops...)
		}
		qc, qo, err := s.quotaClaim(ctx, Networks, stds(out))
		if err != nil {
			return err
		}
		cmps, ops = append(cmps, qc...), append(ops, qo...)
		for _, n := range out {
			// Written last: quotaClaim recorded the slot in the object.
			ops = append(ops, s.indexOp(Networks, &n.Standard), s.putJSON(Networks, n.ID, n))
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		if !ok {
			// A segment id chosen concurrently, or one an admin asked for that
			// is now taken: the next plan reads the allocations again.
			return s.explainSegmentConflict(ctx, items, out)
		}
		return nil
	})
	return out, err
}

func (s *Service) planNetwork(ctx context.Context, c *policy.Credentials, f model.Fields, taken map[string]bool) (*netPlan, error) {
	project, err := checkCreate(c, model.NetworkSpec, f)
	if err != nil {
		return nil, err
	}
	now := model.Now()
	n := &model.Network{
		Standard:            model.Standard{ID: uuid.NewString(), ProjectID: project, CreatedAt: now, UpdatedAt: now, Tags: []string{}},
		AdminStateUp:        true,
		Status:              model.StatusActive,
		Subnets:             []string{},
		PortSecurityEnabled: true,
	}
	n.Apply(f)
	if err := s.checkAZHints(n.AZHints); err != nil {
		return nil, err
	}
	p := &netPlan{net: n}
	if n.Shared {
		c, o, _ := s.wildcardOps(ctx, n, model.AccessAsShared, true)
		p.cmps, p.ops = append(p.cmps, c...), append(p.ops, o...)
	}
	if n.External {
		c, o, _ := s.wildcardOps(ctx, n, model.AccessAsExternal, true)
		p.cmps, p.ops = append(p.cmps, c...), append(p.ops, o...)
	}
	segs, err := s.segmentsFor(ctx, f, p, taken)
	if err != nil {
		return nil, err
	}
	n.Segments = segs
	max := s.cfg.Segments.MTU(segs)
	if f.Has("mtu") {
		if n.MTU > max {
			return nil, apierr.InvalidInput("Requested MTU is too big, maximum is %d", max)
		}
	} else {
		n.MTU = max
	}
	p.cmps = append(p.cmps, notExists(s.st.Keys.Resource(Networks, n.ID)))
	return p, nil
}

// segmentsFor validates the provider segments asked for, or allocates a
// tenant segment, adding the reservations to the plan.
func (s *Service) segmentsFor(ctx context.Context, f model.Fields, p *netPlan, taken map[string]bool) ([]segments.Segment, error) {
	var reqs []model.SegmentRequest
	single := f.Has("provider:network_type") || f.Has("provider:physical_network") || f.Has("provider:segmentation_id")
	if single && f.Has("segments") {
		return nil, apierr.New(400, "SegmentsSetInConjunctionWithProviders", "Segments and provider values cannot both be set.")
	}
	switch {
	case single:
		sr, err := model.SegmentFromFields(f)
		if err != nil {
			return nil, apierr.InvalidAttr("provider", err.Error())
		}
		reqs = []model.SegmentRequest{sr}
	case f.Has("segments"):
		reqs = f["segments"].([]model.SegmentRequest)
		if len(reqs) == 0 {
			return nil, apierr.InvalidInput("segments must not be empty")
		}
	default:
		seg, err := s.tenantSegment(ctx, p, taken)
		if err != nil {
			return nil, err
		}
		return []segments.Segment{seg}, nil
	}
	var out []segments.Segment
	for _, r := range reqs {
		seg := segments.Segment{NetworkType: r.NetworkType}
		if r.PhysicalNetwork != "" {
			pn := r.PhysicalNetwork
			seg.PhysicalNetwork = &pn
		}
		if r.SegmentationID >= 0 {
			id := uint32(r.SegmentationID)
			seg.SegmentationID = &id
		}
		if err := s.cfg.Segments.ValidateProvider(&seg); err != nil {
			se := err.(*segments.Error)
			return nil, &apierr.Error{Status: se.Status, Type: se.Type, Message: se.Message}
		}
		if err := s.reserveSegment(ctx, &seg, p, taken); err != nil {
			return nil, err
		}
		out = append(out, seg)
	}
	return out, nil
}

// tenantSegment allocates a segment of the first tenant type that has room.
func (s *Service) tenantSegment(ctx context.Context, p *netPlan, taken map[string]bool) (segments.Segment, error) {
	for _, t := range s.cfg.Segments.TenantTypes {
		switch t {
		case segments.Local:
			return segments.Segment{NetworkType: segments.Local}, nil
		case segments.VXLAN:
			seg := segments.Segment{NetworkType: segments.VXLAN}
			if err := s.reserveSegment(ctx, &seg, p, taken); err == nil {
				return seg, nil
			} else if e, ok := apierr.As(err); !ok || e.Type != "NoNetworkAvailable" {
				return seg, err
			}
		case segments.VLAN:
			for _, phys := range s.cfg.Segments.VLANPhysnets() {
				pn := phys
				seg := segments.Segment{NetworkType: segments.VLAN, PhysicalNetwork: &pn}
				if err := s.reserveSegment(ctx, &seg, p, taken); err == nil {
					return seg, nil
				} else if e, ok := apierr.As(err); !ok || e.Type != "NoNetworkAvailable" {
					return seg, err
				}
			}
		}
	}
	return segments.Segment{}, apierr.Unavailable("NoNetworkAvailable", "Unable to create the network. No tenant network is available for allocation.")
}

// reserveSegment adds the reservation of seg's id to the plan, choosing a
// free id first when seg has none.
func (s *Service) reserveSegment(ctx context.Context, seg *segments.Segment, p *netPlan, taken map[string]bool) error {
	phys := seg.Physnet()
	switch seg.NetworkType {
	case segments.Local:
		return nil
	case segments.Flat:
		key := s.st.Keys.FlatAlloc(phys)
		if taken[key] {
			return apierr.Conflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", phys)
		}
		resp, err := s.st.Client.Get(ctx, key, clientv3.WithCountOnly())
		if err != nil {
			return storeErr(err)
		}
		if resp.Count > 0 {
			return apierr.Conflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", phys)
		}
		taken[key] = true
		p.cmps = append(p.cmps, notExists(key))
		p.ops = append(p.ops, clientv3.OpPut(key, p.net.ID))
		return nil
	}
	if seg.SegmentationID == nil {
		ranges := s.cfg.Segments.TenantRanges(seg.NetworkType, phys)
		used, err := s.usedSegments(ctx, seg.NetworkType, phys)
		if err != nil {
			return err
		}
		id, ok := segments.Pick(ranges, func(id uint32) bool {
			k := s.st.Keys.SegmentAlloc(seg.NetworkType, phys, strconv.FormatUint(uint64(id), 10))
			return used[id] || taken[k]
		})
		if !ok {
			return apierr.Unavailable("NoNetworkAvailable", "Unable to create the network. No tenant network is available for allocation.")
		}
		seg.SegmentationID = &id
	} else {
		k := s.st.Keys.SegmentAlloc(seg.NetworkType, phys, strconv.FormatUint(uint64(*seg.SegmentationID), 10))
		resp, err := s.st.Client.Get(ctx, k, clientv3.WithCountOnly())
		if err != nil {
			return storeErr(err)
		}
		if resp.Count > 0 || taken[k] {
			return segmentInUse(*seg)
		}
	}
	key := s.st.Keys.SegmentAlloc(seg.NetworkType, phys, strconv.FormatUint(uint64(*seg.SegmentationID), 10))
	taken[key] = true
	p.cmps = append(p.cmps, notExists(key))
	p.ops = append(p.ops, clientv3.OpPut(key, p.net.ID))
	return nil
}

func segmentInUse(seg segments.Segment) error {
	if seg.NetworkType == segments.VLAN {
		return apierr.Conflict("VlanIdInUse", "Unable to create the network. The VLAN %d on physical network %s is in use.", *seg.SegmentationID, seg.Physnet())
	}
	return apierr.Conflict("TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", *seg.SegmentationID)
}

// usedSegments reads the reserved ids of a type (and physnet) from the store.
func (s *Service) usedSegments(ctx context.Context, netType, phys string) (map[uint32]bool, error) {
	prefix := strings.TrimSuffix(s.st.Keys.SegmentAlloc(netType, phys, "x"), "x")
	resp, err := s.st.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, storeErr(err)
	}
	used := make(map[uint32]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if id, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), prefix), 10, 32); err == nil {
			used[uint32(id)] = true
		}
	}
	return used, nil
}

// explainSegmentConflict turns a failed network transaction into the error
// an admin's explicit request deserves, or errConflict to try again.
func (s *Service) explainSegmentConflict(ctx context.Context, items []model.Fields, nets []*model.Network) error {
	for i, n := range nets {
		if !items[i].Has("provider:segmentation_id") && !items[i].Has("segments") && !items[i].Has("provider:physical_network") {
			continue
		}
		for _, seg := range n.Segments {
			var key string
			switch {
			case seg.NetworkType == segments.Flat:
				key = s.st.Keys.FlatAlloc(seg.Physnet())
			case seg.SegmentationID != nil:
				key = s.st.Keys.SegmentAlloc(seg.NetworkType, seg.Physnet(), strconv.FormatUint(uint64(*seg.SegmentationID), 10))
			default:
				continue
			}
			resp, err := s.st.Client.Get(ctx, key, clientv3.WithCountOnly())
			if err != nil {
				return storeErr(err)
			}
			if resp.Count > 0 && seg.NetworkType == segments.Flat {
				return apierr.Conflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", seg.Physnet())
			}
			if resp.Count > 0 {
				return segmentInUse(seg)
			}
		}
	}
	return errConflict
}

// segmentKeys returns the allocation keys a network's segments hold.
func (s *Service) segmentKeys(n *model.Network) []string {
	var keys []string
	for _, seg := range n.Segments {
		switch {
		case seg.NetworkType == segments.Flat:
			keys = append(keys, s.st.Keys.FlatAlloc(seg.Physnet()))
		case seg.SegmentationID != nil:
			keys = append(keys, s.st.Keys.SegmentAlloc(seg.NetworkType, seg.Physnet(), strconv.FormatUint(uint64(*seg.SegmentationID), 10)))
		}
	}
	return keys
}

// UpdateNetwork changes a network's mutable attributes.
func (s *Service) UpdateNetwork(ctx context.Context, id string, f model.Fields) (*model.Network, error) {
	c := creds(ctx)
	var out *model.Network
	err := retry(ctx, "update network", func() error {
		n, rev, err := load[model.Network](ctx, s, Networks, id)
		if err != nil {
			return err
		}
		if n == nil || !policy.CanSeeNetwork(c, n, s.grants(c, id)) {
			return apierr.NotFound("Network", "Network", id)
		}
		if !policy.CanChange(c, n.ProjectID) {
			return apierr.PolicyNotAuthorized("update_network")
		}
		if err := checkIfMatch(ctx, n.RevisionNumber); err != nil {
			return err
		}
		if !c.IsAdmin() {
			for _, a := range []string{"shared", "router:external"} {
				if f.Has(a) {
					return apierr.PolicyNotAuthorized("update_network:" + a)
				}
			}
		}
		key := s.st.Keys.Resource(Networks, id)
		cmps, ops := []clientv3.Cmp{unchanged(key, rev)}, []clientv3.Op(nil)
		for attr, action := range map[string]string{"shared": model.AccessAsShared, "router:external": model.AccessAsExternal} {
			if v, ok := f[attr]; ok {
				c, o, err := s.wildcardOps(ctx, n, action, v.(bool))
				if err != nil {
					if e, isAPI := apierr.As(err); isAPI && e.Type == "RbacPolicyInUse" {
						return apierr.Conflict("InvalidSharedSetting", "Unable to reconfigure sharing settings for network %s. Multiple tenants are using it.", n.ID)
					}
					return err
				}
				cmps, ops = append(cmps, c...), append(ops, o...)
			}
		}
		n.Apply(f)
		if max := s.cfg.Segments.MTU(n.Segments); n.MTU > max {
			return apierr.InvalidInput("Requested MTU is too big, maximum is %d", max)
		}
		n.Touch()
		ok, err := s.commit(ctx, cmps, append(ops, s.putJSON(Networks, id, n)))
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out = n
		return nil
	})
	return out, err
}

// DeleteNetwork deletes a network and its subnets once no port remains.
func (s *Service) DeleteNetwork(ctx context.Context, id string) error {
	c := creds(ctx)
	return retry(ctx, "delete network", func() error {
		n, rev, err := load[model.Network](ctx, s, Networks, id)
		if err != nil {
			return err
		}
		if n == nil || !policy.CanSeeNetwork(c, n, s.grants(c, id)) {
			return apierr.NotFound("Network", "Network", id)
		}
		if !policy.CanChange(c, n.ProjectID) {
			return apierr.PolicyNotAuthorized("delete_network")
		}
		if err := checkIfMatch(ctx, n.RevisionNumber); err != nil {
			return err
		}
		key := s.st.Keys.Resource(Networks, id)
		prefix := s.st.Keys.NetworkPortPrefix(id)
		svcPorts, portRevs, onlyService, readRev, err := s.servicePorts(ctx, prefix, false)
		if err != nil {
			return err
		}
		if !onlyService {
			return apierr.Conflict("NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)
		}
		cmps := []clientv3.Cmp{unchanged(key, rev), noneNewUnder(prefix, readRev)}
		ops := append([]clientv3.Op{clientv3.OpDelete(key)}, s.releaseOps(Networks, &n.Standard)...)
		rbacCmp, rbacOps := s.networkRBACDeleteOps(id)
		cmps, ops = append(cmps, rbacCmp), append(ops, rbacOps...)
		for i, p := range svcPorts {
			cmps = append(cmps, unchanged(s.st.Keys.Resource(Ports, p.ID), portRevs[i]))
			ops = append(ops, s.portDeleteOps(p)...)
		}
		for _, sid := range n.Subnets {
			sn, _, err := load[model.Subnet](ctx, s, Subnets, sid)
			if err != nil {
				return err
			}
			if sn != nil {
				ops = append(ops, s.releaseOps(Subnets, &sn.Standard)...)
			}
			ops = append(ops, clientv3.OpDelete(s.st.Keys.Resource(Subnets, sid)),
				clientv3.OpDelete(s.st.Keys.IPAllocPrefix(sid), clientv3.WithPrefix()))
		}
		for _, k := range s.segmentKeys(n) {
			ops = append(ops, clientv3.OpDelete(k))
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil || ok {
			return err
		}
		return errConflict
	})
}

// stds returns the standard attributes of new objects, for quota claims.
func stds[T model.Object](objs []T) []*model.Standard {
	out := make([]*model.Standard, len(objs))
	for i, o := range objs {
		out[i] = o.Std()
	}
	return out
}

// checkAZHints refuses hints naming no known network availability zone.
func (s *Service) checkAZHints(hints []string) error {
	if len(hints) == 0 {
		return nil
	}
	known := map[string]bool{}
	for _, z := range s.AvailabilityZones(context.Background()) {
		known[z["name"].(string)] = true
	}
	for _, h := range hints {
		if !known[h] {
			return apierr.New(404, "AvailabilityZoneNotFound", "AvailabilityZone %s could not be found.", h)
		}
	}
	return nil
}
