package service

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// AddressGroupNotFound is Neutron's 404 for an address group.
func AddressGroupNotFound(id string) error {
	return apierr.New(404, "AddressGroupNotFound", "Address group %s could not be found.", id)
}

// canSeeAddressGroup: the owner and admins (sharing address groups through
// RBAC is not implemented).
func canSeeAddressGroup(c *policy.Credentials, a *model.AddressGroup) bool {
	return c.IsAdmin() || c.Owns(a.ProjectID)
}

// GetAddressGroup returns an address group the caller may see.
func (s *Service) GetAddressGroup(ctx context.Context, id string) (*model.AddressGroup, error) {
	a, ok := s.AddressGroup(id)
	if !ok || !canSeeAddressGroup(creds(ctx), a) {
		return nil, AddressGroupNotFound(id)
	}
	return a, nil
}

// loadAddressGroup reads an address group from the cache, or the store;
// nil when absent.
func (s *Service) loadAddressGroup(ctx context.Context, id string) (*model.AddressGroup, error) {
	if a, ok := s.AddressGroup(id); ok {
		return a, nil
	}
	a, _, err := load[model.AddressGroup](ctx, s, AddressGroups, id)
	return a, err
}

// CreateAddressGroups creates address groups atomically.
func (s *Service) CreateAddressGroups(ctx context.Context, items []model.Fields) ([]*model.AddressGroup, error) {
	c := creds(ctx)
	var out []*model.AddressGroup
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, f := range items {
		project, err := checkCreate(c, model.AddressGroupSpec, f)
		if err != nil {
			return nil, err
		}
		now := model.Now()
		a := &model.AddressGroup{
			Standard:  model.Standard{ID: uuid.NewString(), ProjectID: project, CreatedAt: now, UpdatedAt: now},
			Addresses: []netip.Prefix{},
		}
		a.ApplyStandard(f)
		if v, ok := f["addresses"]; ok {
			a.Addresses = model.SortPrefixes(slices.Clone(v.([]netip.Prefix)))
		}
		cmps = append(cmps, notExists(s.st.Keys.Resource(AddressGroups, a.ID)))
		ops = append(ops, s.indexOp(AddressGroups, &a.Standard), s.putJSON(AddressGroups, a.ID, a))
		out = append(out, a)
	}
	ok, err := s.commit(ctx, cmps, ops)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Only fresh random ids are compared: this does not happen.
		return nil, apierr.Conflict("Conflict", "Address group id collision; try again.")
	}
	return out, nil
}

// changeAddressGroup applies change to an address group the caller may
// change, in one transaction.
func (s *Service) changeAddressGroup(ctx context.Context, id, action string, change func(a *model.AddressGroup) error) (*model.AddressGroup, error) {
	c := creds(ctx)
	var out *model.AddressGroup
	err := retry(ctx, action, func() error {
		a, rev, err := load[model.AddressGroup](ctx, s, AddressGroups, id)
		if err != nil {
			return err
		}
		if a == nil || !canSeeAddressGroup(c, a) {
			return AddressGroupNotFound(id)
		}
		if !policy.CanChange(c, a.ProjectID) {
			return apierr.PolicyNotAuthorized(action)
		}
		if err := checkIfMatch(ctx, a.RevisionNumber); err != nil {
			return err
		}
		if err := change(a); err != nil {
			return err
		}
		a.Touch()
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(AddressGroups, id), rev)}, []clientv3.Op{s.putJSON(AddressGroups, id, a)})
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

// UpdateAddressGroup changes an address group's name or description.
func (s *Service) UpdateAddressGroup(ctx context.Context, id string, f model.Fields) (*model.AddressGroup, error) {
	return s.changeAddressGroup(ctx, id, "update_address_group", func(a *model.AddressGroup) error {
		a.ApplyStandard(f)
		return nil
	})
}

// pyPrefixes renders prefixes as Neutron's messages quote a Python list.
func pyPrefixes(ps []netip.Prefix) string {
	q := make([]string, len(ps))
	for i, p := range ps {
		q[i] = "'" + p.String() + "'"
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// AddAddresses adds CIDRs to an address group; none may be in it already
// (AddressesAlreadyExist), as Neutron's add_addresses.
func (s *Service) AddAddresses(ctx context.Context, id string, addrs []netip.Prefix) (*model.AddressGroup, error) {
	return s.changeAddressGroup(ctx, id, "add_addresses", func(a *model.AddressGroup) error {
		var there []netip.Prefix
		for _, p := range model.SortPrefixes(slices.Clone(addrs)) {
			if slices.Contains(a.Addresses, p) {
				there = append(there, p)
			}
		}
		if len(there) > 0 {
			return apierr.New(400, "AddressesAlreadyExist", "Addresses %s already exist in the address group %s.", pyPrefixes(there), id)
		}
		a.Addresses = model.SortPrefixes(append(a.Addresses, addrs...))
		return nil
	})
}

// RemoveAddresses removes CIDRs from an address group; all must be in it
// (AddressesNotFound), as Neutron's remove_addresses.
func (s *Service) RemoveAddresses(ctx context.Context, id string, addrs []netip.Prefix) (*model.AddressGroup, error) {
	return s.changeAddressGroup(ctx, id, "remove_addresses", func(a *model.AddressGroup) error {
		var missing []netip.Prefix
		for _, p := range model.SortPrefixes(slices.Clone(addrs)) {
			if !slices.Contains(a.Addresses, p) {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return apierr.New(404, "AddressesNotFound", "Addresses %s not found in the address group %s.", pyPrefixes(missing), id)
		}
		a.Addresses = slices.DeleteFunc(a.Addresses, func(p netip.Prefix) bool { return slices.Contains(addrs, p) })
		return nil
	})
}

// DeleteAddressGroup deletes an address group no rule names.
func (s *Service) DeleteAddressGroup(ctx context.Context, id string) error {
	c := creds(ctx)
	return retry(ctx, "delete address group", func() error {
		a, rev, err := load[model.AddressGroup](ctx, s, AddressGroups, id)
		if err != nil {
			return err
		}
		if a == nil || !canSeeAddressGroup(c, a) {
			return AddressGroupNotFound(id)
		}
		if !policy.CanChange(c, a.ProjectID) {
			return apierr.PolicyNotAuthorized("delete_address_group")
		}
		if err := checkIfMatch(ctx, a.RevisionNumber); err != nil {
			return err
		}
		prefix := s.st.Keys.AddressGroupRulePrefix(id)
		resp, err := s.st.Client.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return storeErr(err)
		}
		if resp.Count > 0 {
			return apierr.Conflict("AddressGroupInUse", "Address group %s is in use on one or more security group rules.", id)
		}
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(AddressGroups, id), rev),
			clientv3.Compare(clientv3.CreateRevision(prefix), "=", 0).WithPrefix()}
		ops := append([]clientv3.Op{clientv3.OpDelete(s.st.Keys.Resource(AddressGroups, id))}, s.releaseOps(AddressGroups, &a.Standard)...)
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil || ok {
			return err
		}
		return errConflict
	})
}
