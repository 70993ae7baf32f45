package identity

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Handler serves the Keystone v3 subset at paths starting with /identity;
// mount it at both "/identity" and "/identity/" without stripping.
func (b *Builtin) Handler() http.Handler { return b.handler }

// routes builds the handler. Endpoints marked admin require the admin role;
// the others check what Keystone's default policy checks.
func (b *Builtin) routes() http.Handler {
	mux := http.NewServeMux()
	const v3 = "/identity/v3"
	mux.HandleFunc("GET /identity", b.versions)
	mux.HandleFunc("GET /identity/{$}", b.versions)
	mux.HandleFunc("GET "+v3, b.version)
	mux.HandleFunc("GET "+v3+"/{$}", b.version)

	mux.HandleFunc("POST "+v3+"/auth/tokens", b.createToken)
	mux.HandleFunc("GET "+v3+"/auth/tokens", b.checkToken)
	mux.HandleFunc("DELETE "+v3+"/auth/tokens", b.revokeToken)
	mux.HandleFunc("GET "+v3+"/auth/projects", b.authed(b.authProjects))
	mux.HandleFunc("GET "+v3+"/auth/catalog", b.authed(b.authCatalog))

	mux.HandleFunc("GET "+v3+"/domains", b.admin("list_domains", b.listDomains))
	mux.HandleFunc("GET "+v3+"/domains/{id}", b.authed(b.getDomain))

	mux.HandleFunc("GET "+v3+"/projects", b.admin("list_projects", b.listProjects))
	mux.HandleFunc("POST "+v3+"/projects", b.admin("create_project", b.postProject))
	mux.HandleFunc("GET "+v3+"/projects/{id}", b.authed(b.getProject))
	mux.HandleFunc("PATCH "+v3+"/projects/{id}", b.admin("update_project", b.patchProject))
	mux.HandleFunc("DELETE "+v3+"/projects/{id}", b.admin("delete_project", b.deleteProject))

	mux.HandleFunc("GET "+v3+"/users", b.admin("list_users", b.listUsers))
	mux.HandleFunc("POST "+v3+"/users", b.admin("create_user", b.postUser))
	mux.HandleFunc("GET "+v3+"/users/{id}", b.authed(b.getUser))
	mux.HandleFunc("PATCH "+v3+"/users/{id}", b.admin("update_user", b.patchUser))
	mux.HandleFunc("DELETE "+v3+"/users/{id}", b.admin("delete_user", b.deleteUser))
	mux.HandleFunc("GET "+v3+"/users/{id}/projects", b.authed(b.userProjects))
	mux.HandleFunc("POST "+v3+"/users/{id}/password", b.changePassword)

	mux.HandleFunc("GET "+v3+"/roles", b.admin("list_roles", b.listRoles))
	mux.HandleFunc("POST "+v3+"/roles", b.admin("create_role", b.postRole))
	mux.HandleFunc("GET "+v3+"/roles/{id}", b.admin("get_role", b.getRole))
	mux.HandleFunc("DELETE "+v3+"/roles/{id}", b.admin("delete_role", b.deleteRole))

	grant := v3 + "/projects/{project}/users/{user}/roles"
	mux.HandleFunc("GET "+grant, b.admin("list_grants", b.listGrants))
	mux.HandleFunc("PUT "+grant+"/{role}", b.admin("create_grant", b.putGrant))
	mux.HandleFunc("GET "+grant+"/{role}", b.admin("check_grant", b.checkGrant))
	mux.HandleFunc("DELETE "+grant+"/{role}", b.admin("revoke_grant", b.deleteGrant))
	mux.HandleFunc("GET "+v3+"/role_assignments", b.admin("list_role_assignments", b.listAssignments))

	mux.HandleFunc("/identity/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, "The resource could not be found."})
	})
	return requestID(mux)
}

// requestID tags every response as Keystone does, which clients log.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Openstack-Request-Id", "req-"+uuidString())
		w.Header().Set("Vary", "X-Auth-Token")
		next.ServeHTTP(w, r)
	})
}

// uuidString formats a random id as a dashed uuid.
func uuidString() string {
	s := newID()
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// sessionHandler is a handler that runs with the caller's validated token.
type sessionHandler func(w http.ResponseWriter, r *http.Request, s *session)

// authed requires a valid X-Auth-Token.
func (b *Builtin) authed(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := b.validate(r.Context(), r.Header.Get("X-Auth-Token"))
		if err != nil {
			b.unauthorized(w, r)
			return
		}
		h(w, r, s)
	}
}

// admin requires a valid token carrying the admin role.
func (b *Builtin) admin(action string, h sessionHandler) http.HandlerFunc {
	return b.authed(func(w http.ResponseWriter, r *http.Request, s *session) {
		if !s.isAdmin() {
			writeError(w, errForbidden("identity:"+action))
			return
		}
		h(w, r, s)
	})
}

// unauthorized sends Keystone's 401, with the header that tells clients
// where to authenticate.
func (b *Builtin) unauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Keystone uri="`+baseURL(r)+`/identity"`)
	writeError(w, ErrUnauthenticated)
}

// baseURL is the server's URL as the client reached it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// v3URL is the identity v3 API's URL as the client reached it.
func v3URL(r *http.Request) string { return baseURL(r) + "/identity/v3" }

// titles are Keystone's error titles by status.
var titles = map[int]string{
	http.StatusBadRequest:            "Bad Request",
	http.StatusUnauthorized:          "Unauthorized",
	http.StatusForbidden:             "Forbidden",
	http.StatusNotFound:              "Not Found",
	http.StatusConflict:              "Conflict",
	http.StatusRequestEntityTooLarge: "Request Entity Too Large",
	http.StatusInternalServerError:   "Internal Server Error",
}

// writeError sends err as Keystone's error body.
func writeError(w http.ResponseWriter, err error) {
	code, msg := asAPIError(err)
	title := titles[code]
	if title == "" {
		title = http.StatusText(code)
	}
	writeJSON(w, code, map[string]any{"error": map[string]any{"code": code, "message": msg, "title": title}})
}

// serverError logs a store failure and sends a 500 (or the error's own
// status when it is an API error).
func (b *Builtin) serverError(w http.ResponseWriter, r *http.Request, err error) {
	if code, _ := asAPIError(err); code >= 500 {
		b.log.Error("identity request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, err)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

// maxBody bounds request bodies; identity requests are small.
const maxBody = 1 << 20

// decodeBody reads a JSON request body into v, or answers 400 (413 when too
// large) and reports false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, &apiError{http.StatusRequestEntityTooLarge, "Request is too large."})
		} else {
			writeError(w, errBadRequest("Could not read the request body."))
		}
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		writeError(w, errBadRequest("Expecting to find valid JSON in request body: %v.", err))
		return false
	}
	return true
}

// listLinks are the links of a list response: this page and no others.
func listLinks(r *http.Request) map[string]any {
	return map[string]any{"self": baseURL(r) + r.URL.RequestURI(), "previous": nil, "next": nil}
}

// selfLink is the links member of one object.
func selfLink(r *http.Request, collection, id string) map[string]any {
	return map[string]any{"self": v3URL(r) + "/" + collection + "/" + id}
}

// truthy reads a Keystone boolean query parameter: present and not false.
func truthy(q string, present bool) bool {
	if !present {
		return false
	}
	switch strings.ToLower(q) {
	case "0", "false", "no", "off":
		return false
	}
	return true
}

const versionUpdated = "2020-04-07T00:00:00Z"

// versionDoc describes identity v3 as Keystone does.
func versionDoc(r *http.Request) map[string]any {
	return map[string]any{
		"id":      "v3.14",
		"status":  "stable",
		"updated": versionUpdated,
		"links":   []any{map[string]any{"rel": "self", "href": v3URL(r) + "/"}},
		"media-types": []any{map[string]any{
			"base": "application/json",
			"type": "application/vnd.openstack.identity-v3+json",
		}},
	}
}

// versions answers version discovery with 300 Multiple Choices, as Keystone.
func (b *Builtin) versions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": map[string]any{"values": []any{versionDoc(r)}}})
}

func (b *Builtin) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"version": versionDoc(r)})
}
