package service

import (
	"context"
	"net/http"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// SecurityGroupRuleNotFound is Neutron's 404 for a rule.
func SecurityGroupRuleNotFound(id string) error {
	return apierr.New(404, "SecurityGroupRuleNotFound", "Security group rule %s does not exist", id)
}

// canSeeRule: admins, the rule's project and the owner of its group
// (Neutron's sg_owner rule).
func (s *Service) canSeeRule(c *policy.Credentials, r *model.SecurityGroupRule) bool {
	if c.IsAdmin() || c.Owns(r.ProjectID) {
		return true
	}
	g, ok := s.SecurityGroup(r.SecurityGroupID)
	return ok && c.Owns(g.ProjectID)
}

// GetSecurityGroupRule returns a rule the caller may see.
func (s *Service) GetSecurityGroupRule(ctx context.Context, id string) (*model.SecurityGroupRule, error) {
	r, ok := cachedAs[*model.SecurityGroupRule](s, SecurityGroupRules, id)
	if !ok || !s.canSeeRule(creds(ctx), r) {
		return nil, SecurityGroupRuleNotFound(id)
	}
	return r, nil
}

// loadRule reads a rule from the cache, or the store for one another
// server just wrote; nil when absent. Rules never change once written.
func (s *Service) loadRule(ctx context.Context, id string) (*model.SecurityGroupRule, error) {
	if r, ok := cachedAs[*model.SecurityGroupRule](s, SecurityGroupRules, id); ok {
		return r, nil
	}
	r, _, err := load[model.SecurityGroupRule](ctx, s, SecurityGroupRules, id)
	return r, err
}

// ruleCreateOps store a new rule with its uniqueness and reference keys.
func (s *Service) ruleCreateOps(r *model.SecurityGroupRule) []clientv3.Op {
	ops := []clientv3.Op{
		s.indexOp(SecurityGroupRules, &r.Standard),
		s.putJSON(SecurityGroupRules, r.ID, r),
		clientv3.OpPut(s.st.Keys.SecurityGroupRule(r.SecurityGroupID, r.Key()), r.ID),
	}
	if r.RemoteGroupID != "" {
		ops = append(ops, clientv3.OpPut(s.st.Keys.SecurityGroupRemote(r.RemoteGroupID, r.ID), r.SecurityGroupID))
	}
	if r.RemoteAddressGroupID != "" {
		ops = append(ops, clientv3.OpPut(s.st.Keys.AddressGroupRule(r.RemoteAddressGroupID, r.ID), ""))
	}
	return ops
}

// ruleDeleteOps remove a rule and everything ruleCreateOps wrote for it.
func (s *Service) ruleDeleteOps(r *model.SecurityGroupRule) []clientv3.Op {
	ops := append([]clientv3.Op{
		clientv3.OpDelete(s.st.Keys.Resource(SecurityGroupRules, r.ID)),
		clientv3.OpDelete(s.st.Keys.SecurityGroupRule(r.SecurityGroupID, r.Key())),
	}, s.releaseOps(SecurityGroupRules, &r.Standard)...)
	if r.RemoteGroupID != "" {
		ops = append(ops, clientv3.OpDelete(s.st.Keys.SecurityGroupRemote(r.RemoteGroupID, r.ID)))
	}
	if r.RemoteAddressGroupID != "" {
		ops = append(ops, clientv3.OpDelete(s.st.Keys.AddressGroupRule(r.RemoteAddressGroupID, r.ID)))
	}
	return ops
}

// rulePlan is one rule create request being checked.
type rulePlan struct {
	rules []*model.SecurityGroupRule
	cmps  []clientv3.Cmp
	dups  map[string]string // uniqueness key → rule id, for the conflict's message
}

// CreateSecurityGroupRules creates rules atomically, all in one group and
// of one project when several are given (Neutron's bulk rules). Each is
// checked as Neutron does, in its order: policy, the group, the attribute
// rules (400), the remote group and address group (404), duplicates (409),
// the quota.
func (s *Service) CreateSecurityGroupRules(ctx context.Context, items []model.Fields) ([]*model.SecurityGroupRule, error) {
	c := creds(ctx)
	var groupID, project string
	plan := &rulePlan{dups: map[string]string{}}
	for i, f := range items {
		p, err := checkCreate(c, model.SecurityGroupRuleSpec, f)
		if err != nil {
			return nil, err
		}
		gid := f["security_group_id"].(string)
		if i == 0 {
			groupID = gid
		} else if gid != groupID {
			return nil, apierr.New(400, "SecurityGroupNotSingleGroupRules", "Only allowed to update rules for one security profile at a time")
		}
		g, err := s.loadGroup(ctx, gid)
		if err != nil {
			return nil, err
		}
		if g == nil || !canSeeGroup(c, g) {
			return nil, SecurityGroupNotFound(gid)
		}
		// A rule belongs to its group's project unless an admin says
		// otherwise.
		if !f.Has("project_id") {
			p = g.ProjectID
		}
		if i == 0 {
			project = p
		} else if p != project {
			return nil, apierr.New(400, "SecurityGroupRulesNotSingleProject", "Multiple project_ids in bulk security group rule create not allowed")
		}
		r, err := s.newRule(ctx, c, f, g, p, plan)
		if err != nil {
			return nil, err
		}
		if !policy.CanChange(c, g.ProjectID) {
			return nil, apierr.PolicyNotAuthorized("create_security_group_rule")
		}
		plan.rules = append(plan.rules, r)
	}
	if err := s.checkDuplicateRules(groupID, plan); err != nil {
		return nil, err
	}
	err := retry(ctx, "create security group rules", func() error {
		qc, qo, err := s.quotaClaim(ctx, SecurityGroupRules, stds(plan.rules))
		if err != nil {
			return err
		}
		cmps, ops := append(qc, plan.cmps...), qo
		for _, r := range plan.rules {
			cmps = append(cmps, notExists(s.st.Keys.SecurityGroupRule(r.SecurityGroupID, r.Key())))
			ops = append(ops, s.ruleCreateOps(r)...)
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil || ok {
			return err
		}
		return s.explainRuleConflict(ctx, plan)
	})
	if err != nil {
		return nil, err
	}
	return plan.rules, nil
}

// newRule builds and checks one rule of group g for project, adding to
// the plan the existence of what it refers to.
func (s *Service) newRule(ctx context.Context, c *policy.Credentials, f model.Fields, g *model.SecurityGroup, project string, plan *rulePlan) (*model.SecurityGroupRule, error) {
	r, err := model.NewSecurityGroupRule(f)
	if err != nil {
		return nil, err
	}
	// The remotes must be visible to the rule's project (any, for admins).
	if id := r.RemoteGroupID; id != "" {
		rg, err := s.loadGroup(ctx, id)
		if err != nil {
			return nil, err
		}
		if rg == nil || !c.IsAdmin() && rg.ProjectID != project {
			return nil, SecurityGroupNotFound(id)
		}
		if id != g.ID {
			plan.cmps = append(plan.cmps, exists(s.st.Keys.Resource(SecurityGroups, id)))
		}
	}
	if id := r.RemoteAddressGroupID; id != "" {
		ag, err := s.loadAddressGroup(ctx, id)
		if err != nil {
			return nil, err
		}
		if ag == nil || !c.IsAdmin() && ag.ProjectID != project {
			return nil, AddressGroupNotFound(id)
		}
		plan.cmps = append(plan.cmps, exists(s.st.Keys.Resource(AddressGroups, id)))
	}
	if len(plan.rules) == 0 {
		plan.cmps = append(plan.cmps, exists(s.st.Keys.Resource(SecurityGroups, g.ID)))
	}
	now := model.Now()
	r.ID = uuid.NewString()
	r.ProjectID = project
	r.CreatedAt, r.UpdatedAt = now, now
	r.BelongsToDefault = g.IsDefault
	return r, nil
}

// checkDuplicateRules refuses rules that repeat each other or a rule of
// the group; the transaction's uniqueness keys settle races.
func (s *Service) checkDuplicateRules(groupID string, plan *rulePlan) error {
	seen := map[string]bool{}
	for _, r := range plan.rules {
		k := r.Key()
		if seen[k] {
			return apierr.Conflict("DuplicateSecurityGroupRuleInPost", "Duplicate Security Group Rule in POST.")
		}
		seen[k] = true
	}
	for _, old := range s.SecurityGroupRules(groupID) {
		if seen[old.Key()] {
			return ruleExists(old.ID)
		}
	}
	return nil
}

func ruleExists(id string) error {
	return apierr.Conflict("SecurityGroupRuleExists", "Security group rule already exists. Rule id is %s.", id)
}

// explainRuleConflict reports the rule a failed create duplicates, the
// group or remote that went away, or a race to retry.
func (s *Service) explainRuleConflict(ctx context.Context, plan *rulePlan) error {
	for _, r := range plan.rules {
		resp, err := s.st.Client.Get(ctx, s.st.Keys.SecurityGroupRule(r.SecurityGroupID, r.Key()))
		if err != nil {
			return storeErr(err)
		}
		if len(resp.Kvs) > 0 {
			return ruleExists(string(resp.Kvs[0].Value))
		}
	}
	r := plan.rules[0]
	if g, err := s.loadGroup(ctx, r.SecurityGroupID); err != nil || g == nil {
		if err != nil {
			return err
		}
		return SecurityGroupNotFound(r.SecurityGroupID)
	}
	return errConflict
}

// ErrRuleUpdate is Neutron's answer to a rule update: rules cannot change.
var ErrRuleUpdate = apierr.New(http.StatusMethodNotAllowed, "HTTPMethodNotAllowed", "Security group rules cannot be updated; delete the rule and create a new one.")

// DeleteSecurityGroupRule deletes a rule: its project, its group's owner
// or an admin may.
func (s *Service) DeleteSecurityGroupRule(ctx context.Context, id string) error {
	c := creds(ctx)
	return retry(ctx, "delete security group rule", func() error {
		r, rev, err := load[model.SecurityGroupRule](ctx, s, SecurityGroupRules, id)
		if err != nil {
			return err
		}
		if r == nil || !s.canSeeRule(c, r) {
			return SecurityGroupRuleNotFound(id)
		}
		owner := r.ProjectID
		if g, ok := s.SecurityGroup(r.SecurityGroupID); ok && c.Owns(g.ProjectID) {
			owner = g.ProjectID
		}
		if !policy.CanChange(c, owner) {
			return apierr.PolicyNotAuthorized("delete_security_group_rule")
		}
		if err := checkIfMatch(ctx, r.RevisionNumber); err != nil {
			return err
		}
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(s.st.Keys.Resource(SecurityGroupRules, id), rev)}, s.ruleDeleteOps(r))
		if err != nil || ok {
			return err
		}
		return errConflict
	})
}
