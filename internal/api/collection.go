package api

import (
	"context"
	"maps"
	"net/http"
	"slices"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
)

// collection serves one resource kind's CRUD with Neutron's conventions.
type collection struct {
	name   string
	spec   *model.Spec
	svc    *service.Service
	create func(ctx context.Context, items []model.Fields) ([]model.Object, error)
	update func(ctx context.Context, id string, f model.Fields) (model.Object, error)
	remove func(ctx context.Context, id string) error
	// notFound is the kind's 404 for an id.
	notFound func(id string) error
	// decorate, when set, adds attributes that depend on the time of the
	// request (an agent's "alive") to a copy of a cached view.
	decorate func(ctx context.Context, view map[string]any) map[string]any
	// tagged resources have standard attributes and take tags.
	tagged bool
	// path is the URL collection name when it differs from name
	// ("rbac-policies" serves rbac_policies).
	path string
	// prepare, when set, runs before a list (security groups: a project's
	// default group is made when it first lists its groups).
	prepare func(r *http.Request) error
}

// viewOf returns the view to filter and render, decorated if needed.
func (c *collection) viewOf(ctx context.Context, v map[string]any) map[string]any {
	if c.decorate == nil {
		return v
	}
	return c.decorate(ctx, v)
}

// objects converts typed slices for the generic collection code.
func objects[T model.Object](in []T, err error) ([]model.Object, error) {
	if err != nil {
		return nil, err
	}
	out := make([]model.Object, len(in))
	for i, o := range in {
		out[i] = o
	}
	return out, nil
}

func object[T model.Object](o T, err error) (model.Object, error) {
	if err != nil {
		return nil, err
	}
	return o, nil
}

func coreCollections(svc *service.Service) map[string]*collection {
	return map[string]*collection{
		service.Networks: {
			name: service.Networks, tagged: true, spec: model.NetworkSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreateNetworks(ctx, f))
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateNetwork(ctx, id, f))
			},
			remove:   svc.DeleteNetwork,
			notFound: func(id string) error { return apierr.NotFound("Network", "Network", id) },
			decorate: func(ctx context.Context, v map[string]any) map[string]any {
				return svc.NetworkAddressScopes(svc.NetworkViewFor(ctx, v))
			},
		},
		service.Subnets: {
			name: service.Subnets, tagged: true, spec: model.SubnetSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreateSubnets(ctx, f))
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateSubnet(ctx, id, f))
			},
			remove:   svc.DeleteSubnet,
			notFound: func(id string) error { return apierr.NotFound("Subnet", "Subnet", id) },
		},
		service.Ports: {
			name: service.Ports, tagged: true, spec: model.PortSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreatePorts(ctx, f))
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdatePort(ctx, id, f))
			},
			remove:   svc.DeletePort,
			notFound: func(id string) error { return apierr.NotFound("Port", "Port", id) },
		},
		service.RBACPolicies: {
			name: service.RBACPolicies, path: "rbac-policies", spec: model.RBACSpec, svc: svc,
			create: func(ctx context.Context, items []model.Fields) ([]model.Object, error) {
				var out []model.Object
				for _, f := range items {
					r, err := svc.CreateRBAC(ctx, f)
					if err != nil {
						return nil, err
					}
					out = append(out, r)
				}
				return out, nil
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateRBAC(ctx, id, f))
			},
			remove: svc.DeleteRBAC,
			notFound: func(id string) error {
				return apierr.New(404, "RbacPolicyNotFound", "RBAC policy of type network with ID %s not found", id)
			},
		},
		service.SubnetPools: {
			name: service.SubnetPools, tagged: true, spec: model.SubnetPoolSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreateSubnetPools(ctx, f))
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateSubnetPool(ctx, id, f))
			},
			remove:   svc.DeleteSubnetPool,
			notFound: func(id string) error { return apierr.NotFound("SubnetPool", "Subnet pool", id) },
			decorate: svc.SubnetPoolViewFor,
		},
		service.AddressScopes: {
			name: service.AddressScopes, path: "address-scopes", spec: model.AddressScopeSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreateAddressScopes(ctx, f))
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateAddressScope(ctx, id, f))
			},
			remove:   svc.DeleteAddressScope,
			notFound: func(id string) error { return apierr.NotFound("AddressScope", "Address scope", id) },
			decorate: svc.AddressScopeViewFor,
		},
		service.Routers: {
			name: service.Routers, tagged: true, spec: model.RouterSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				return objects(svc.CreateRouters(ctx, f))
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateRouter(ctx, id, f))
			},
			remove:   svc.DeleteRouter,
			notFound: func(id string) error { return apierr.New(404, "RouterNotFound", "Router %s could not be found", id) },
		},
		service.FloatingIPs: {
			name: service.FloatingIPs, tagged: true, spec: model.FloatingIPSpec, svc: svc,
			create: func(ctx context.Context, f []model.Fields) ([]model.Object, error) {
				fips, err := svc.CreateFloatingIPs(ctx, f)
				return fipObjects(ctx, svc, fips, err)
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateFloatingIP(ctx, id, f))
			},
			remove: svc.DeleteFloatingIP,
			notFound: func(id string) error {
				return apierr.New(404, "FloatingIPNotFound", "Floating IP %s could not be found", id)
			},
			decorate: svc.FloatingIPViewFor,
		},
		service.Agents: {
			name: service.Agents, spec: model.AgentSpec, svc: svc,
			create: func(context.Context, []model.Fields) ([]model.Object, error) {
				return nil, apierr.New(http.StatusMethodNotAllowed, "HTTPMethodNotAllowed", "Agents register themselves; they cannot be created through the API.")
			},
			update: func(ctx context.Context, id string, f model.Fields) (model.Object, error) {
				return object(svc.UpdateAgent(ctx, id, f))
			},
			remove:   svc.DeleteAgent,
			notFound: func(id string) error { return apierr.New(404, "AgentNotFound", "Agent %s could not be found.", id) },
			decorate: func(_ context.Context, v map[string]any) map[string]any {
				out := maps.Clone(v)
				if a, ok := svc.Cache().Get(service.Agents, v["id"].(string)); ok {
					ag := a.Value.(*model.Cached).Obj.(*model.Agent)
					out["alive"] = svc.AgentAlive(ag)
					if ag.AgentType == model.AgentTypeL3 {
						out["configurations"] = svc.L3AgentConfigurations(ag)
					}
				}
				return out
			},
		},
	}
}

func (c *collection) serveCollection(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if c.prepare != nil {
			if err := c.prepare(r); err != nil {
				writeError(w, err)
				return
			}
		}
		c.list(w, r)
	case http.MethodPost:
		c.post(w, r)
	default:
		methodNotAllowed(w)
	}
}

func (c *collection) serveItem(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		c.show(w, r, id)
	case http.MethodPut:
		c.put(w, r, id)
	case http.MethodDelete:
		ctx, err := ifMatch(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if err := c.remove(ctx, id); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		methodNotAllowed(w)
	}
}

func (c *collection) show(w http.ResponseWriter, r *http.Request, id string) {
	view, ok := c.svc.CachedView(r.Context(), c.name, id)
	if !ok {
		writeError(w, c.notFound(id))
		return
	}
	fields, err := fieldsParam(r.URL.Query(), c.spec)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{c.spec.Singular: render(c.viewOf(r.Context(), view), policy.From(r.Context()), c.name, fields)})
}

func (c *collection) post(w http.ResponseWriter, r *http.Request) {
	body, err := model.DecodeJSON(r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	items, bulk, err := c.spec.DecodeBody(body, model.Create)
	if err != nil {
		writeError(w, err)
		return
	}
	objs, err := c.create(r.Context(), items)
	if err != nil {
		writeError(w, err)
		return
	}
	cr := policy.From(r.Context())
	if !bulk {
		writeJSON(w, http.StatusCreated, map[string]any{c.spec.Singular: render(objs[0].View(), cr, c.name, nil)})
		return
	}
	out := make([]any, len(objs))
	for i, o := range objs {
		out[i] = render(o.View(), cr, c.name, nil)
	}
	writeJSON(w, http.StatusCreated, map[string]any{c.spec.Plural: out})
}

func (c *collection) put(w http.ResponseWriter, r *http.Request, id string) {
	body, err := model.DecodeJSON(r.Body)
	if err != nil {
		writeError(w, err)
		return
	}
	items, _, err := c.spec.DecodeBody(body, model.Update)
	if err != nil {
		writeError(w, err)
		return
	}
	ctx, err := ifMatch(r)
	if err != nil {
		writeError(w, err)
		return
	}
	o, err := c.update(ctx, id, items[0])
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{c.spec.Singular: render(c.viewOf(r.Context(), o.View()), policy.From(r.Context()), c.name, nil)})
}

// render copies a view for the caller: without attributes it may not see,
// and only the requested fields when some are named.
func render(view map[string]any, cr *policy.Credentials, kind string, fields []string) map[string]any {
	hidden := policy.HiddenAttributes(cr, kind)
	out := make(map[string]any, len(view))
	if len(fields) > 0 {
		for _, f := range fields {
			if v, ok := view[f]; ok && !slices.Contains(hidden, f) {
				out[f] = v
			}
		}
		return out
	}
	for k, v := range view {
		if !slices.Contains(hidden, k) {
			out[k] = v
		}
	}
	return out
}
