package api

import (
	"fmt"
	"net/http"

	"github.com/vland/vland/internal/apierr"
)

// ipAvailabilityRoutes mounts network-ip-availability and service-type.
func (a *API) ipAvailabilityRoutes() {
	svc := a.cfg.Service
	filters := []string{"network_id", "network_name", "project_id", "tenant_id", "ip_version"}
	a.mux.HandleFunc("/v2.0/network-ip-availabilities", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			methodNotAllowed(w)
			return
		}
		list, err := svc.IPAvailabilities(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		q := r.URL.Query()
		for k := range q {
			if !contains(filters, k) && !contains(reserved, k) {
				writeError(w, apierr.BadRequest("%s is invalid attribute for filtering", k))
				return
			}
		}
		out := []any{}
		for _, m := range list {
			if availabilityMatches(m, q) {
				out = append(out, m)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"network_ip_availabilities": out})
	}))
	a.mux.HandleFunc("/v2.0/network-ip-availabilities/{id}", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			methodNotAllowed(w)
			return
		}
		list, err := svc.IPAvailabilities(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		for _, m := range list {
			if m["network_id"] == r.PathValue("id") {
				writeJSON(w, http.StatusOK, map[string]any{"network_ip_availability": m})
				return
			}
		}
		writeError(w, apierr.NotFound("Network", "Network", r.PathValue("id")))
	}))
	a.mux.HandleFunc("/v2.0/service-providers", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			methodNotAllowed(w)
			return
		}
		// No advanced service has pluggable providers yet.
		writeJSON(w, http.StatusOK, map[string]any{"service_providers": []any{}})
	}))
}

func availabilityMatches(m map[string]any, q map[string][]string) bool {
	for k, vals := range q {
		if contains(reserved, k) {
			continue
		}
		ok := false
		for _, v := range vals {
			if k == "ip_version" {
				for _, s := range m["subnet_ip_availability"].([]any) {
					if fmt.Sprint(s.(map[string]any)["ip_version"]) == v {
						ok = true
					}
				}
			} else if fmt.Sprint(m[k]) == v {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
