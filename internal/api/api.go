// Package api is vland's HTTP surface: the OpenStack Networking API v2.0
// (versions, extensions, resource collections with Neutron's query
// conventions and error bodies) in front of the service layer, and the
// mount point of the builtin identity service.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/identity"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
)

// Config wires the API to the rest of the server.
type Config struct {
	Service *service.Service
	Auth    identity.Authenticator
	// Identity, when set, is served under /identity (builtin mode).
	Identity http.Handler
	Logger   *slog.Logger
}

// API serves the Networking API.
type API struct {
	cfg         Config
	log         *slog.Logger
	collections map[string]*collection
	mux         *http.ServeMux
}

// New builds the API's handler tree.
func New(cfg Config) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	a.collections = coreCollections(cfg.Service)
	for name, c := range secGroupCollections(cfg.Service) {
		a.collections[name] = c
	}
	a.mux.HandleFunc("/{$}", a.versions)
	a.mux.HandleFunc("/v2.0", a.authed(a.resources))
	a.mux.HandleFunc("/v2.0/{$}", a.authed(a.resources))
	a.mux.HandleFunc("/v2.0/extensions", a.authed(a.extensions))
	a.mux.HandleFunc("/v2.0/extensions/{alias}", a.authed(a.extension))
	for name, c := range a.collections {
		if c.path == "" {
			c.path = name
		}
		a.mux.HandleFunc("/v2.0/"+c.path, a.authed(c.serveCollection))
		a.mux.HandleFunc("/v2.0/"+c.path+"/{id}", a.authed(c.serveItem))
		if c.tagged {
			a.mux.HandleFunc("/v2.0/"+c.path+"/{id}/tags", a.authed(c.serveTags))
			a.mux.HandleFunc("/v2.0/"+c.path+"/{id}/tags/{tag}", a.authed(c.serveTag))
		}
	}
	a.quotaRoutes()
	a.ipAvailabilityRoutes()
	a.dhcpAgentRoutes()
	a.azRoutes()
	a.bindingRoutes()
	a.subnetPoolRoutes()
	a.addressGroupRoutes()
	a.l3Routes()
	a.instanceMetadataRoutes()
	if cfg.Identity != nil {
		a.mux.Handle("/identity", cfg.Identity)
		a.mux.Handle("/identity/", cfg.Identity)
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, apierr.New(http.StatusNotFound, "HTTPNotFound", "The resource could not be found."))
	})
	return a
}

// ServeHTTP implements http.Handler: request ids, logging and a last-resort
// recovery that answers 500 rather than dropping the connection.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqID := "req-" + uuid.NewString()
	w.Header().Set("X-Openstack-Request-Id", reqID)
	sw := &statusWriter{ResponseWriter: w, status: 200}
	defer func() {
		if p := recover(); p != nil {
			a.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			writeError(sw, apierr.New(500, "HTTPInternalServerError", "Request Failed: internal server error while processing your request."))
		}
		a.log.Debug("request", "id", reqID, "method", r.Method, "path", r.URL.Path, "status", sw.status, "took", time.Since(start))
	}()
	// Neutron accepts a trailing ".json" on resource paths.
	if p := r.URL.Path; strings.HasPrefix(p, "/v2.0/") && strings.HasSuffix(p, ".json") {
		r.URL.Path = strings.TrimSuffix(p, ".json")
	}
	a.mux.ServeHTTP(sw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// authed wraps h with authentication.
func (a *API) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := a.cfg.Auth.Authenticate(r)
		if err != nil && !errors.Is(err, identity.ErrUnauthenticated) {
			// The identity service itself failed (an external Keystone is
			// down): the client's token may be fine, so this is no 401.
			a.log.Warn("identity service unavailable", "err", err)
			writeError(w, apierr.New(http.StatusServiceUnavailable, "ServiceUnavailable", "The identity service is unavailable; try again later."))
			return
		}
		if c == nil || err != nil {
			w.Header().Set("WWW-Authenticate", `Keystone uri="`+baseURL(r)+`/identity/v3"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
				"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication.",
			}})
			return
		}
		h(w, r.WithContext(policy.With(r.Context(), c)))
	}
}

// baseURL is the server's URL as the client reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (a *API) versions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
		"id": "v2.0", "status": "CURRENT",
		"links": []any{map[string]any{"href": baseURL(r) + "/v2.0/", "rel": "self"}},
	}}})
}

func (a *API) resources(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	var res []any
	for _, name := range sortedKeys(a.collections) {
		c := a.collections[name]
		res = append(res, map[string]any{
			"name": c.spec.Singular, "collection": name,
			"links": []any{map[string]any{"href": baseURL(r) + "/v2.0/" + c.path, "rel": "self"}},
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": res})
}

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = 500, []byte(`{"NeutronError":{"type":"HTTPInternalServerError","message":"cannot encode response","detail":""}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// writeError sends err as a NeutronError body; anything not an API error
// is logged and reported as an internal error without details.
func writeError(w http.ResponseWriter, err error) {
	e, ok := apierr.As(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			e = apierr.New(503, "ServiceUnavailable", "The request was cancelled or timed out.")
		} else {
			slog.Error("internal error", "err", err)
			e = apierr.New(500, "HTTPInternalServerError", "Request Failed: internal server error while processing your request.")
		}
	}
	writeJSON(w, e.Status, e.Body())
}

func methodNotAllowed(w http.ResponseWriter) {
	writeError(w, apierr.New(http.StatusMethodNotAllowed, "HTTPMethodNotAllowed", "The server could not comply with the request since it is either malformed or otherwise incorrect."))
}

type contextT = context.Context
