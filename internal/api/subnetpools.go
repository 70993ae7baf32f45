package api

import (
	"context"
	"net/http"
	"net/netip"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
)

// subnetPoolRoutes mounts subnetpool-prefix-ops: the add_prefixes and
// remove_prefixes member actions, PUT with {"prefixes": [...]}, answering
// the pool's prefixes.
func (a *API) subnetPoolRoutes() {
	svc := a.cfg.Service
	actions := map[string]func(context.Context, string, []netip.Prefix) ([]netip.Prefix, error){
		"add_prefixes":    svc.AddSubnetPoolPrefixes,
		"remove_prefixes": svc.RemoveSubnetPoolPrefixes,
	}
	for name, action := range actions {
		a.mux.HandleFunc("/v2.0/subnetpools/{id}/"+name, a.authed(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut {
				methodNotAllowed(w)
				return
			}
			body, err := model.DecodeJSON(r.Body)
			if err != nil {
				writeError(w, err)
				return
			}
			raw, ok := body["prefixes"].([]any)
			if !ok || len(raw) == 0 {
				writeError(w, apierr.BadRequest("Request body contains invalid data"))
				return
			}
			prefixes := make([]netip.Prefix, 0, len(raw))
			for _, v := range raw {
				p, err := model.ParseCIDR(v)
				if err != nil {
					writeError(w, apierr.InvalidAttr("prefixes", err.Error()))
					return
				}
				prefixes = append(prefixes, p.(netip.Prefix))
			}
			got, err := action(r.Context(), r.PathValue("id"), prefixes)
			if err != nil {
				writeError(w, err)
				return
			}
			out := make([]string, len(got))
			for i, p := range got {
				out[i] = p.String()
			}
			writeJSON(w, http.StatusOK, map[string]any{"prefixes": out})
		}))
	}
}
