package service

import (
	"context"
	"maps"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/store"
)

// AddressScopes is the kind of address scopes (address-scope).
const AddressScopes = "address_scopes"

func addressScopeNotFound(id string) error {
	return apierr.NotFound("AddressScope", "Address scope", id)
}

// canSeeScope: the owner, an admin, and projects the scope is shared with.
// Seeing a scope is also what it takes to put a pool in it.
func (s *Service) canSeeScope(c *policy.Credentials, a *model.AddressScope) bool {
	return c.IsAdmin() || c.Owns(a.ProjectID) || a.Shared || s.rbacShared(a.ID, c.ProjectID)
}

// GetAddressScope returns a scope the caller may see.
func (s *Service) GetAddressScope(ctx context.Context, id string) (*model.AddressScope, error) {
	a, ok := cachedAs[*model.AddressScope](s, AddressScopes, id)
	if !ok || !s.canSeeScope(creds(ctx), a) {
		return nil, addressScopeNotFound(id)
	}
	return a, nil
}

// AddressScopeViewFor shows a scope shared with the caller's project
// through RBAC as shared.
func (s *Service) AddressScopeViewFor(ctx context.Context, v map[string]any) map[string]any {
	return sharedViewFor(s, ctx, v)
}

// scopePools returns the cached pools of an address scope.
func (s *Service) scopePools(scopeID string) []*model.SubnetPool {
	var out []*model.SubnetPool
	s.cache.Read(func(snap store.Snapshot) {
		snap.Each(SubnetPools, func(_ string, it store.Item) bool {
			if p, ok := it.Value.(*model.Cached).Obj.(*model.SubnetPool); ok && p.AddressScopeID == scopeID {
				out = append(out, p)
			}
			return true
		})
	})
	return out
}

// scopeState is what a request putting pools in a scope knows of it.
type scopeState struct {
	scope   *model.AddressScope
	lockRev int64
	pools   []*model.SubnetPool // the scope's pools, with this request's changes
}

// scopeFor reads a scope the caller may put pools in, once per request.
func (s *Service) scopeFor(ctx context.Context, c *policy.Credentials, id string, known map[string]*scopeState) (*scopeState, error) {
	if st, ok := known[id]; ok {
		return st, nil
	}
	lockRev, err := s.lockRead(ctx, s.st.Keys.AddressScopeLock(id))
	if err != nil {
		return nil, err
	}
	a, _, err := load[model.AddressScope](ctx, s, AddressScopes, id)
	if err != nil {
		return nil, err
	}
	if a == nil || !s.canSeeScope(c, a) {
		return nil, addressScopeNotFound(id)
	}
	st := &scopeState{scope: a, lockRev: lockRev, pools: s.scopePools(id)}
	known[id] = st
	return st, nil
}

// join checks that pool p may be in the scope (same IP version, no prefix
// shared with another pool of the scope) and records it there.
func (st *scopeState) join(p *model.SubnetPool) error {
	a := st.scope
	if p.IPVersion != a.IPVersion {
		return apierr.New(400, "IllegalSubnetPoolIpVersionAssociationToAddressScope", "Illegal subnetpool association: subnetpool %s cannot associate with address scope %s because subnetpool ip_version is not %d.", p.ID, a.ID, a.IPVersion)
	}
	for _, o := range st.pools {
		if o.ID != p.ID && model.PrefixesOverlap(o.Prefixes, p.Prefixes) {
			return apierr.Conflict("AddressScopePrefixConflict", "Failed to associate address scope: subnetpools within an address scope must have unique prefixes.")
		}
	}
	st.pools = append(st.pools, p)
	return nil
}

// scopeOps serialise the changes to a scope's pools: the scope still exists,
// nobody changed its pools since it was read, and the lock is bumped.
func (s *Service) scopeOps(st *scopeState) ([]clientv3.Cmp, []clientv3.Op) {
	lock := s.st.Keys.AddressScopeLock(st.scope.ID)
	return []clientv3.Cmp{exists(s.st.Keys.Resource(AddressScopes, st.scope.ID)), lockHeld(lock, st.lockRev)},
		[]clientv3.Op{lockBump(lock)}
}

// CreateAddressScopes creates one or more address scopes atomically.
func (s *Service) CreateAddressScopes(ctx context.Context, items []model.Fields) ([]*model.AddressScope, error) {
	c := creds(ctx)
	var out []*model.AddressScope
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, f := range items {
		project, err := checkCreate(c, model.AddressScopeSpec, f)
		if err != nil {
			return nil, err
		}
		a := &model.AddressScope{Standard: model.Standard{ID: uuid.NewString(), ProjectID: project}, IPVersion: f["ip_version"].(int)}
		a.ApplyStandard(f)
		if v, ok := f["shared"]; ok && v.(bool) {
			if !c.IsAdmin() {
				return nil, apierr.PolicyNotAuthorized("create_address_scope:shared")
			}
			a.Shared = true
			cc, oo := s.rbacCreateOps(wildcardPolicy("address_scope", a.ID, a.ProjectID), false)
			cmps, ops = append(cmps, cc...), append(ops, oo...)
		}
		cmps = append(cmps, notExists(s.st.Keys.Resource(AddressScopes, a.ID)))
		ops = append(ops, s.indexOp(AddressScopes, &a.Standard), s.putJSON(AddressScopes, a.ID, a))
		out = append(out, a)
	}
	ok, err := s.commit(ctx, cmps, ops)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Only fresh random ids are compared: this does not happen.
		return nil, apierr.Conflict("Conflict", "Address scope id collision; try again.")
	}
	return out, nil
}

// UpdateAddressScope renames a scope or shares it; a shared scope is never
// unshared through its flag.
func (s *Service) UpdateAddressScope(ctx context.Context, id string, f model.Fields) (*model.AddressScope, error) {
	c := creds(ctx)
	var out *model.AddressScope
	err := retry(ctx, "update address scope", func() error {
		a, rev, err := load[model.AddressScope](ctx, s, AddressScopes, id)
		if err != nil {
			return err
		}
		if a == nil || !s.canSeeScope(c, a) {
			return addressScopeNotFound(id)
		}
		if !policy.CanChange(c, a.ProjectID) {
			return apierr.PolicyNotAuthorized("update_address_scope")
		}
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(AddressScopes, id), rev)}
		var ops []clientv3.Op
		if v, ok := f["shared"]; ok {
			if !c.IsAdmin() {
				return apierr.PolicyNotAuthorized("update_address_scope:shared")
			}
			switch shared := v.(bool); {
			case a.Shared && !shared:
				return apierr.New(400, "AddressScopeUpdateError", "Unable to update address scope %s : Shared address scope can't be unshared.", id)
			case !a.Shared && shared:
				if !s.hasWildcard(id) {
					cc, oo := s.rbacCreateOps(wildcardPolicy("address_scope", a.ID, a.ProjectID), false)
					cmps, ops = append(cmps, cc...), append(ops, oo...)
				}
				a.Shared = true
			}
		}
		a.ApplyStandard(f)
		ok, err := s.commit(ctx, cmps, append(ops, s.putJSON(AddressScopes, id, a)))
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		out = a
		return nil
	})
	return out, err
}

// DeleteAddressScope deletes a scope no pool is in.
func (s *Service) DeleteAddressScope(ctx context.Context, id string) error {
	c := creds(ctx)
	return retry(ctx, "delete address scope", func() error {
		lock := s.st.Keys.AddressScopeLock(id)
		lockRev, err := s.lockRead(ctx, lock)
		if err != nil {
			return err
		}
		a, rev, err := load[model.AddressScope](ctx, s, AddressScopes, id)
		if err != nil {
			return err
		}
		if a == nil || !s.canSeeScope(c, a) {
			return addressScopeNotFound(id)
		}
		if !policy.CanChange(c, a.ProjectID) {
			return apierr.PolicyNotAuthorized("delete_address_scope")
		}
		if len(s.scopePools(id)) > 0 {
			return apierr.Conflict("AddressScopeInUse", "Unable to complete operation on address scope %s. There are one or more subnet pools in use on the address scope.", id)
		}
		rbacCmp, rbacOps := s.objectRBACDeleteOps(id)
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(AddressScopes, id), rev), lockHeld(lock, lockRev), rbacCmp}
		ops := append([]clientv3.Op{clientv3.OpDelete(s.st.Keys.Resource(AddressScopes, id)), clientv3.OpDelete(lock)},
			s.releaseOps(AddressScopes, &a.Standard)...)
		ok, err := s.commit(ctx, cmps, append(ops, rbacOps...))
		if err != nil || ok {
			return err
		}
		return errConflict
	})
}

// NetworkAddressScopes fills in a network view's ipv4_address_scope and
// ipv6_address_scope: the scopes of the pools its subnets come from (one
// per IP version, which the subnet create rules guarantee).
func (s *Service) NetworkAddressScopes(v map[string]any) map[string]any {
	subnets, _ := v["subnets"].([]string)
	var scopes [2]any
	found := false
	for _, id := range subnets {
		sn, ok := cachedAs[*model.Subnet](s, Subnets, id)
		if !ok || sn.SubnetPoolID == "" {
			continue
		}
		p, ok := cachedAs[*model.SubnetPool](s, SubnetPools, sn.SubnetPoolID)
		if !ok || p.AddressScopeID == "" {
			continue
		}
		scopes[p.IPVersion/6] = p.AddressScopeID
		found = true
	}
	if !found {
		return v
	}
	out := maps.Clone(v)
	out["ipv4_address_scope"], out["ipv6_address_scope"] = scopes[0], scopes[1]
	return out
}
