package service

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

type ifMatchKey struct{}

// WithIfMatch returns ctx carrying the revision_number an If-Match header
// constrains the request's change to.
func WithIfMatch(ctx context.Context, rev int64) context.Context {
	return context.WithValue(ctx, ifMatchKey{}, rev)
}

// checkIfMatch fails with Neutron's 412 when the request is constrained to
// another revision than the object's current one.
func checkIfMatch(ctx context.Context, current int64) error {
	want, ok := ctx.Value(ifMatchKey{}).(int64)
	if !ok || want == current {
		return nil
	}
	return apierr.New(412, "RevisionNumberConstraintFailed", "Constrained to %d, but current revision is %d", want, current)
}

// singular names a kind in policy actions ("networks" -> "network").
func singular(kind string) string { return strings.TrimSuffix(kind, "s") }

// Tags returns the tags of an object the caller may see.
func (s *Service) Tags(ctx context.Context, kind, id string) ([]string, error) {
	view, ok := s.CachedView(ctx, kind, id)
	if !ok {
		return nil, apierr.New(404, "TagResourceNotFound", "Resource %s %s could not be found.", kind, id)
	}
	return slices.Clone(view["tags"].([]string)), nil
}

// ChangeTags applies change to the tags of any resource with standard
// attributes, bumping its revision, in one transaction.
func (s *Service) ChangeTags(ctx context.Context, kind, id string, change func([]string) ([]string, error)) ([]string, error) {
	view, ok := s.CachedView(ctx, kind, id)
	if !ok {
		return nil, apierr.New(404, "TagResourceNotFound", "Resource %s %s could not be found.", kind, id)
	}
	if !policy.CanChange(creds(ctx), view["project_id"].(string)) {
		return nil, apierr.PolicyNotAuthorized("update_" + singular(kind) + ":tags")
	}
	var out []string
	err := retry(ctx, "change tags", func() error {
		key := s.st.Keys.Resource(kind, id)
		resp, err := s.st.Client.Get(ctx, key)
		if err != nil {
			return storeErr(err)
		}
		if len(resp.Kvs) == 0 {
			return apierr.New(404, "TagResourceNotFound", "Resource %s %s could not be found.", kind, id)
		}
		var raw map[string]json.RawMessage
		var std model.Standard
		if err := json.Unmarshal(resp.Kvs[0].Value, &raw); err != nil {
			return err
		}
		if err := json.Unmarshal(resp.Kvs[0].Value, &std); err != nil {
			return err
		}
		if err := checkIfMatch(ctx, std.RevisionNumber); err != nil {
			return err
		}
		tags, err := change(slices.Clone(std.Tags))
		if err != nil {
			return err
		}
		if tags == nil {
			tags = []string{}
		}
		out = tags
		if slices.Equal(tags, std.Tags) || len(tags) == 0 && len(std.Tags) == 0 {
			return nil
		}
		std.Tags = tags
		std.Touch()
		raw["tags"], _ = json.Marshal(std.Tags)
		raw["revision_number"], _ = json.Marshal(std.RevisionNumber)
		raw["updated_at"], _ = json.Marshal(std.UpdatedAt)
		data, err := json.Marshal(raw)
		if err != nil {
			return err
		}
		ok, err := s.commit(ctx, []clientv3.Cmp{unchanged(key, resp.Kvs[0].ModRevision)}, []clientv3.Op{clientv3.OpPut(key, string(data))})
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
