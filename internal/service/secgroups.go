package service

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// Kinds of the security-group resources.
const (
	SecurityGroups     = "security_groups"
	SecurityGroupRules = "security_group_rules"
	AddressGroups      = "address_groups"
)

func init() {
	// Neutron's defaults. The rules a group starts with count as usage but
	// are never refused for it, as in Neutron.
	RegisterQuota("security_group", SecurityGroups, 10)
	RegisterQuota("security_group_rule", SecurityGroupRules, 100)
}

// SecurityGroupNotFound is Neutron's 404 for a group.
func SecurityGroupNotFound(id string) error {
	return apierr.New(404, "SecurityGroupNotFound", "Security group %s does not exist", id)
}

func securityGroupInUse(id string) error {
	return apierr.Conflict("SecurityGroupInUse", "Security Group %s in use.", id)
}

func defaultAlreadyExists() error {
	return apierr.Conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
}

// canSeeGroup: the owner and admins. (Sharing groups through RBAC is not
// implemented.)
func canSeeGroup(c *policy.Credentials, g *model.SecurityGroup) bool {
	return c.IsAdmin() || c.Owns(g.ProjectID)
}

// GetSecurityGroup returns a group the caller may see, with its rules.
func (s *Service) GetSecurityGroup(ctx context.Context, id string) (*model.SecurityGroup, error) {
	g, ok := s.SecurityGroup(id)
	if !ok || !canSeeGroup(creds(ctx), g) {
		return nil, SecurityGroupNotFound(id)
	}
	out := *g
	out.Rules = s.SecurityGroupRules(id)
	return &out, nil
}

// loadGroup reads a group from the cache, or the store for one another
// server just wrote; nil when absent. Writes that depend on it compare its
// existence, so a stale answer only costs a retry.
func (s *Service) loadGroup(ctx context.Context, id string) (*model.SecurityGroup, error) {
	if g, ok := s.SecurityGroup(id); ok {
		return g, nil
	}
	g, _, err := load[model.SecurityGroup](ctx, s, SecurityGroups, id)
	return g, err
}

// SecurityGroupViewFor adds a group's rules to its cached view.
func (s *Service) SecurityGroupViewFor(_ context.Context, v map[string]any) map[string]any {
	id, _ := v["id"].(string)
	rules := s.SecurityGroupRules(id)
	list := make([]any, 0, len(rules))
	for _, r := range rules {
		if it, ok := s.cache.Get(SecurityGroupRules, r.ID); ok {
			list = append(list, it.Value.(*model.Cached).View)
		}
	}
	out := maps.Clone(v)
	out["security_group_rules"] = list
	return out
}

// EnsureDefaultSecurityGroupFor creates the default group of the project a
// list of groups or rules is about, as Neutron does on those lists: the
// first project the filter names, else the caller's own. Only a project
// itself or an admin causes the creation.
func (s *Service) EnsureDefaultSecurityGroupFor(ctx context.Context, projectFilter []string) error {
	project := creds(ctx).ProjectID
	if len(projectFilter) > 0 {
		project = projectFilter[0]
	}
	_, err := s.EnsureDefaultSecurityGroup(ctx, project)
	return err
}

// EnsureDefaultSecurityGroup returns the id of a project's default group,
// creating it with Neutron's default rules if the project has none. The
// group is unique: its creation claims the project's default-group key
// with a create-if-absent compare, and a creator that loses the race takes
// the winner's group. It returns "" when the caller may not cause the
// creation (another project's, without being admin).
func (s *Service) EnsureDefaultSecurityGroup(ctx context.Context, project string) (string, error) {
	c := creds(ctx)
	if project == "" || project != c.ProjectID && !c.IsAdmin() {
		return "", nil
	}
	if id := s.idx.defaultSG(project); id != "" {
		return id, nil
	}
	key := s.st.Keys.DefaultSecurityGroup(project)
	for range maxRetries {
		resp, err := s.st.Client.Get(ctx, key)
		if err != nil {
			return "", storeErr(err)
		}
		if len(resp.Kvs) > 0 {
			// Made by another request: let the cache reach it so the
			// caller's next read sees the group.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := s.cache.WaitRev(wctx, resp.Kvs[0].ModRevision)
			cancel()
			if err != nil && ctx.Err() != nil {
				return "", ctx.Err()
			}
			return string(resp.Kvs[0].Value), nil
		}
		now := model.Now()
		g := &model.SecurityGroup{
			Standard: model.Standard{ID: uuid.NewString(), ProjectID: project, Name: model.DefaultSecurityGroupName,
				Description: model.DefaultSecurityGroupDescription, Tags: []string{}, CreatedAt: now, UpdatedAt: now},
			Stateful:  true,
			IsDefault: true,
		}
		cmps := []clientv3.Cmp{notExists(key), notExists(s.st.Keys.Resource(SecurityGroups, g.ID))}
		ops := []clientv3.Op{clientv3.OpPut(key, g.ID), s.indexOp(SecurityGroups, &g.Standard), s.putJSON(SecurityGroups, g.ID, g)}
		for _, r := range s.templateRules(g) {
			ops = append(ops, s.ruleCreateOps(r)...)
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil {
			return "", err
		}
		if ok {
			s.log.Info("created default security group", "project", project, "security_group", g.ID)
			return g.ID, nil
		}
	}
	return "", &apierr.Error{Status: 409, Type: "Conflict", Message: "Too many concurrent changes while creating the default security group; try again."}
}

// templateRules are the rules a new group starts with, ready to store.
func (s *Service) templateRules(g *model.SecurityGroup) []*model.SecurityGroupRule {
	rules := model.DefaultRules(g)
	for _, r := range rules {
		r.ID = uuid.NewString()
		r.ProjectID = g.ProjectID
		r.CreatedAt, r.UpdatedAt = g.CreatedAt, g.CreatedAt
	}
	return rules
}

// CreateSecurityGroups creates groups atomically, each with Neutron's
// egress rules; the project's default group is made first if missing.
func (s *Service) CreateSecurityGroups(ctx context.Context, items []model.Fields) ([]*model.SecurityGroup, error) {
	c := creds(ctx)
	var groups []*model.SecurityGroup
	for _, f := range items {
		project, err := checkCreate(c, model.SecurityGroupSpec, f)
		if err != nil {
			return nil, err
		}
		if name, _ := f["name"].(string); strings.EqualFold(name, model.DefaultSecurityGroupName) {
			return nil, defaultAlreadyExists()
		}
		now := model.Now()
		g := &model.SecurityGroup{
			Standard: model.Standard{ID: uuid.NewString(), ProjectID: project, Tags: []string{}, CreatedAt: now, UpdatedAt: now},
			Stateful: true,
		}
		g.ApplyStandard(f)
		if v, ok := f["stateful"]; ok {
			g.Stateful = v.(bool)
		}
		groups = append(groups, g)
	}
	for _, g := range groups {
		if _, err := s.EnsureDefaultSecurityGroup(ctx, g.ProjectID); err != nil {
			return nil, err
		}
		// As Neutron's quota_limit_check: the rule quota must have room
		// for the rules a group starts with (usage is not checked).
		if l := s.Limits(g.ProjectID)["security_group_rule"]; l != Unlimited && l < len(model.DefaultRules(g)) {
			return nil, overQuota("security_group_rule")
		}
	}
	err := retry(ctx, "create security groups", func() error {
		qc, qo, err := s.quotaClaim(ctx, SecurityGroups, stds(groups))
		if err != nil {
			return err
		}
		cmps, ops := qc, qo
		for _, g := range groups {
			g.Rules = s.templateRules(g)
			cmps = append(cmps, notExists(s.st.Keys.Resource(SecurityGroups, g.ID)))
			ops = append(ops, s.indexOp(SecurityGroups, &g.Standard), s.putJSON(SecurityGroups, g.ID, g))
			for _, r := range g.Rules {
				ops = append(ops, s.ruleCreateOps(r)...)
			}
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil || ok {
			return err
		}
		return errConflict // a quota slot was taken meanwhile
	})
	if err != nil {
		return nil, err
	}
	return groups, nil
}

func overQuota(name string) error {
	return apierr.Conflict("OverQuota", "Quota exceeded for resources: ['%s'].", name)
}

// groupPorts counts the ports in a group, in the store.
func (s *Service) groupPorts(ctx context.Context, id string) (int64, error) {
	resp, err := s.st.Client.Get(ctx, s.st.Keys.SecurityGroupPortPrefix(id), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, storeErr(err)
	}
	return resp.Count, nil
}

// noPortsIn holds while no port is in the group.
func (s *Service) noPortsIn(id string) clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(s.st.Keys.SecurityGroupPortPrefix(id)), "=", 0).WithPrefix()
}

// UpdateSecurityGroup renames, describes or changes the statefulness of a
// group. The default group keeps its name, and a group in use keeps its
// statefulness, as Neutron.
func (s *Service) UpdateSecurityGroup(ctx context.Context, id string, f model.Fields) (*model.SecurityGroup, error) {
	c := creds(ctx)
	if name, ok := f["name"].(string); ok && strings.EqualFold(name, model.DefaultSecurityGroupName) {
		return nil, defaultAlreadyExists()
	}
	var out *model.SecurityGroup
	err := retry(ctx, "update security group", func() error {
		g, rev, err := load[model.SecurityGroup](ctx, s, SecurityGroups, id)
		if err != nil {
			return err
		}
		if g == nil || !canSeeGroup(c, g) {
			return SecurityGroupNotFound(id)
		}
		if !policy.CanChange(c, g.ProjectID) {
			return apierr.PolicyNotAuthorized("update_security_group")
		}
		if err := checkIfMatch(ctx, g.RevisionNumber); err != nil {
			return err
		}
		if g.Name == model.DefaultSecurityGroupName && f.Has("name") {
			return apierr.Conflict("SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
		}
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(SecurityGroups, id), rev)}
		if v, ok := f["stateful"]; ok && v.(bool) != g.Stateful {
			n, err := s.groupPorts(ctx, id)
			if err != nil {
				return err
			}
			if n > 0 {
				return securityGroupInUse(id)
			}
			g.Stateful = v.(bool)
			cmps = append(cmps, s.noPortsIn(id))
		}
		g.ApplyStandard(f)
		g.Touch()
		ok, err := s.commit(ctx, cmps, []clientv3.Op{s.putJSON(SecurityGroups, id, g)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		g.Rules = s.SecurityGroupRules(id)
		out = g
		return nil
	})
	return out, err
}

// DeleteSecurityGroup deletes a group no port is in, with its rules and
// the rules of other groups naming it as their remote (Neutron's cascade).
// Only an admin deletes a default group; the project gets a new one when
// it next needs it.
func (s *Service) DeleteSecurityGroup(ctx context.Context, id string) error {
	c := creds(ctx)
	return retry(ctx, "delete security group", func() error {
		g, rev, err := load[model.SecurityGroup](ctx, s, SecurityGroups, id)
		if err != nil {
			return err
		}
		if g == nil || !canSeeGroup(c, g) {
			return SecurityGroupNotFound(id)
		}
		if err := checkIfMatch(ctx, g.RevisionNumber); err != nil {
			return err
		}
		// One read at one revision: the group's ports, its rules, and the
		// rules naming it.
		rulePrefix, remotePrefix := s.st.Keys.SecurityGroupRulePrefix(id), s.st.Keys.SecurityGroupRemotePrefix(id)
		resp, err := s.st.Client.Txn(ctx).Then(
			clientv3.OpGet(s.st.Keys.SecurityGroupPortPrefix(id), clientv3.WithPrefix(), clientv3.WithCountOnly()),
			clientv3.OpGet(rulePrefix, clientv3.WithPrefix()),
			clientv3.OpGet(remotePrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		).Commit()
		if err != nil {
			return storeErr(err)
		}
		if resp.Responses[0].GetResponseRange().Count > 0 {
			return securityGroupInUse(id)
		}
		if g.Name == model.DefaultSecurityGroupName && !c.IsAdmin() {
			return apierr.Conflict("SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
		}
		if !policy.CanChange(c, g.ProjectID) {
			return apierr.PolicyNotAuthorized("delete_security_group")
		}
		readRev := resp.Header.Revision
		ruleIDs := map[string]bool{}
		for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
			ruleIDs[string(kv.Value)] = true
		}
		for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
			ruleIDs[strings.TrimPrefix(string(kv.Key), remotePrefix)] = true
		}
		cmps := []clientv3.Cmp{unchanged(s.st.Keys.Resource(SecurityGroups, id), rev), s.noPortsIn(id),
			noneNewUnder(rulePrefix, readRev), noneNewUnder(remotePrefix, readRev)}
		ops := append([]clientv3.Op{clientv3.OpDelete(s.st.Keys.Resource(SecurityGroups, id))}, s.releaseOps(SecurityGroups, &g.Standard)...)
		if g.IsDefault {
			ops = append(ops, clientv3.OpDelete(s.st.Keys.DefaultSecurityGroup(g.ProjectID)))
		}
		for _, rid := range slices.Sorted(maps.Keys(ruleIDs)) {
			r, err := s.loadRule(ctx, rid)
			if err != nil {
				return err
			}
			if r != nil {
				// Rules never change: one that still exists is as read.
				cmps = append(cmps, exists(s.st.Keys.Resource(SecurityGroupRules, rid)))
				ops = append(ops, s.ruleDeleteOps(r)...)
			}
		}
		ok, err := s.commit(ctx, cmps, ops)
		if err != nil || ok {
			return err
		}
		return errConflict
	})
}
