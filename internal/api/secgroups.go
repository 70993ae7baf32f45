package api

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
)

// secGroupCollections serves security-groups, security-group-rules and
// address-groups.
func secGroupCollections(svc *service.Service) map[string]*collection {
	// Lists of groups and of rules make the project's default group first,
	// as Neutron's get_security_groups and get_security_group_rules do.
	ensureDefault := func(r *http.Request) error {
		q := r.URL.Query()
		projects := q["project_id"]
		if len(projects) == 0 {
			projects = q["tenant_id"]
		}
		return svc.EnsureDefaultSecurityGroupFor(r.Context(), projects)
	}
	return map[string]*collection{
		service.SecurityGroups: {
			name: service.SecurityGroups, path: "security-groups", tagged: true, spec: model.SecurityGroupSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreateSecurityGroups(ctx, f))
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateSecurityGroup(ctx, id, f))
			},
			remove:   svc.DeleteSecurityGroup,
			notFound: service.SecurityGroupNotFound,
			decorate: svc.SecurityGroupViewFor,
			prepare:  ensureDefault,
		},
		service.SecurityGroupRules: {
			name: service.SecurityGroupRules, path: "security-group-rules", spec: model.SecurityGroupRuleSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreateSecurityGroupRules(ctx, f))
			},
			update: func(ctx context.Context, id string, _ model.Fields) (model.Object, error) {
				if _, err := svc.GetSecurityGroupRule(ctx, id); err != nil {
					return nil, err
				}
				return nil, service.ErrRuleUpdate
			},
			remove:   svc.DeleteSecurityGroupRule,
			notFound: service.SecurityGroupRuleNotFound,
			prepare:  ensureDefault,
		},
		service.AddressGroups: {
			name: service.AddressGroups, path: "address-groups", spec: model.AddressGroupSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreateAddressGroups(ctx, f))
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateAddressGroup(ctx, id, f))
			},
			remove:   svc.DeleteAddressGroup,
			notFound: service.AddressGroupNotFound,
		},
	}
}

// addressGroupRoutes serves PUT /v2.0/address-groups/{id}/add_addresses
// and …/remove_addresses with a body {"addresses": [CIDR, ...]}; both
// answer the whole address group.
func (a *API) addressGroupRoutes() {
	svc := a.cfg.Service
	actions := map[string]func(context.Context, string, []netip.Prefix) (*model.AddressGroup, error){
		"add_addresses":    svc.AddAddresses,
		"remove_addresses": svc.RemoveAddresses,
	}
	for name, action := range actions {
		a.mux.HandleFunc("/v2.0/address-groups/{id}/"+name, a.authed(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut {
				methodNotAllowed(w)
				return
			}
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			raw, ok := body["addresses"]
			if !ok {
				writeError(w, apierr.BadRequest("Unable to find 'addresses' in request body"))
				return
			}
			v, err := model.ParseSubnetList(raw)
			if err != nil {
				writeError(w, apierr.InvalidAttr("addresses", err.Error()))
				return
			}
			ctx, err := ifMatch(r)
			if err != nil {
				writeError(w, err)
				return
			}
			ag, err := action(ctx, r.PathValue("id"), v.([]netip.Prefix))
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"address_group": render(ag.View(), policy.From(r.Context()), service.AddressGroups, nil)})
		}))
	}
}
