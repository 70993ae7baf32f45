package service

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/store"
)

// SubnetPools is the kind of subnet pools (subnet_allocation).
const SubnetPools = "subnetpools"

func subnetPoolNotFound(id string) error { return apierr.NotFound("SubnetPool", "Subnet pool", id) }

// canSeePool: the owner, an admin, and projects the pool is shared with.
func (s *Service) canSeePool(c *policy.Credentials, p *model.SubnetPool) bool {
	return c.IsAdmin() || c.Owns(p.ProjectID) || p.Shared || s.rbacShared(p.ID, c.ProjectID)
}

// GetSubnetPool returns a pool the caller may see.
func (s *Service) GetSubnetPool(ctx context.Context, id string) (*model.SubnetPool, error) {
	p, ok := cachedAs[*model.SubnetPool](s, SubnetPools, id)
	if !ok || !s.canSeePool(creds(ctx), p) {
		return nil, subnetPoolNotFound(id)
	}
	return p, nil
}

// SubnetPoolViewFor shows a pool shared with the caller's project through
// RBAC as shared, as Neutron does.
func (s *Service) SubnetPoolViewFor(ctx context.Context, v map[string]any) map[string]any {
	return sharedViewFor(s, ctx, v)
}

func sharedViewFor(s *Service, ctx context.Context, v map[string]any) map[string]any {
	if v["shared"] == true {
		return v
	}
	id, _ := v["id"].(string)
	if !s.rbacShared(id, creds(ctx).ProjectID) {
		return v
	}
	out := maps.Clone(v)
	out["shared"] = true
	return out
}

// lockRead returns the mod revision of a serialisation key (0 while it
// does not exist) once the cache has caught up with it: every change made
// under the key is then in the cache. Each bump of such a key is committed
// with a write under res/, so the cache's watch does reach its revision.
func (s *Service) lockRead(ctx context.Context, key string) (int64, error) {
	resp, err := s.st.Client.Get(ctx, key, clientv3.WithKeysOnly())
	if err != nil {
		return 0, storeErr(err)
	}
	var rev int64
	if len(resp.Kvs) > 0 {
		rev = resp.Kvs[0].ModRevision
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.cache.WaitRev(wctx, rev); err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, apierr.New(503, "ServiceUnavailable", "The server's cache lags behind the state store; try again.")
	}
	return rev, nil
}

// lockHeld holds while nobody bumped the key since it was read at rev.
func lockHeld(key string, rev int64) clientv3.Cmp {
	return clientv3.Compare(clientv3.ModRevision(key), "=", rev)
}

// lockBump is the write that makes concurrent holders of a lock fail.
func lockBump(key string) clientv3.Op { return clientv3.OpPut(key, "") }

// poolSubnets returns the cached subnets allocated from a pool.
func (s *Service) poolSubnets(poolID string) []*model.Subnet {
	var out []*model.Subnet
	s.cache.Read(func(snap store.Snapshot) {
		snap.Each(Subnets, func(_ string, it store.Item) bool {
			if sn, ok := it.Value.(*model.Cached).Obj.(*model.Subnet); ok && sn.SubnetPoolID == poolID {
				out = append(out, sn)
			}
			return true
		})
	})
	return out
}

// poolAlloc is what a request allocating from a pool knows of it.
type poolAlloc struct {
	pool    *model.SubnetPool
	rev     int64 // the pool object's mod revision
	lockRev int64 // the pool lock's mod revision
	used    []netip.Prefix
	units   map[string]float64 // default_quota units in use, by project
}

// readPoolAlloc reads a pool the caller may use and its allocations.
func (s *Service) readPoolAlloc(ctx context.Context, c *policy.Credentials, id string) (*poolAlloc, error) {
	lockRev, err := s.lockRead(ctx, s.st.Keys.SubnetPoolLock(id))
	if err != nil {
		return nil, err
	}
	p, rev, err := load[model.SubnetPool](ctx, s, SubnetPools, id)
	if err != nil {
		return nil, err
	}
	if p == nil || !s.canSeePool(c, p) {
		return nil, subnetPoolNotFound(id)
	}
	pa := &poolAlloc{pool: p, rev: rev, lockRev: lockRev, units: map[string]float64{}}
	for _, sn := range s.poolSubnets(id) {
		pa.add(sn.CIDR, sn.ProjectID)
	}
	return pa, nil
}

func (pa *poolAlloc) add(cidr netip.Prefix, project string) {
	pa.used = append(pa.used, cidr)
	pa.units[project] += model.QuotaUnits(pa.pool.IPVersion, cidr.Bits())
}

// allocate chooses a subnet of the pool for project: want when it is valid
// (a specific request), else the first block of bits in the pool's
// smallest free block that fits (Neutron's SubnetAllocator).
func (pa *poolAlloc) allocate(project string, want netip.Prefix, bits int) (netip.Prefix, error) {
	p := pa.pool
	if want.IsValid() {
		bits = want.Bits()
	}
	if bits > p.MaxPrefixLen {
		return netip.Prefix{}, apierr.New(400, "MaxPrefixSubnetAllocationError", "Unable to allocate subnet with prefix length %d, maximum allowed prefix is %d.", bits, p.MaxPrefixLen)
	}
	if bits < p.MinPrefixLen {
		return netip.Prefix{}, apierr.New(400, "MinPrefixSubnetAllocationError", "Unable to allocate subnet with prefix length %d, minimum allowed prefix is %d.", bits, p.MinPrefixLen)
	}
	// default_quota 0 means no quota, as in Neutron. The usage counted is
	// the requesting project's (Neutron counts the pool owner's, which
	// makes the quota meaningless on shared pools).
	if q := p.DefaultQuota; q != nil && *q > 0 {
		if pa.units[project]+model.QuotaUnits(p.IPVersion, bits) > float64(*q) {
			return netip.Prefix{}, apierr.Conflict("SubnetPoolQuotaExceeded", "Per-tenant subnet pool prefix quota exceeded.")
		}
	}
	free := model.AvailableBlocks(p.Prefixes, pa.used)
	if want.IsValid() {
		for _, b := range free {
			if b.Bits() <= want.Bits() && b.Contains(want.Addr()) {
				return want, nil
			}
		}
		return netip.Prefix{}, subnetAllocationError("Cannot allocate requested subnet from the available set of prefixes")
	}
	for _, b := range free {
		if bits >= b.Bits() {
			return netip.PrefixFrom(b.Addr(), bits), nil
		}
	}
	return netip.Prefix{}, subnetAllocationError("Insufficient prefix space to allocate subnet size /%d", bits)
}

// subnetAllocationError is Neutron's SubnetAllocationError. Neutron answers
// it with a 500 (the exception has no HTTP mapping); vland answers 409, as
// for an exhausted subnet, since nothing failed on the server.
func subnetAllocationError(format string, args ...any) error {
	return apierr.Conflict("SubnetAllocationError", "Failed to allocate subnet: "+format+".", args...)
}

// ops are the compares and writes that serialise allocations from the
// pool: the pool is unchanged and nobody allocated from it since it was
// read; the lock is bumped for the others.
func (s *Service) poolAllocOps(pa *poolAlloc) ([]clientv3.Cmp, []clientv3.Op) {
	lock := s.st.Keys.SubnetPoolLock(pa.pool.ID)
	return []clientv3.Cmp{unchanged(s.st.Keys.Resource(SubnetPools, pa.pool.ID), pa.rev), lockHeld(lock, pa.lockRev)},
		[]clientv3.Op{lockBump(lock)}
}

// defaultPoolID returns the default pool of an IP version the caller may
// use, or "".
func (s *Service) defaultPoolID(c *policy.Credentials, ipVersion int) string {
	for _, it := range s.cache.List(SubnetPools) {
		p := it.Value.(*model.Cached).Obj.(*model.SubnetPool)
		if p.IsDefault && p.IPVersion == ipVersion && s.canSeePool(c, p) {
			return p.ID
		}
	}
	return ""
}

func badSubnetRequest(format string, args ...any) error {
	return apierr.New(400, "BadRequest", "Bad subnets request: "+format+".", args...)
}

// subnetFromPool resolves a subnet create's pool (subnetpool_id or
// use_default_subnetpool) and, when there is one, allocates the subnet's
// CIDR from it; it returns the request with the CIDR filled in and the
// pool's state, or the request unchanged and nil without a pool.
func (s *Service) subnetFromPool(ctx context.Context, c *policy.Credentials, f model.Fields, project string, pools map[string]*poolAlloc) (model.Fields, *poolAlloc, error) {
	cidr, _ := f["cidr"].(netip.Prefix)
	hasCIDR := cidr.IsValid() // null reads as not given
	prefixlen, hasPrefixlen := f["prefixlen"].(int)
	if hasCIDR && hasPrefixlen {
		return nil, nil, badSubnetRequest("cidr and prefixlen must not be supplied together")
	}
	poolID, _ := f["subnetpool_id"].(string)
	useDefault, _ := f["use_default_subnetpool"].(bool)
	if useDefault && poolID != "" {
		return nil, nil, badSubnetRequest("subnetpool_id and use_default_subnetpool cannot both be specified")
	}
	version := f["ip_version"].(int)
	if useDefault {
		v := version
		if hasCIDR {
			v = 6
			if cidr.Addr().Is4() {
				v = 4
			}
		}
		if poolID = s.defaultPoolID(c, v); poolID == "" {
			return nil, nil, badSubnetRequest("No default subnetpool found for IPv%d", v)
		}
	}
	if poolID == "" {
		if !hasCIDR {
			return nil, nil, badSubnetRequest("a subnetpool must be specified in the absence of a cidr")
		}
		return f, nil, nil
	}
	if !hasCIDR && f.Has("allocation_pools") {
		return nil, nil, badSubnetRequest("allocation_pools allowed only for specific subnet requests.")
	}
	if hasCIDR && cidr.Addr().Is4() != (version == 4) {
		return nil, nil, apierr.InvalidInput("Cidr %s does not support IP version %d", cidr, version)
	}
	pa, ok := pools[poolID]
	if !ok {
		var err error
		if pa, err = s.readPoolAlloc(ctx, c, poolID); err != nil {
			return nil, nil, err
		}
		pools[poolID] = pa
	}
	if version != pa.pool.IPVersion {
		return nil, nil, badSubnetRequest("Cannot allocate IPv%d subnet from IPv%d subnet pool", version, pa.pool.IPVersion)
	}
	bits := pa.pool.DefaultPrefixLen
	if hasPrefixlen {
		bits = prefixlen
	}
	want := cidr
	if gw, ok := f["gateway_ip"].(netip.Addr); ok && gw.IsValid() && !hasCIDR {
		// A gateway without a cidr asks for the subnet around it.
		if gw.Is4() != (version == 4) {
			return nil, nil, apierr.InvalidInput("Gateway IP version inconsistent with allocation pool version")
		}
		if bits > gw.BitLen() {
			bits = gw.BitLen()
		}
		want, _ = gw.Prefix(bits)
	}
	got, err := pa.allocate(project, want, bits)
	if err != nil {
		return nil, nil, err
	}
	g := maps.Clone(f)
	g["cidr"] = got
	return g, pa, nil
}

// CreateSubnetPools creates one or more subnet pools atomically.
func (s *Service) CreateSubnetPools(ctx context.Context, items []model.Fields) ([]*model.SubnetPool, error) {
	c := creds(ctx)
	var out []*model.SubnetPool
	err := retry(ctx, "create subnet pools", func() error {
		out = out[:0]
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		scopes := map[string]*scopeState{}
		defaults := map[int]bool{}
		for _, f := range items {
			project, err := checkCreate(c, model.SubnetPoolSpec, f)
			if err != nil {
				return err
			}
			if !c.IsAdmin() {
				for _, a := range []string{"shared", "is_default"} {
					if v, ok := f[a]; ok && v.(bool) {
						return apierr.PolicyNotAuthorized("create_subnetpool:" + a)
					}
				}
			}
			now := model.Now()
			p := &model.SubnetPool{Standard: model.Standard{ID: uuid.NewString(), ProjectID: project, CreatedAt: now, UpdatedAt: now, Tags: []string{}}}
			if err := p.Apply(f, true); err != nil {
				return err
			}
			if p.IsDefault {
				cc, oo, err := s.claimDefaultPool(ctx, p, defaults)
				if err != nil {
					return err
				}
				cmps, ops = append(cmps, cc...), append(ops, oo...)
			}
			if p.AddressScopeID != "" {
				st, err := s.scopeFor(ctx, c, p.AddressScopeID, scopes)
				if err != nil {
					return err
				}
				if err := st.join(p); err != nil {
					return err
				}
			}
			if p.Shared {
				cc, oo := s.rbacCreateOps(wildcardPolicy("subnetpool", p.ID, p.ProjectID), false)
				cmps, ops = append(cmps, cc...), append(ops, oo...)
			}
			cmps = append(cmps, notExists(s.st.Keys.Resource(SubnetPools, p.ID)))
			out = append(out, p)
		}
		for _, st := range scopes {
			cc, oo := s.scopeOps(st)
			cmps, ops = append(cmps, cc...), append(ops, oo...)
		}
		qc, qo, err := s.quotaClaim(ctx, SubnetPools, stds(out))
		if err != nil {
			return err
		}
		cmps, ops = append(cmps, qc...), append(ops, qo...)
		for _, p := range out {
			ops = append(ops, s.indexOp(SubnetPools, &p.Standard), s.putJSON(SubnetPools, p.ID, p))
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

// wildcardPolicy is the '*' access_as_shared policy behind a shared flag.
func wildcardPolicy(objectType, objectID, owner string) *model.RBACPolicy {
	return &model.RBACPolicy{Standard: model.Standard{ID: uuid.NewString(), ProjectID: owner},
		ObjectType: objectType, ObjectID: objectID, TargetProject: "*", Action: model.AccessAsShared}
}

// claimDefaultPool makes p the default pool of its IP version, refusing if
// another one is (or, within one request, another pool becomes) default.
func (s *Service) claimDefaultPool(ctx context.Context, p *model.SubnetPool, pending map[int]bool) ([]clientv3.Cmp, []clientv3.Op, error) {
	key := s.st.Keys.DefaultSubnetPool(p.IPVersion)
	resp, err := s.st.Client.Get(ctx, key)
	if err != nil {
		return nil, nil, storeErr(err)
	}
	held := len(resp.Kvs) > 0
	if held && string(resp.Kvs[0].Value) != p.ID || pending[p.IPVersion] {
		return nil, nil, apierr.InvalidInput("A default subnetpool for this IP family has already been set. Only one default may exist per IP family")
	}
	pending[p.IPVersion] = true
	if held {
		return nil, nil, nil
	}
	return []clientv3.Cmp{notExists(key)}, []clientv3.Op{clientv3.OpPut(key, p.ID)}, nil
}

// UpdateSubnetPool changes a pool's attributes.
func (s *Service) UpdateSubnetPool(ctx context.Context, id string, f model.Fields) (*model.SubnetPool, error) {
	return s.updatePool(ctx, id, "update_subnetpool", func(*model.SubnetPool) model.Fields { return f })
}

// AddSubnetPoolPrefixes adds prefixes to a pool (subnetpool-prefix-ops);
// it is an update of the prefixes, with the same rules.
func (s *Service) AddSubnetPoolPrefixes(ctx context.Context, id string, prefixes []netip.Prefix) ([]netip.Prefix, error) {
	p, err := s.updatePool(ctx, id, "add_prefixes", func(old *model.SubnetPool) model.Fields {
		return model.Fields{"prefixes": append(slices.Clone(old.Prefixes), prefixes...)}
	})
	if err != nil {
		return nil, err
	}
	return p.Prefixes, nil
}

// updatePool applies the update change returns for the pool as read.
func (s *Service) updatePool(ctx context.Context, id, action string, change func(*model.SubnetPool) model.Fields) (*model.SubnetPool, error) {
	c := creds(ctx)
	var out *model.SubnetPool
	err := retry(ctx, "update subnet pool", func() error {
		lock := s.st.Keys.SubnetPoolLock(id)
		lockRev, err := s.lockRead(ctx, lock)
		if err != nil {
			return err
		}
		p, rev, err := load[model.SubnetPool](ctx, s, SubnetPools, id)
		if err != nil {
			return err
		}
		if p == nil || !s.canSeePool(c, p) {
			return subnetPoolNotFound(id)
		}
		if !policy.CanChange(c, p.ProjectID) {
			return apierr.PolicyNotAuthorized(action)
		}
		f := change(p)
		if f.Has("is_default") && !c.IsAdmin() {
			return apierr.PolicyNotAuthorized("update_subnetpool:is_default")
		}
		if err := checkIfMatch(ctx, p.RevisionNumber); err != nil {
			return err
		}
		wasDefault, oldScope := p.IsDefault, p.AddressScopeID
		if oldScope != "" {
			// Only the scope's owner (or an admin) changes pools in it.
			a, _, err := load[model.AddressScope](ctx, s, AddressScopes, oldScope)
			if err != nil {
				return err
			}
			if a == nil || !s.canSeeScope(c, a) {
				return addressScopeNotFound(oldScope)
			}
			if !c.IsAdmin() && !c.Owns(a.ProjectID) {
				return apierr.New(400, "IllegalSubnetPoolUpdate", "Illegal subnetpool update : subnetpool %s cannot be updated when associated with shared address scope %s.", id, oldScope)
			}
		}
		p.Prefixes = slices.Clone(p.Prefixes)
		if err := p.Apply(f, false); err != nil {
			return err
		}
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(SubnetPools, id), rev), lockHeld(lock, lockRev)}
		var ops []clientv3.Op
		switch {
		case p.IsDefault && !wasDefault:
			cc, oo, err := s.claimDefaultPool(ctx, p, map[int]bool{})
			if err != nil {
				return err
			}
			cmps, ops = append(cmps, cc...), append(ops, oo...)
		case !p.IsDefault && wasDefault:
			ops = append(ops, clientv3.OpDelete(s.st.Keys.DefaultSubnetPool(p.IPVersion)))
		}
		if p.AddressScopeID != "" {
			st, err := s.scopeFor(ctx, c, p.AddressScopeID, map[string]*scopeState{})
			if err != nil {
				return err
			}
			if err := st.join(p); err != nil {
				return err
			}
			cc, err := s.checkScopeAffinity(ctx, p)
			if err != nil {
				return err
			}
			cmps = append(cmps, cc...)
			cc, oo := s.scopeOps(st)
			cmps, ops = append(cmps, cc...), append(ops, oo...)
		}
		p.Touch()
		ok, err := s.commit(ctx, cmps, append(ops, s.putJSON(SubnetPools, id, p)))
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out = p
		return nil
	})
	return out, err
}

// checkScopeAffinity refuses to put a pool in an address scope when a
// network with subnets from the pool also has subnets of the same IP
// version from elsewhere: they would end up in different scopes.
func (s *Service) checkScopeAffinity(ctx context.Context, p *model.SubnetPool) ([]clientv3.Cmp, error) {
	var cmps []clientv3.Cmp
	seen := map[string]bool{}
	for _, sn := range s.poolSubnets(p.ID) {
		if seen[sn.NetworkID] {
			continue
		}
		seen[sn.NetworkID] = true
		n, rev, err := load[model.Network](ctx, s, Networks, sn.NetworkID)
		if err != nil {
			return nil, err
		}
		if n == nil {
			continue
		}
		cmps = append(cmps, unchanged(s.st.Keys.Resource(Networks, n.ID), rev))
		others, err := s.loadSubnets(ctx, n.Subnets)
		if err != nil {
			return nil, err
		}
		for _, o := range others {
			if o.IPVersion == p.IPVersion && o.SubnetPoolID != p.ID {
				return nil, networkScopeAffinityError()
			}
		}
	}
	return cmps, nil
}

func networkScopeAffinityError() error {
	return apierr.New(400, "NetworkAddressScopeAffinityError", "Subnets of the same address family hosted on the same network must all participate in the same address scope.")
}

// loadSubnets returns subnets by id: from the cache (a subnet's CIDR, IP
// version and pool never change), else from the store; missing ones are
// left out.
func (s *Service) loadSubnets(ctx context.Context, ids []string) ([]*model.Subnet, error) {
	out := make([]*model.Subnet, 0, len(ids))
	for _, id := range ids {
		sn, ok := cachedAs[*model.Subnet](s, Subnets, id)
		if !ok {
			var err error
			if sn, _, err = load[model.Subnet](ctx, s, Subnets, id); err != nil {
				return nil, err
			}
			if sn == nil {
				continue
			}
		}
		out = append(out, sn)
	}
	return out, nil
}

// RemoveSubnetPoolPrefixes removes prefixes no subnet uses from a pool
// (subnetpool-prefix-ops).
func (s *Service) RemoveSubnetPoolPrefixes(ctx context.Context, id string, prefixes []netip.Prefix) ([]netip.Prefix, error) {
	c := creds(ctx)
	var out []netip.Prefix
	err := retry(ctx, "remove subnet pool prefixes", func() error {
		lock := s.st.Keys.SubnetPoolLock(id)
		lockRev, err := s.lockRead(ctx, lock)
		if err != nil {
			return err
		}
		p, rev, err := load[model.SubnetPool](ctx, s, SubnetPools, id)
		if err != nil {
			return err
		}
		if p == nil || !s.canSeePool(c, p) {
			return subnetPoolNotFound(id)
		}
		if !policy.CanChange(c, p.ProjectID) {
			return apierr.PolicyNotAuthorized("remove_prefixes")
		}
		if !model.PrefixesOverlap(p.Prefixes, prefixes) {
			out = p.Prefixes
			return nil
		}
		for _, sn := range s.poolSubnets(id) {
			if model.PrefixesOverlap([]netip.Prefix{sn.CIDR}, prefixes) {
				return apierr.New(400, "IllegalSubnetPoolPrefixUpdate", "Illegal update to prefixes: One or more the prefixes to be removed is in use by a subnet.")
			}
		}
		p.Prefixes = model.SubtractPrefixes(p.Prefixes, prefixes)
		p.Touch()
		ok, err := s.commit(ctx,
			[]clientv3.Cmp{unchanged(s.st.Keys.Resource(SubnetPools, id), rev), lockHeld(lock, lockRev)},
			[]clientv3.Op{s.putJSON(SubnetPools, id, p)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out = p.Prefixes
		return nil
	})
	return out, err
}

// DeleteSubnetPool deletes a pool no subnet was allocated from.
func (s *Service) DeleteSubnetPool(ctx context.Context, id string) error {
	c := creds(ctx)
	return retry(ctx, "delete subnet pool", func() error {
		lock := s.st.Keys.SubnetPoolLock(id)
		lockRev, err := s.lockRead(ctx, lock)
		if err != nil {
			return err
		}
		p, rev, err := load[model.SubnetPool](ctx, s, SubnetPools, id)
		if err != nil {
			return err
		}
		if p == nil || !s.canSeePool(c, p) {
			return subnetPoolNotFound(id)
		}
		if !policy.CanChange(c, p.ProjectID) {
			return apierr.PolicyNotAuthorized("delete_subnetpool")
		}
		if err := checkIfMatch(ctx, p.RevisionNumber); err != nil {
			return err
		}
		if len(s.poolSubnets(id)) > 0 {
			return apierr.New(400, "SubnetPoolDeleteError", "Unable to delete subnet pool: Subnet pool has existing allocations.")
		}
		rbacCmp, rbacOps := s.objectRBACDeleteOps(id)
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(SubnetPools, id), rev), lockHeld(lock, lockRev), rbacCmp}
		ops := append([]clientv3.Op{clientv3.OpDelete(s.st.Keys.Resource(SubnetPools, id)), clientv3.OpDelete(lock)},
			s.releaseOps(SubnetPools, &p.Standard)...)
		ops = append(ops, rbacOps...)
		if p.IsDefault {
			ops = append(ops, clientv3.OpDelete(s.st.Keys.DefaultSubnetPool(p.IPVersion)))
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil || ok {
			return err
		}
		return errConflict
	})
}

// checkPoolAffinity applies Neutron's rules on the pools of one network's
// subnets to a new subnet sn (from pool pa, or none) among the network's
// other subnets: a network's subnets of one IP version come from one pool,
// or from pools of the address scope the network already has for that
// version, and pool and non-pool subnets of a version do not mix.
func (s *Service) checkPoolAffinity(ctx context.Context, sn *model.Subnet, pa *poolAlloc, others []*model.Subnet, pools map[string]*poolAlloc) ([]clientv3.Cmp, error) {
	var cmps []clientv3.Cmp
	netScope := ""
	for _, o := range others {
		if o.IPVersion != sn.IPVersion || o.SubnetPoolID == "" || netScope != "" {
			continue
		}
		var op *model.SubnetPool
		if known, ok := pools[o.SubnetPoolID]; ok {
			op = known.pool
		} else {
			p, rev, err := load[model.SubnetPool](ctx, s, SubnetPools, o.SubnetPoolID)
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			// A scope change of that pool must not slip in unseen.
			cmps = append(cmps, unchanged(s.st.Keys.Resource(SubnetPools, p.ID), rev))
			op = p
		}
		netScope = op.AddressScopeID
	}
	if netScope != "" && pa != nil && pa.pool.AddressScopeID != netScope {
		return nil, networkScopeAffinityError()
	}
	poolAffinity := apierr.New(400, "NetworkSubnetPoolAffinityError", "Subnets hosted on the same network must be allocated from the same subnet pool.")
	for _, o := range others {
		if pa != nil {
			if o.SubnetPoolID != pa.pool.ID && o.IPVersion == pa.pool.IPVersion && netScope == "" {
				return nil, poolAffinity
			}
		} else if o.SubnetPoolID != "" && o.IPVersion == sn.IPVersion {
			return nil, poolAffinity
		}
	}
	return cmps, nil
}
