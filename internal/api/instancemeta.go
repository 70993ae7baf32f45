package api

import (
	"net/http"

	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
)

// instanceMetadataRoutes mounts /v2.0/instance-metadata (instance-metadata):
// GET lists what the caller may see with Neutron's query conventions; on
// /v2.0/instance-metadata/{device_id}, PUT creates (201) or replaces (200)
// a device's metadata, GET shows it and DELETE removes it (204).
func (a *API) instanceMetadataRoutes() {
	svc := a.cfg.Service
	spec := model.InstanceMetadataSpec
	coll := &collection{name: service.InstanceMetadataKind, path: "instance-metadata", spec: spec, svc: svc}
	a.mux.HandleFunc("/v2.0/instance-metadata", a.authed(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w)
			return
		}
		coll.list(w, r)
	}))
	a.mux.HandleFunc("/v2.0/instance-metadata/{id}", a.authed(func(w http.ResponseWriter, r *http.Request) {
		deviceID := r.PathValue("id")
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			m, err := svc.GetInstanceMetadata(r.Context(), deviceID)
			if err != nil {
				writeError(w, err)
				return
			}
			fields, _ := fieldsParam(r.URL.Query(), spec)
			writeJSON(w, http.StatusOK, map[string]any{spec.Singular: render(m.View(), policy.From(r.Context()), coll.name, fields)})
		case http.MethodPut:
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			f, err := model.DecodeInstanceMetadata(deviceID, body)
			if err != nil {
				writeError(w, err)
				return
			}
			ctx, err := ifMatch(r)
			if err != nil {
				writeError(w, err)
				return
			}
			m, created, err := svc.PutInstanceMetadata(ctx, deviceID, f)
			if err != nil {
				writeError(w, err)
				return
			}
			status := http.StatusOK
			if created {
				status = http.StatusCreated
			}
			writeJSON(w, status, map[string]any{spec.Singular: render(m.View(), policy.From(r.Context()), coll.name, nil)})
		case http.MethodDelete:
			ctx, err := ifMatch(r)
			if err != nil {
				writeError(w, err)
				return
			}
			if err := svc.DeleteInstanceMetadata(ctx, deviceID); err != nil {
				writeError(w, err)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			methodNotAllowed(w)
		}
	}))
}
