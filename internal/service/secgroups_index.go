package service

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/vland/vland/internal/model"
)

// sgIndex is the part of the cache's index security groups need: each
// group's rules and member ports, the rules naming a group or an address
// group as their remote, and each project's default group. It lives inside
// index and runs under its lock.
type sgIndex struct {
	rules    map[string]map[string]bool // group → its rule ids
	remote   map[string]map[string]bool // group → ids of rules naming it as remote_group_id
	agRules  map[string]map[string]bool // address group → ids of rules naming it
	members  map[string]map[string]bool // group → ids of ports in it
	defaults map[string]string          // project → its default group's id
}

func (x *sgIndex) reset() {
	x.rules = map[string]map[string]bool{}
	x.remote = map[string]map[string]bool{}
	x.agRules = map[string]map[string]bool{}
	x.members = map[string]map[string]bool{}
	x.defaults = map[string]string{}
}

// setIn adds or removes id in m[key].
func setIn(m map[string]map[string]bool, key, id string, add bool) {
	if key == "" {
		return
	}
	s := m[key]
	if add {
		if s == nil {
			s = map[string]bool{}
			m[key] = s
		}
		s[id] = true
		return
	}
	delete(s, id)
	if len(s) == 0 {
		delete(m, key)
	}
}

// apply records (add) or forgets an object.
func (x *sgIndex) apply(id string, obj model.Object, add bool) {
	switch o := obj.(type) {
	case *model.SecurityGroup:
		if !o.IsDefault {
			return
		}
		if add {
			x.defaults[o.ProjectID] = id
		} else if x.defaults[o.ProjectID] == id {
			delete(x.defaults, o.ProjectID)
		}
	case *model.SecurityGroupRule:
		setIn(x.rules, o.SecurityGroupID, id, add)
		setIn(x.remote, o.RemoteGroupID, id, add)
		setIn(x.agRules, o.RemoteAddressGroupID, id, add)
	case *model.Port:
		for _, g := range o.SecurityGroups {
			setIn(x.members, g, id, add)
		}
	}
}

// sgSet returns the sorted ids in m[key].
func (ix *index) sgSet(m func(*sgIndex) map[string]map[string]bool, key string) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return slices.Sorted(maps.Keys(m(&ix.sg)[key]))
}

// defaultSG returns the id of a project's default group as cached.
func (ix *index) defaultSG(project string) string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.sg.defaults[project]
}

// The read path below is what the agent API serves hosts from: each
// answer comes from the cache and its index, without a scan of all ports
// or rules, and reflects the cache's revision (Cache().Rev()) or later.

// SecurityGroup returns a cached security group (without its Rules).
func (s *Service) SecurityGroup(id string) (*model.SecurityGroup, bool) {
	return cachedAs[*model.SecurityGroup](s, SecurityGroups, id)
}

// SecurityGroupRules returns a group's rules, sorted by id.
func (s *Service) SecurityGroupRules(groupID string) []*model.SecurityGroupRule {
	ids := s.idx.sgSet(func(x *sgIndex) map[string]map[string]bool { return x.rules }, groupID)
	out := make([]*model.SecurityGroupRule, 0, len(ids))
	for _, id := range ids {
		if r, ok := cachedAs[*model.SecurityGroupRule](s, SecurityGroupRules, id); ok {
			out = append(out, r)
		}
	}
	return out
}

// SecurityGroupMembers returns the ids of the ports in a group, sorted:
// the remote-group membership a rule naming the group matches.
func (s *Service) SecurityGroupMembers(groupID string) []string {
	return s.idx.sgSet(func(x *sgIndex) map[string]map[string]bool { return x.members }, groupID)
}

// SecurityGroupAddresses returns the addresses a rule naming the group as
// its remote matches: the fixed IPs (as host prefixes) and the allowed
// address pairs of its member ports, sorted and without duplicates.
func (s *Service) SecurityGroupAddresses(groupID string) []netip.Prefix {
	var out []netip.Prefix
	for _, id := range s.SecurityGroupMembers(groupID) {
		p, ok := cachedAs[*model.Port](s, Ports, id)
		if !ok {
			continue
		}
		for _, f := range p.FixedIPs {
			out = append(out, netip.PrefixFrom(f.IPAddress, f.IPAddress.BitLen()))
		}
		for _, a := range p.AllowedAddressPairs {
			out = append(out, a.IPAddress)
		}
	}
	return model.SortPrefixes(out)
}

// SecurityGroupsReferencing returns the groups (sorted) with a rule naming
// groupID as its remote_group_id: the groups whose ports' filters a change
// of groupID's membership affects.
func (s *Service) SecurityGroupsReferencing(groupID string) []string {
	return s.groupsOfRules(s.idx.sgSet(func(x *sgIndex) map[string]map[string]bool { return x.remote }, groupID))
}

// SecurityGroupsReferencingAddressGroup returns the groups (sorted) with a
// rule naming the address group as its remote.
func (s *Service) SecurityGroupsReferencingAddressGroup(addressGroupID string) []string {
	return s.groupsOfRules(s.idx.sgSet(func(x *sgIndex) map[string]map[string]bool { return x.agRules }, addressGroupID))
}

func (s *Service) groupsOfRules(ruleIDs []string) []string {
	var out []string
	for _, id := range ruleIDs {
		if r, ok := cachedAs[*model.SecurityGroupRule](s, SecurityGroupRules, id); ok && !slices.Contains(out, r.SecurityGroupID) {
			out = append(out, r.SecurityGroupID)
		}
	}
	slices.Sort(out)
	return out
}

// AddressGroup returns a cached address group.
func (s *Service) AddressGroup(id string) (*model.AddressGroup, bool) {
	return cachedAs[*model.AddressGroup](s, AddressGroups, id)
}
