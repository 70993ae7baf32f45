package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
)

// l3Routes mounts the router member actions (router, extraroute-atomic),
// the l3_agent_scheduler extension and floating IPs' port forwardings.
func (a *API) l3Routes() {
	svc := a.cfg.Service
	for name, removal := range map[string]bool{"add_router_interface": false, "remove_router_interface": true} {
		a.mux.HandleFunc("/v2.0/routers/{id}/"+name, a.authed(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut {
				methodNotAllowed(w)
				return
			}
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			req, err := service.ParseInterfaceRequest(body, removal)
			if err != nil {
				writeError(w, err)
				return
			}
			action := svc.AddRouterInterface
			if removal {
				action = svc.RemoveRouterInterface
			}
			info, err := action(r.Context(), r.PathValue("id"), req)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, info)
		}))
	}
	routers := a.collections[service.Routers]
	for name, add := range map[string]bool{"add_extraroutes": true, "remove_extraroutes": false} {
		a.mux.HandleFunc("/v2.0/routers/{id}/"+name, a.authed(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut {
				methodNotAllowed(w)
				return
			}
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			inner, ok := body["router"].(map[string]any)
			if !ok {
				writeError(w, apierr.BadRequest("Unable to find 'router' in request body"))
				return
			}
			raw, ok := inner["routes"]
			if !ok {
				writeError(w, apierr.BadRequest("Unable to find 'routes' in request body"))
				return
			}
			routes, err := model.ParseRoutes(raw)
			if err != nil {
				writeError(w, apierr.InvalidAttr("routes", err.Error()))
				return
			}
			rt, err := svc.ChangeExtraRoutes(r.Context(), r.PathValue("id"), routes, add)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"router": render(routers.viewOf(r.Context(), rt.View()), policy.From(r.Context()), service.Routers, nil)})
		}))
	}
	a.l3AgentRoutes()
	a.portForwardingRoutes()
}

// l3AgentRoutes mounts l3_agent_scheduler: /v2.0/routers/{id}/l3-agents
// and /v2.0/agents/{id}/l3-routers (admins only).
func (a *API) l3AgentRoutes() {
	svc := a.cfg.Service
	agents, routers := a.collections[service.Agents], a.collections[service.Routers]
	a.mux.HandleFunc("/v2.0/routers/{id}/l3-agents", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			methodNotAllowed(w)
			return
		}
		list, err := svc.L3AgentsOf(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		out := make([]any, len(list))
		for i, ag := range list {
			out[i] = render(agents.viewOf(r.Context(), ag.View()), policy.From(r.Context()), service.Agents, nil)
		}
		writeJSON(w, http.StatusOK, map[string]any{"agents": out})
	}))
	a.mux.HandleFunc("/v2.0/agents/{id}/l3-routers", a.authed(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		switch r.Method {
		case http.MethodGet:
			list, err := svc.L3Routers(r.Context(), id)
			if err != nil {
				writeError(w, err)
				return
			}
			out := make([]any, len(list))
			for i, rt := range list {
				out[i] = render(routers.viewOf(r.Context(), rt.View()), policy.From(r.Context()), service.Routers, nil)
			}
			writeJSON(w, http.StatusOK, map[string]any{"routers": out})
		case http.MethodPost:
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			routerID, err := model.ParseUUID(body["router_id"])
			if err != nil {
				writeError(w, apierr.InvalidAttr("router_id", err.Error()))
				return
			}
			if err := svc.AddL3Router(r.Context(), id, routerID.(string)); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusCreated, nil)
		default:
			methodNotAllowed(w)
		}
	}))
	a.mux.HandleFunc("DELETE /v2.0/agents/{id}/l3-routers/{router}", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if err := svc.RemoveL3Router(r.Context(), r.PathValue("id"), r.PathValue("router")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
}

// decorated is an object whose view is rendered for the moment (a
// floating IP's port_details), for create answers.
type decorated struct {
	model.Object
	view map[string]any
}

func (d decorated) View() map[string]any { return d.view }

// fipObjects decorates created floating IPs with their port details.
func fipObjects(ctx context.Context, svc *service.Service, fips []*model.FloatingIP, err error) ([]model.Object, error) {
	if err != nil {
		return nil, err
	}
	out := make([]model.Object, len(fips))
	for i, f := range fips {
		out[i] = decorated{f, svc.FloatingIPViewFor(ctx, f.View())}
	}
	return out, nil
}

// portForwardingRoutes mounts /v2.0/floatingips/{id}/port_forwardings
// (floating-ip-port-forwarding).
func (a *API) portForwardingRoutes() {
	svc := a.cfg.Service
	spec := model.PortForwardingSpec
	a.mux.HandleFunc("/v2.0/floatingips/{fip}/port_forwardings", a.authed(func(w http.ResponseWriter, r *http.Request) {
		fipID := r.PathValue("fip")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			list, err := svc.PortForwardingsOf(r.Context(), fipID)
			if err != nil {
				writeError(w, err)
				return
			}
			views := make([]map[string]any, len(list))
			for i, cv := range list {
				views[i] = cv.View
			}
			listPortForwardings(w, r, "floatingips/"+fipID+"/port_forwardings", spec, views)
		case http.MethodPost:
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			items, bulk, err := spec.DecodeBody(body, model.Create)
			if err != nil {
				writeError(w, err)
				return
			}
			if bulk {
				writeError(w, apierr.BadRequest("Bulk operation not supported for port_forwardings"))
				return
			}
			pf, err := svc.CreatePortForwarding(r.Context(), fipID, items[0])
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusCreated, map[string]any{spec.Singular: pfView(pf.View(), nil)})
		default:
			methodNotAllowed(w)
		}
	}))
	a.mux.HandleFunc("/v2.0/floatingips/{fip}/port_forwardings/{id}", a.authed(func(w http.ResponseWriter, r *http.Request) {
		fipID, id := r.PathValue("fip"), r.PathValue("id")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			pf, err := svc.GetPortForwarding(r.Context(), fipID, id)
			if err != nil {
				writeError(w, err)
				return
			}
			fields, _ := fieldsParam(r.URL.Query(), spec)
			writeJSON(w, http.StatusOK, map[string]any{spec.Singular: pfView(pf.View(), fields)})
		case http.MethodPut:
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			items, _, err := spec.DecodeBody(body, model.Update)
			if err != nil {
				writeError(w, err)
				return
			}
			pf, err := svc.UpdatePortForwarding(r.Context(), fipID, id, items[0])
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{spec.Singular: pfView(pf.View(), nil)})
		case http.MethodDelete:
			if err := svc.DeletePortForwarding(r.Context(), fipID, id); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			methodNotAllowed(w)
		}
	}))
}

// pfView renders a port forwarding without its hidden attributes, and only
// the requested fields when some are named.
func pfView(v map[string]any, fields []string) map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		if slices.Contains(model.PortForwardingHidden, k) || len(fields) > 0 && !slices.Contains(fields, k) {
			continue
		}
		out[k] = x
	}
	return out
}

// listPortForwardings answers a list of port forwardings' views with
// Neutron's query conventions: filters, sorting, marker pagination, fields.
func listPortForwardings(w http.ResponseWriter, r *http.Request, path string, spec *model.Spec, views []map[string]any) {
	q := r.URL.Query()
	filters, err := parseFilters(q, spec, false)
	if err != nil {
		writeError(w, err)
		return
	}
	keys, err := parseSort(q, spec)
	if err != nil {
		writeError(w, err)
		return
	}
	fields, _ := fieldsParam(q, spec)
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, apierr.BadRequest("Limit must be an integer 0 or greater and not '%s'", l))
			return
		}
		limit = n
	}
	reverse := strings.EqualFold(q.Get("page_reverse"), "true")
	var kept []map[string]any
	for _, v := range views {
		if matches(v, filters) {
			kept = append(kept, v)
		}
	}
	slices.SortFunc(kept, func(a, b map[string]any) int { return compareViews(a, b, keys) })
	if reverse {
		slices.Reverse(kept)
	}
	hadMarker := false
	if marker := q.Get("marker"); marker != "" {
		hadMarker = true
		i := slices.IndexFunc(kept, func(v map[string]any) bool { return v["id"] == marker })
		kept = kept[i+1:]
	}
	more := limit > 0 && len(kept) > limit
	if more {
		kept = kept[:limit]
	}
	name := spec.Plural
	out := make([]any, len(kept))
	for i, v := range kept {
		out[i] = pfView(v, fields)
	}
	body := map[string]any{name: out}
	if limit > 0 {
		body[name+"_links"] = pageLinks(r, path, kept, limit, more, hadMarker, reverse)
	}
	writeJSON(w, http.StatusOK, body)
}
