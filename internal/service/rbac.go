package service

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// RBACPolicies is the kind of RBAC policies.
const RBACPolicies = "rbac_policies"

// rbacIndex maps object ids to their RBAC policies at one cache revision.
type rbacIndex struct {
	mu       sync.Mutex
	rev      int64
	byObject map[string][]*model.RBACPolicy
}

// rbacOf returns the RBAC policies of an object, from an index rebuilt
// whenever the cache has moved.
func (s *Service) rbacOf(objectID string) []*model.RBACPolicy {
	rev := s.cache.Rev()
	s.rbac.mu.Lock()
	defer s.rbac.mu.Unlock()
	if s.rbac.byObject == nil || s.rbac.rev != rev {
		idx := map[string][]*model.RBACPolicy{}
		for _, it := range s.cache.List(RBACPolicies) {
			r := it.Value.(*model.Cached).Obj.(*model.RBACPolicy)
			idx[r.ObjectID] = append(idx[r.ObjectID], r)
		}
		s.rbac.byObject, s.rbac.rev = idx, rev
	}
	return s.rbac.byObject[objectID]
}

// grants returns what RBAC gives c's project on a network.
func (s *Service) grants(c *policy.Credentials, netID string) policy.Grants {
	var g policy.Grants
	if c == nil || c.ProjectID == "" {
		return g
	}
	for _, r := range s.rbacOf(netID) {
		if r.TargetProject != c.ProjectID && r.TargetProject != "*" {
			continue
		}
		switch r.Action {
		case model.AccessAsShared:
			g.Shared = true
		case model.AccessAsExternal:
			g.External = true
		}
	}
	return g
}

// sharedWith reports whether a project may use network n without owning
// it, ignoring the policy named skip.
func (s *Service) sharedWith(n *model.Network, project, skip string) bool {
	for _, r := range s.rbacOf(n.ID) {
		if r.ID != skip && r.Action == model.AccessAsShared && (r.TargetProject == "*" || r.TargetProject == project) {
			return true
		}
	}
	return false
}

// rbacShared reports whether an access_as_shared policy shares an object
// with project (by name or with everyone).
func (s *Service) rbacShared(objectID, project string) bool {
	for _, r := range s.rbacOf(objectID) {
		if r.Action == model.AccessAsShared && (r.TargetProject == "*" || project != "" && r.TargetProject == project) {
			return true
		}
	}
	return false
}

// hasWildcard reports whether an object has its '*' access_as_shared policy.
func (s *Service) hasWildcard(objectID string) bool {
	for _, r := range s.rbacOf(objectID) {
		if r.Action == model.AccessAsShared && r.TargetProject == "*" {
			return true
		}
	}
	return false
}

// GetRBAC returns a policy its owner (or an admin) may see.
func (s *Service) GetRBAC(ctx context.Context, id string) (*model.RBACPolicy, error) {
	r, ok := cachedAs[*model.RBACPolicy](s, RBACPolicies, id)
	c := creds(ctx)
	if !ok || !(c.IsAdmin() || c.Owns(r.ProjectID)) {
		return nil, rbacNotFound(id)
	}
	return r, nil
}

func rbacNotFound(id string) error {
	return apierr.New(404, "RbacPolicyNotFound", "RBAC policy of type network with ID %s not found", id)
}

// rbacCreateOps returns the operations that create policy r; counted
// policies count against the rbac_policy quota (the wildcard policies
// behind the shared and external flags do not).
func (s *Service) rbacCreateOps(r *model.RBACPolicy, counted bool) ([]clientv3.Cmp, []clientv3.Op) {
	uk := s.st.Keys.RBACUnique(r.ObjectID, r.Action, r.TargetProject)
	ops := []clientv3.Op{
		clientv3.OpPut(uk, r.ID), clientv3.OpPut(s.st.Keys.ObjectRBAC(r.ObjectID, r.ID), r.ID),
		s.putJSON(RBACPolicies, r.ID, r),
	}
	if counted {
		ops = append(ops, s.indexOp(RBACPolicies, &r.Standard))
	}
	return []clientv3.Cmp{notExists(uk), notExists(s.st.Keys.Resource(RBACPolicies, r.ID))}, ops
}

// rbacDeleteOps are the operations removing policy r.
func (s *Service) rbacDeleteOps(r *model.RBACPolicy) []clientv3.Op {
	return append([]clientv3.Op{
		clientv3.OpDelete(s.st.Keys.RBACUnique(r.ObjectID, r.Action, r.TargetProject)),
		clientv3.OpDelete(s.st.Keys.ObjectRBAC(r.ObjectID, r.ID)),
		clientv3.OpDelete(s.st.Keys.Resource(RBACPolicies, r.ID)),
	}, s.releaseOps(RBACPolicies, &r.Standard)...)
}

// CreateRBAC creates an RBAC policy on a network the caller owns.
func (s *Service) CreateRBAC(ctx context.Context, f model.Fields) (*model.RBACPolicy, error) {
	c := creds(ctx)
	project, err := checkCreate(c, model.RBACSpec, f)
	if err != nil {
		return nil, err
	}
	target := f["target_tenant"].(string)
	if t, ok := f["target_project"]; ok {
		target = t.(string)
	}
	action := f["action"].(string)
	if typ := f["object_type"].(string); typ != "network" {
		return s.createObjectRBAC(ctx, c, project, typ, f["object_id"].(string), target, action)
	}
	if action != model.AccessAsShared && action != model.AccessAsExternal {
		return nil, apierr.InvalidInput("Invalid action '%s' for object type 'network'. Valid actions: ['access_as_external', 'access_as_shared']", action)
	}
	if target == "*" && !c.IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("create_rbac_policy:target_tenant")
	}
	if action == model.AccessAsExternal && !c.IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("create_rbac_policy:action")
	}
	var out *model.RBACPolicy
	err = retry(ctx, "create RBAC policy", func() error {
		netID := f["object_id"].(string)
		n, rev, err := load[model.Network](ctx, s, Networks, netID)
		if err != nil {
			return err
		}
		if n == nil || !policy.CanSeeNetwork(c, n, s.grants(c, netID)) {
			return apierr.NotFound("Network", "Network", netID)
		}
		if !c.IsAdmin() && !c.Owns(n.ProjectID) {
			return apierr.PolicyNotAuthorized("create_rbac_policy")
		}
		r := &model.RBACPolicy{Standard: model.Standard{ID: uuid.NewString(), ProjectID: project},
			ObjectType: "network", ObjectID: netID, TargetProject: target, Action: action}
		qc, qo, err := s.quotaClaim(ctx, RBACPolicies, []*model.Standard{&r.Standard})
		if err != nil {
			return err
		}
		cmps, ops := s.rbacCreateOps(r, true)
		cmps, ops = append(cmps, qc...), append(ops, qo...)
		key := s.st.Keys.Resource(Networks, netID)
		cmps = append(cmps, unchanged(key, rev))
		if target == "*" {
			// The wildcard policies are the network's shared and external
			// flags: both change in one transaction.
			if action == model.AccessAsShared {
				n.Shared = true
			} else {
				n.External = true
			}
			n.Touch()
			ops = append(ops, s.putJSON(Networks, netID, n))
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		if !ok {
			if resp, err := s.st.Client.Get(ctx, s.st.Keys.RBACUnique(netID, action, target), clientv3.WithCountOnly()); err == nil && resp.Count > 0 {
				return apierr.Conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
			}
			return errConflict
		}
		out = r
		return nil
	})
	return out, err
}

// rbacInUse refuses to withdraw access that ports still depend on.
func (s *Service) rbacInUse(r *model.RBACPolicy, n *model.Network) error {
	if r.Action != model.AccessAsShared || n == nil {
		return nil
	}
	for _, it := range s.cache.List(Ports) {
		p := it.Value.(*model.Cached).Obj.(*model.Port)
		if p.NetworkID != n.ID || p.ProjectID == n.ProjectID || p.ProjectID == "" {
			continue
		}
		if (r.TargetProject == "*" || r.TargetProject == p.ProjectID) && !s.sharedWith(n, p.ProjectID, r.ID) {
			return apierr.Conflict("RbacPolicyInUse", "RBAC policy on object %s cannot be removed because other objects depend on it.\nDetails: Callback neutron.plugins.ml2.plugin.Ml2Plugin.validate_network_rbac_policy_change failed with \"Unable to reconfigure sharing settings for network %s. Multiple tenants are using it.\"", n.ID, n.ID)
		}
	}
	return nil
}

// DeleteRBAC removes a policy no port depends on.
func (s *Service) DeleteRBAC(ctx context.Context, id string) error {
	if _, err := s.GetRBAC(ctx, id); err != nil {
		return err
	}
	return retry(ctx, "delete RBAC policy", func() error {
		r, rrev, err := load[model.RBACPolicy](ctx, s, RBACPolicies, id)
		if err != nil {
			return err
		}
		if r == nil {
			return rbacNotFound(id)
		}
		if r.ObjectType != "network" {
			return s.deleteObjectRBAC(ctx, r, rrev)
		}
		n, nrev, err := load[model.Network](ctx, s, Networks, r.ObjectID)
		if err != nil {
			return err
		}
		if err := s.rbacInUse(r, n); err != nil {
			return err
		}
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(RBACPolicies, id), rrev)}
		ops := s.rbacDeleteOps(r)
		if n != nil && r.TargetProject == "*" {
			if r.Action == model.AccessAsShared {
				n.Shared = false
			} else {
				n.External = false
			}
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
		return nil
	})
}

// UpdateRBAC retargets a policy.
func (s *Service) UpdateRBAC(ctx context.Context, id string, f model.Fields) (*model.RBACPolicy, error) {
	if _, err := s.GetRBAC(ctx, id); err != nil {
		return nil, err
	}
	target, ok := f["target_tenant"].(string)
	if t, given := f["target_project"].(string); given {
		target, ok = t, true
	}
	var out *model.RBACPolicy
	err := retry(ctx, "update RBAC policy", func() error {
		r, rrev, err := load[model.RBACPolicy](ctx, s, RBACPolicies, id)
		if err != nil {
			return err
		}
		if r == nil {
			return rbacNotFound(id)
		}
		if !ok || target == r.TargetProject {
			out = r
			return nil
		}
		if target == "*" || r.TargetProject == "*" {
			return apierr.InvalidInput("Changing a wildcard RBAC policy is not supported; delete it and create another")
		}
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		if r.ObjectType == "network" {
			n, _ := cachedAs[*model.Network](s, Networks, r.ObjectID)
			if err := s.rbacInUse(r, n); err != nil {
				return err
			}
		} else {
			// Withdrawing access from the old target: as a delete.
			lock, lockRev, err := s.objectRBACLock(ctx, r)
			if err != nil {
				return err
			}
			if err := s.objectRBACInUse(r); err != nil {
				return err
			}
			cmps, ops = append(cmps, lockHeld(lock, lockRev)), append(ops, lockBump(lock))
		}
		old := s.st.Keys.RBACUnique(r.ObjectID, r.Action, r.TargetProject)
		r.TargetProject = target
		uk := s.st.Keys.RBACUnique(r.ObjectID, r.Action, target)
		ok, err := s.commit(ctx,
			append(cmps, unchanged(s.st.Keys.Resource(RBACPolicies, id), rrev)),
			append(ops, clientv3.OpDelete(old), clientv3.OpPut(uk, id), s.putJSON(RBACPolicies, id, r)))
		if err != nil {
			return err
		}
		if !ok {
			if resp, err := s.st.Client.Get(ctx, uk, clientv3.WithCountOnly()); err == nil && resp.Count > 0 {
				return apierr.Conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
			}
			return errConflict
		}
		out = r
		return nil
	})
	return out, err
}

// wildcardOps adds or removes a network's wildcard policy for action, so
// the shared and router:external flags and the RBAC policies agree.
func (s *Service) wildcardOps(ctx context.Context, n *model.Network, action string, on bool) ([]clientv3.Cmp, []clientv3.Op, error) {
	var existing *model.RBACPolicy
	for _, r := range s.rbacOf(n.ID) {
		if r.Action == action && r.TargetProject == "*" {
			existing = r
		}
	}
	switch {
	case on && existing == nil:
		r := &model.RBACPolicy{Standard: model.Standard{ID: uuid.NewString(), ProjectID: n.ProjectID},
			ObjectType: "network", ObjectID: n.ID, TargetProject: "*", Action: action}
		c, o := s.rbacCreateOps(r, false)
		return c, o, nil
	case !on && existing != nil:
		if err := s.rbacInUse(existing, n); err != nil {
			return nil, nil, err
		}
		return nil, s.rbacDeleteOps(existing), nil
	}
	return nil, nil, nil
}

// networkRBACDeleteOps removes every policy of a network being deleted;
// the compare fails the transaction if a policy the cache has not seen yet
// exists, so none is left behind.
func (s *Service) networkRBACDeleteOps(netID string) (clientv3.Cmp, []clientv3.Op) {
	return s.objectRBACDeleteOps(netID)
}

// objectRBACDeleteOps removes every policy of an object being deleted, as
// networkRBACDeleteOps.
func (s *Service) objectRBACDeleteOps(objectID string) (clientv3.Cmp, []clientv3.Op) {
	rev := s.cache.Rev()
	var ops []clientv3.Op
	for _, r := range slices.Clone(s.rbacOf(objectID)) {
		ops = append(ops, s.rbacDeleteOps(r)...)
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(s.st.Keys.ObjectRBACPrefix(objectID)), "<", rev+1).WithPrefix()
	return cmp, ops
}

// Subnet pools and address scopes (rbac-subnetpool, rbac-address-scope)
// take access_as_shared policies only. Their '*' policy is the object's
// shared flag. Withdrawing access bumps the object's lock (SubnetPoolLock,
// AddressScopeLock), which allocating from a pool and putting a pool in a
// scope compare, so that access cannot go while it is being used.

// sharedObject is a subnet pool or address scope as its RBAC sees it.
type sharedObject struct {
	kind   string // store kind
	obj    model.Object
	owner  string
	shared *bool // the object's shared flag
	rev    int64 // its mod revision
}

// loadSharedObject reads the object a policy of type typ names; c, when set,
// must be able to see it.
func (s *Service) loadSharedObject(ctx context.Context, c *policy.Credentials, typ, id string) (*sharedObject, error) {
	switch typ {
	case "subnetpool":
		p, rev, err := load[model.SubnetPool](ctx, s, SubnetPools, id)
		if err != nil {
			return nil, err
		}
		if p == nil || c != nil && !s.canSeePool(c, p) {
			return nil, subnetPoolNotFound(id)
		}
		return &sharedObject{SubnetPools, p, p.ProjectID, &p.Shared, rev}, nil
	case "address_scope":
		a, rev, err := load[model.AddressScope](ctx, s, AddressScopes, id)
		if err != nil {
			return nil, err
		}
		if a == nil || c != nil && !s.canSeeScope(c, a) {
			return nil, addressScopeNotFound(id)
		}
		return &sharedObject{AddressScopes, a, a.ProjectID, &a.Shared, rev}, nil
	}
	return nil, apierr.InvalidInput("Unsupported RBAC object type %s", typ)
}

// rbacCallbackFailure words a refusal the way Neutron's RBAC callbacks do.
func rbacCallbackFailure(typ, msg string) string {
	class := map[string]string{"subnetpool": "subnetpool.SubnetPool", "address_scope": "address_scope.AddressScope"}[typ]
	return "Callback neutron.objects." + class + ".validate_rbac_policy_change failed with \"" + msg + "\""
}

// createObjectRBAC creates a policy on a subnet pool or address scope.
func (s *Service) createObjectRBAC(ctx context.Context, c *policy.Credentials, project, typ, objectID, target, action string) (*model.RBACPolicy, error) {
	if action != model.AccessAsShared {
		return nil, apierr.New(400, "InvalidActionForType", "Invalid action '%s' for object type '%s'. Valid actions: ('access_as_shared',)", action, typ)
	}
	if target == "*" && !c.IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("create_rbac_policy:target_tenant")
	}
	var out *model.RBACPolicy
	err := retry(ctx, "create RBAC policy", func() error {
		o, err := s.loadSharedObject(ctx, c, typ, objectID)
		if err != nil {
			return err
		}
		if !c.IsAdmin() && !c.Owns(o.owner) {
			return apierr.PolicyNotAuthorized("create_rbac_policy")
		}
		// A pool is shared only with projects that may use its scope.
		if p, ok := o.obj.(*model.SubnetPool); ok && p.AddressScopeID != "" {
			if !s.rbacShared(p.AddressScopeID, target) {
				return apierr.InvalidInput("%s", rbacCallbackFailure(typ, "Failed to create RBAC policy on object "+objectID+
					" because target project doesn't have access to associated address scope."))
			}
		}
		r := &model.RBACPolicy{Standard: model.Standard{ID: uuid.NewString(), ProjectID: project},
			ObjectType: typ, ObjectID: objectID, TargetProject: target, Action: action}
		qc, qo, err := s.quotaClaim(ctx, RBACPolicies, []*model.Standard{&r.Standard})
		if err != nil {
			return err
		}
		cmps, ops := s.rbacCreateOps(r, true)
		cmps, ops = append(cmps, qc...), append(ops, qo...)
		cmps = append(cmps, unchanged(s.st.Keys.Resource(o.kind, objectID), o.rev))
		if target == "*" {
			*o.shared = true
			o.obj.Std().Touch()
			ops = append(ops, s.putJSON(o.kind, objectID, o.obj))
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil {
			return err
		}
		if !ok {
			if resp, err := s.st.Client.Get(ctx, s.st.Keys.RBACUnique(objectID, action, target), clientv3.WithCountOnly()); err == nil && resp.Count > 0 {
				return apierr.Conflict("DuplicateRbacPolicy", "An RBAC policy already exists with those values.")
			}
			return errConflict
		}
		out = r
		return nil
	})
	return out, err
}

// objectRBACLock reads the lock of the object a policy names.
func (s *Service) objectRBACLock(ctx context.Context, r *model.RBACPolicy) (string, int64, error) {
	lock := s.st.Keys.SubnetPoolLock(r.ObjectID)
	if r.ObjectType == "address_scope" {
		lock = s.st.Keys.AddressScopeLock(r.ObjectID)
	}
	rev, err := s.lockRead(ctx, lock)
	return lock, rev, err
}

// objectRBACInUse refuses to withdraw access a project depends on: its
// subnets allocated from the pool, or its pools in the scope. The owner
// needs no policy; another policy granting the same access keeps it.
func (s *Service) objectRBACInUse(r *model.RBACPolicy) error {
	if r.Action != model.AccessAsShared {
		return nil
	}
	owner := ""
	bound := map[string]bool{}
	switch r.ObjectType {
	case "subnetpool":
		if p, ok := cachedAs[*model.SubnetPool](s, SubnetPools, r.ObjectID); ok {
			owner = p.ProjectID
		}
		for _, sn := range s.poolSubnets(r.ObjectID) {
			bound[sn.ProjectID] = true
		}
	case "address_scope":
		if a, ok := cachedAs[*model.AddressScope](s, AddressScopes, r.ObjectID); ok {
			owner = a.ProjectID
		}
		for _, p := range s.scopePools(r.ObjectID) {
			bound[p.ProjectID] = true
		}
	}
	delete(bound, owner)
	for project := range bound {
		if r.TargetProject != "*" && r.TargetProject != project {
			continue
		}
		still := false
		for _, o := range s.rbacOf(r.ObjectID) {
			if o.ID != r.ID && o.Action == model.AccessAsShared && (o.TargetProject == "*" || o.TargetProject == project) {
				still = true
				break
			}
		}
		if !still {
			inner := fmt.Sprintf("RBAC policy on object %s cannot be removed because other objects depend on it.\nDetails: project_id=%s", r.ObjectID, r.TargetProject)
			return apierr.Conflict("RbacPolicyInUse", "RBAC policy on object %s cannot be removed because other objects depend on it.\nDetails: %s", r.ObjectID, rbacCallbackFailure(r.ObjectType, inner))
		}
	}
	return nil
}

// deleteObjectRBAC is one attempt at deleting a policy on a subnet pool or
// an address scope.
func (s *Service) deleteObjectRBAC(ctx context.Context, r *model.RBACPolicy, rrev int64) error {
	lock, lockRev, err := s.objectRBACLock(ctx, r)
	if err != nil {
		return err
	}
	o, err := s.loadSharedObject(ctx, nil, r.ObjectType, r.ObjectID)
	if e, ok := apierr.As(err); ok && e.Status == 404 {
		o, err = nil, nil // the object went; its policies go with it
	}
	if err != nil {
		return err
	}
	cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(RBACPolicies, r.ID), rrev)}
	ops := s.rbacDeleteOps(r)
	if o != nil {
		if err := s.objectRBACInUse(r); err != nil {
			return err
		}
		cmps = append(cmps, lockHeld(lock, lockRev), unchanged(s.st.Keys.Resource(o.kind, r.ObjectID), o.rev))
		ops = append(ops, lockBump(lock))
		if r.TargetProject == "*" {
			*o.shared = false
			o.obj.Std().Touch()
			ops = append(ops, s.putJSON(o.kind, r.ObjectID, o.obj))
		}
	}
	ok, err := s.commit(ctx, cmps, ops)
	if err != nil {
		return err
	}
	if !ok {
		return errConflict
	}
	return nil
}
