package api

import (
	"net/http"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
)

// quotaRoutes mounts the quotas and quota_details extensions.
func (a *API) quotaRoutes() {
	svc := a.cfg.Service
	a.mux.HandleFunc("/v2.0/quotas", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			methodNotAllowed(w)
			return
		}
		list, err := svc.ListQuotas(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		if list == nil {
			list = []map[string]any{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"quotas": list})
	}))
	for _, key := range []string{"project", "tenant"} {
		a.mux.HandleFunc("GET /v2.0/quotas/"+key, a.authed(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{key: map[string]any{key + "_id": policy.From(r.Context()).ProjectID}})
		}))
	}
	a.mux.HandleFunc("/v2.0/quotas/{id}", a.authed(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		switch r.Method {
		case http.MethodGet:
			q, err := svc.GetQuota(r.Context(), id)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"quota": q})
		case http.MethodPut:
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			inner, ok := body["quota"].(map[string]any)
			if !ok {
				writeError(w, apierr.BadRequest("Unable to find 'quota' in request body"))
				return
			}
			limits, force, err := svc.ParseQuota(inner)
			if err != nil {
				writeError(w, err)
				return
			}
			q, err := svc.UpdateQuota(r.Context(), id, limits, force)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]any{"quota": q})
		case http.MethodDelete:
			if err := svc.DeleteQuota(r.Context(), id); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case http.MethodPost:
			writeError(w, apierr.New(http.StatusNotImplemented, "HTTPNotImplemented", "POST requests are not supported on this resource."))
		default:
			methodNotAllowed(w)
		}
	}))
	a.mux.HandleFunc("GET /v2.0/quotas/{id}/default", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if _, err := svc.GetQuota(r.Context(), r.PathValue("id")); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"quota": svc.Defaults()})
	}))
	a.mux.HandleFunc("GET /v2.0/quotas/{id}/details", a.authed(func(w http.ResponseWriter, r *http.Request) {
		d, err := svc.QuotaDetails(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"quota": d})
	}))
}
