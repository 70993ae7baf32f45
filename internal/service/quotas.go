package service

import (
	"context"
	"maps"
	"slices"
	"sort"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// Quotas is the kind of per-project quota overrides.
const Quotas = "quotas"

// Unlimited is the quota limit that disables a quota.
const Unlimited = -1

// quotaResource is a resource counted against a quota.
type quotaResource struct {
	kind string // the collection whose objects are counted
	def  int    // the default limit
}

// quotaResources are the registered resources, by quota name. Later
// resources register with RegisterQuota.
var quotaResources = map[string]quotaResource{
	"network":     {Networks, 100},
	"subnet":      {Subnets, 100},
	"port":        {Ports, 500},
	"rbac_policy": {"rbac_policies", 10},
	"subnetpool":  {"subnetpools", Unlimited},
}

// RegisterQuota adds a resource to the quota mechanism.
func RegisterQuota(name, kind string, def int) { quotaResources[name] = quotaResource{kind, def} }

// QuotaResources lists the registered quota names, sorted.
func QuotaResources() []string { return slices.Sorted(maps.Keys(quotaResources)) }

// quotaName returns the quota counting objects of kind, if any.
func quotaName(kind string) (string, bool) {
	for name, r := range quotaResources {
		if r.kind == kind {
			return name, true
		}
	}
	return "", false
}

// Limits returns a project's quota limits: its overrides over the defaults.
func (s *Service) Limits(project string) map[string]int {
	out := map[string]int{}
	for name, r := range quotaResources {
		out[name] = r.def
		if d, ok := s.cfg.QuotaDefaults[name]; ok {
			out[name] = d
		}
	}
	if q, ok := cachedAs[*model.Quota](s, Quotas, project); ok {
		for name, v := range q.Limits {
			if _, known := quotaResources[name]; known {
				out[name] = v
			}
		}
	}
	return out
}

// Defaults returns the default quota limits.
func (s *Service) Defaults() map[string]int {
	out := map[string]int{}
	for name, r := range quotaResources {
		out[name] = r.def
		if d, ok := s.cfg.QuotaDefaults[name]; ok {
			out[name] = d
		}
	}
	return out
}

// usage counts a project's objects of kind in the store.
func (s *Service) usage(ctx context.Context, project, kind string) (int64, int64, error) {
	resp, err := s.st.Client.Get(ctx, s.st.Keys.ProjectIndexPrefix(project, kind), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, 0, storeErr(err)
	}
	return resp.Count, resp.Header.Revision, nil
}

// quotaClaim enforces quotas on new objects of kind: each object claims a
// free slot among its project's limit-many slots with a create-if-absent
// compare, so concurrent creates at the edge of a quota never exceed it
// and creates far from it do not serialise. Objects created while a quota
// was unlimited hold no slot; the usage count catches those.
func (s *Service) quotaClaim(ctx context.Context, kind string, objs []*model.Standard) ([]clientv3.Cmp, []clientv3.Op, error) {
	name, ok := quotaName(kind)
	if !ok {
		return nil, nil, nil
	}
	byProject := map[string][]*model.Standard{}
	for _, o := range objs {
		byProject[o.ProjectID] = append(byProject[o.ProjectID], o)
	}
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, project := range slices.Sorted(maps.Keys(byProject)) {
		limit := s.Limits(project)[name]
		if limit == Unlimited {
			continue
		}
		news := byProject[project]
		used, free := s.idx.usage(kind, project, limit, len(news))
		if used+len(news) > limit || len(free) < len(news) {
			return nil, nil, apierr.Conflict("OverQuota", "Quota exceeded for resources: ['%s'].", name)
		}
		for i, o := range news {
			key := s.st.Keys.QuotaSlot(project, kind, free[i])
			o.QuotaSlot = free[i] + 1
			cmps = append(cmps, notExists(key))
			ops = append(ops, clientv3.OpPut(key, o.ID))
		}
	}
	return cmps, ops, nil
}

// releaseOps free what an object held for quotas: its index key and slot.
func (s *Service) releaseOps(kind string, std *model.Standard) []clientv3.Op {
	ops := []clientv3.Op{clientv3.OpDelete(s.st.Keys.ProjectIndex(std.ProjectID, kind, std.ID))}
	if std.QuotaSlot > 0 {
		ops = append(ops, clientv3.OpDelete(s.st.Keys.QuotaSlot(std.ProjectID, kind, std.QuotaSlot-1)))
	}
	return ops
}

// indexOp records an object in its project's index.
func (s *Service) indexOp(kind string, std *model.Standard) clientv3.Op {
	return clientv3.OpPut(s.st.Keys.ProjectIndex(std.ProjectID, kind, std.ID), "")
}

// QuotaDetail is one resource's limit and usage.
type QuotaDetail struct {
	Limit    int   `json:"limit"`
	Used     int64 `json:"used"`
	Reserved int   `json:"reserved"`
}

// checkQuotaRead allows a project to read its own quota, admins any.
func checkQuotaRead(c *policy.Credentials, project string) error {
	if c.IsAdmin() || c.ProjectID == project {
		return nil
	}
	return apierr.PolicyNotAuthorized("get_quota")
}

// GetQuota returns a project's limits.
func (s *Service) GetQuota(ctx context.Context, project string) (map[string]int, error) {
	if err := checkQuotaRead(creds(ctx), project); err != nil {
		return nil, err
	}
	return s.Limits(project), nil
}

// QuotaDetails returns a project's limits with usage.
func (s *Service) QuotaDetails(ctx context.Context, project string) (map[string]QuotaDetail, error) {
	if err := checkQuotaRead(creds(ctx), project); err != nil {
		return nil, err
	}
	out := map[string]QuotaDetail{}
	for name, limit := range s.Limits(project) {
		used, _, err := s.usage(ctx, project, quotaResources[name].kind)
		if err != nil {
			return nil, err
		}
		out[name] = QuotaDetail{Limit: limit, Used: used}
	}
	return out, nil
}

// ListQuotas returns every project with overrides (admins only).
func (s *Service) ListQuotas(ctx context.Context) ([]map[string]any, error) {
	if !creds(ctx).IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("get_quota")
	}
	var out []map[string]any
	for _, it := range s.cache.List(Quotas) {
		q := it.Value.(*model.Cached).Obj.(*model.Quota)
		m := map[string]any{"project_id": q.ProjectID, "tenant_id": q.ProjectID}
		for k, v := range s.Limits(q.ProjectID) {
			m[k] = v
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["project_id"].(string) < out[j]["project_id"].(string) })
	return out, nil
}

// UpdateQuota sets limits of a project (admins only). Unless force is set,
// a limit below current usage is refused, as Neutron does.
func (s *Service) UpdateQuota(ctx context.Context, project string, limits map[string]int, force bool) (map[string]int, error) {
	if !creds(ctx).IsAdmin() {
		return nil, apierr.PolicyNotAuthorized("update_quota")
	}
	if !force {
		for _, name := range slices.Sorted(maps.Keys(limits)) {
			limit := limits[name]
			if limit == Unlimited {
				continue
			}
			used, _, err := s.usage(ctx, project, quotaResources[name].kind)
			if err != nil {
				return nil, err
			}
			if used > int64(limit) {
				return nil, apierr.BadRequest("Quota limit %d for %s must be greater than or equal to already used %d", limit, name, used)
			}
		}
	}
	err := retry(ctx, "update quota", func() error {
		q, rev, err := load[model.Quota](ctx, s, Quotas, project)
		if err != nil {
			return err
		}
		key := s.st.Keys.Resource(Quotas, project)
		cmp := notExists(key)
		if q == nil {
			q = &model.Quota{ProjectID: project, Limits: map[string]int{}}
		} else {
			cmp = unchanged(key, rev)
		}
		maps.Copy(q.Limits, limits)
		ok, err := s.commit(ctx, []clientv3.Cmp{cmp}, []clientv3.Op{s.putJSON(Quotas, project, q)})
		if err != nil {
			return err
		}
		if !ok {
			return errConflict
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Limits(project), nil
}

// DeleteQuota resets a project to the defaults (admins only).
func (s *Service) DeleteQuota(ctx context.Context, project string) error {
	if !creds(ctx).IsAdmin() {
		return apierr.PolicyNotAuthorized("delete_quota")
	}
	if _, ok := cachedAs[*model.Quota](s, Quotas, project); !ok {
		return apierr.New(404, "TenantQuotaNotFound", "Quota for tenant %s could not be found.", project)
	}
	_, err := s.commit(ctx, nil, []clientv3.Op{clientv3.OpDelete(s.st.Keys.Resource(Quotas, project))})
	return err
}

// ParseQuota validates a quota update body's values.
func (s *Service) ParseQuota(body map[string]any) (limits map[string]int, force bool, err error) {
	limits = map[string]int{}
	for k, v := range body {
		switch k {
		case "force":
			b, err := model.ParseBool(v)
			if err != nil {
				return nil, false, apierr.InvalidAttr(k, err.Error())
			}
			force = b.(bool)
			continue
		case "check_limit":
			// Neutron always checks now; the flag is accepted and ignored.
			continue
		}
		if _, ok := quotaResources[k]; !ok {
			return nil, false, apierr.BadRequest("Unrecognized attribute(s) '%s'", k)
		}
		n, err := model.ParseInt(-1, 1<<31-1)(v)
		if err != nil {
			return nil, false, apierr.InvalidAttr(k, err.Error())
		}
		limits[k] = int(n.(int64))
	}
	return limits, force, nil
}
