package api

import (
	"net/http"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// dhcpAgentRoutes mounts the dhcp_agent_scheduler extension.
func (a *API) dhcpAgentRoutes() {
	svc := a.cfg.Service
	nets, agents := a.collections["networks"], a.collections["agents"]
	a.mux.HandleFunc("/v2.0/agents/{id}/dhcp-networks", a.authed(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		switch r.Method {
		case http.MethodGet:
			list, err := svc.DHCPNetworks(r.Context(), id)
			if err != nil {
				writeError(w, err)
				return
			}
			out := make([]any, len(list))
			for i, n := range list {
				out[i] = render(nets.viewOf(r.Context(), n.View()), policy.From(r.Context()), "networks", nil)
			}
			writeJSON(w, http.StatusOK, map[string]any{"networks": out})
		case http.MethodPost:
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			netID, err := model.ParseUUID(body["network_id"])
			if err != nil {
				writeError(w, apierr.InvalidAttr("network_id", err.Error()))
				return
			}
			if err := svc.AddDHCPNetwork(r.Context(), id, netID.(string)); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusCreated, nil)
		default:
			methodNotAllowed(w)
		}
	}))
	a.mux.HandleFunc("DELETE /v2.0/agents/{id}/dhcp-networks/{network}", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if err := svc.RemoveDHCPNetwork(r.Context(), r.PathValue("id"), r.PathValue("network")); err != nil {
			writeError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	a.mux.HandleFunc("GET /v2.0/networks/{id}/dhcp-agents", a.authed(func(w http.ResponseWriter, r *http.Request) {
		list, err := svc.DHCPAgentsOf(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		out := make([]any, len(list))
		for i, ag := range list {
			out[i] = render(agents.viewOf(r.Context(), ag.View()), policy.From(r.Context()), "agents", nil)
		}
		writeJSON(w, http.StatusOK, map[string]any{"agents": out})
	}))
}

// azRoutes mounts GET /v2.0/availability_zones (availability_zone).
func (a *API) azRoutes() {
	a.mux.HandleFunc("/v2.0/availability_zones", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			methodNotAllowed(w)
			return
		}
		q := r.URL.Query()
		for k := range q {
			if !contains([]string{"name", "resource", "state", "fields"}, k) {
				writeError(w, apierr.BadRequest("%s is invalid attribute for filtering", k))
				return
			}
		}
		out := []any{}
		for _, z := range a.cfg.Service.AvailabilityZones(r.Context()) {
			ok := true
			for _, k := range []string{"name", "resource", "state"} {
				if vals, given := q[k]; given && !contains(vals, z[k].(string)) {
					ok = false
				}
			}
			if ok {
				out = append(out, z)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"availability_zones": out})
	}))
}
