package api

import (
	"net/http"
	"slices"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
)

// bindingRoutes mounts /v2.0/ports/{id}/bindings (binding-extended).
func (a *API) bindingRoutes() {
	svc := a.cfg.Service
	a.mux.HandleFunc("/v2.0/ports/{id}/bindings", a.authed(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		switch r.Method {
		case http.MethodGet:
			list, err := svc.Bindings(r.Context(), id)
			if err != nil {
				writeError(w, err)
				return
			}
			if list == nil {
				list = []map[string]any{}
			}
			writeJSON(w, http.StatusOK, map[string]any{"bindings": list})
		case http.MethodPost:
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			b, ok := body["binding"].(map[string]any)
			if !ok {
				writeError(w, apierr.BadRequest("Unable to find 'binding' in request body"))
				return
			}
			host, vnic, profile, err := parseBinding(b)
			if err != nil {
				writeError(w, err)
				return
			}
			view, err := svc.CreateBinding(r.Context(), id, host, vnic, profile)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusCreated, map[string]any{"binding": view})
		default:
			methodNotAllowed(w)
		}
	}))
	a.mux.HandleFunc("/v2.0/ports/{id}/bindings/{host}", a.authed(func(w http.ResponseWriter, r *http.Request) {
		id, host := r.PathValue("id"), r.PathValue("host")
		switch r.Method {
		case http.MethodGet:
			list, err := svc.Bindings(r.Context(), id)
			if err != nil {
				writeError(w, err)
				return
			}
			i := slices.IndexFunc(list, func(b map[string]any) bool { return b["host"] == host })
			if i < 0 {
				writeError(w, apierr.New(404, "PortBindingNotFound", "Binding for port %s for host %s could not be found.", id, host))
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"binding": list[i]})
		case http.MethodDelete:
			if err := svc.DeleteBinding(r.Context(), id, host); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			methodNotAllowed(w)
		}
	}))
	a.mux.HandleFunc("PUT /v2.0/ports/{id}/bindings/{host}/activate", a.authed(func(w http.ResponseWriter, r *http.Request) {
		view, err := svc.ActivateBinding(r.Context(), r.PathValue("id"), r.PathValue("host"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"binding": view})
	}))
}

// parseBinding validates a binding create body.
func parseBinding(b map[string]any) (host, vnic string, profile map[string]any, err error) {
	for k := range b {
		if !contains([]string{"host", "vnic_type", "profile", "project_id"}, k) {
			return "", "", nil, apierr.BadRequest("Unrecognized attribute(s) '%s'", k)
		}
	}
	h, ok := b["host"].(string)
	if !ok || h == "" {
		return "", "", nil, apierr.BadRequest("Failed to parse request. Required attribute 'host' not specified")
	}
	if v, given := b["vnic_type"]; given {
		pv, perr := model.PortSpec.Decode(map[string]any{"network_id": "00000000-0000-0000-0000-000000000000", "binding:vnic_type": v}, model.Create)
		if perr != nil {
			return "", "", nil, apierr.InvalidAttr("vnic_type", "invalid vnic type")
		}
		vnic = pv["binding:vnic_type"].(string)
	}
	if v, given := b["profile"]; given {
		pv, perr := model.ParseDict(v)
		if perr != nil {
			return "", "", nil, apierr.InvalidAttr("profile", perr.Error())
		}
		profile = pv.(map[string]any)
	}
	return h, vnic, profile, nil
}
