package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// authRequest is the body of POST /v3/auth/tokens as clients send it.
type authRequest struct {
	Auth *struct {
		Identity *struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User *struct {
					ID       string  `json:"id"`
					Name     string  `json:"name"`
					Domain   *ref    `json:"domain"`
					Password *string `json:"password"`
				} `json:"user"`
			} `json:"password"`
			Token *struct {
				ID string `json:"id"`
			} `json:"token"`
		} `json:"identity"`
		Scope json.RawMessage `json:"scope"`
	} `json:"auth"`
}

// ref names a domain (or project) by id or by name.
type ref struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// scopeRequest is the object form of auth.scope.
type scopeRequest struct {
	Project *struct {
		ID     string `json:"id"`
		Name   string `json:"name"`
		Domain *ref   `json:"domain"`
	} `json:"project"`
	Domain  *ref            `json:"domain"`
	System  json.RawMessage `json:"system"`
	Trust   json.RawMessage `json:"OS-TRUST:trust"`
	AppCred json.RawMessage `json:"application_credential"`
}

// authInput is a decoded, well-formed authentication request.
type authInput struct {
	method authMethod
	// password method: the user by id, or by name within userDomain.
	userID, userName string
	userDomain       ref
	password         string
	// token method: the token to rescope.
	token string
	// scope: a project by id, or by name within projectDomain; explicit
	// "unscoped"; or another kind this service cannot grant.
	projectID, projectName string
	projectDomain          ref
	unscoped               bool
	otherScope             bool
}

// errUnsupportedMethod is Keystone's answer to methods it cannot use.
var errUnsupportedMethod = &apiError{http.StatusUnauthorized, "Attempted to authenticate with an unsupported method."}

// decodeAuthRequest parses and checks an authentication request body. Every
// malformed input is a 400 apiError; it never panics.
func decodeAuthRequest(data []byte) (*authInput, error) {
	var req authRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&req); err != nil {
		return nil, errBadRequest("Expecting to find valid JSON in request body: %v.", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errBadRequest("Unexpected data after the JSON request body.")
	}
	if req.Auth == nil || req.Auth.Identity == nil {
		return nil, errBadRequest("Expecting to find identity in auth.")
	}
	id := req.Auth.Identity
	in := &authInput{}
	switch {
	case len(id.Methods) == 0:
		return nil, errBadRequest("Expecting to find methods in identity.")
	case slices.Contains(id.Methods, "password"):
		if id.Password == nil || id.Password.User == nil {
			return nil, errBadRequest("Expecting to find user in password.")
		}
		u := id.Password.User
		if u.Password == nil {
			return nil, errBadRequest("Expecting to find password in user.")
		}
		in.method, in.password = methodPassword, *u.Password
		switch {
		case u.ID != "":
			in.userID = u.ID
		case u.Name == "":
			return nil, errBadRequest("Expecting to find id or name in user.")
		case u.Domain == nil || (u.Domain.ID == "" && u.Domain.Name == ""):
			return nil, errBadRequest("Expecting to find domain in user.")
		default:
			in.userName, in.userDomain = u.Name, *u.Domain
		}
	case slices.Contains(id.Methods, "token"):
		if id.Token == nil || id.Token.ID == "" {
			return nil, errBadRequest("Expecting to find id in token.")
		}
		in.method, in.token = methodToken, id.Token.ID
	default:
		return nil, errUnsupportedMethod
	}
	if err := in.decodeScope(req.Auth.Scope); err != nil {
		return nil, err
	}
	return in, nil
}

// decodeScope fills the scope part of in from auth.scope.
func (in *authInput) decodeScope(raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	var word string
	if json.Unmarshal(raw, &word) == nil {
		if word != "unscoped" {
			return errBadRequest("Invalid scope %q.", word)
		}
		in.unscoped = true
		return nil
	}
	var s scopeRequest
	if err := json.Unmarshal(raw, &s); err != nil {
		return errBadRequest("Invalid input for field 'scope': %v.", err)
	}
	switch {
	case s.Project != nil:
		p := s.Project
		switch {
		case p.ID != "":
			in.projectID = p.ID
		case p.Name == "":
			return errBadRequest("Expecting to find id or name in project.")
		case p.Domain == nil || (p.Domain.ID == "" && p.Domain.Name == ""):
			return errBadRequest("Expecting to find domain in project.")
		default:
			in.projectName, in.projectDomain = p.Name, *p.Domain
		}
	case s.Domain != nil || s.System != nil || s.Trust != nil || s.AppCred != nil:
		in.otherScope = true
	}
	return nil
}

// createToken is POST /v3/auth/tokens.
func (b *Builtin) createToken(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, errBadRequest("Could not read the request body."))
		return
	}
	in, err := decodeAuthRequest(data)
	if err != nil {
		writeError(w, err)
		return
	}
	req, err := b.authenticate(r, in)
	if err != nil {
		b.authFailed(w, r, err)
		return
	}
	tok, s, err := b.issue(req)
	if err != nil {
		b.authFailed(w, r, err)
		return
	}
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, http.StatusCreated, map[string]any{"token": b.tokenBody(r, s, !truthy(r.URL.Query().Get("nocatalog"), r.URL.Query().Has("nocatalog")))})
}

// authFailed answers a failed authentication: always a bare 401 unless the
// request itself was malformed, so callers learn nothing about accounts.
func (b *Builtin) authFailed(w http.ResponseWriter, r *http.Request, err error) {
	if code, _ := asAPIError(err); code == http.StatusBadRequest {
		writeError(w, err)
		return
	}
	b.log.Debug("authentication failed", "err", err)
	b.unauthorized(w, r)
}

// authenticate checks the request's proof of identity and resolves its
// scope, producing what to issue.
func (b *Builtin) authenticate(r *http.Request, in *authInput) (issueRequest, error) {
	req := issueRequest{methods: in.method, defaultScope: !in.unscoped}
	switch in.method {
	case methodPassword:
		userID, pwRev, err := b.checkUserPassword(in)
		if err != nil {
			return req, err
		}
		req.userID, req.pwRev = userID, pwRev
	case methodToken:
		s, err := b.validate(r.Context(), in.token)
		if err != nil {
			return req, err
		}
		req.userID, req.parent = s.user.ID, s.claims
	}
	if in.otherScope {
		return req, fmt.Errorf("%w: only project scope is supported", ErrUnauthenticated)
	}
	if in.projectID == "" && in.projectName == "" {
		return req, nil
	}
	req.defaultScope = false
	var err error
	b.mirror.read(func(st *mirrorState, _ int64) {
		if in.projectID != "" {
			req.projectID = in.projectID
			return
		}
		d := lookupDomain(st, in.projectDomain)
		if d == nil {
			err = fmt.Errorf("%w: unknown project domain", ErrUnauthenticated)
			return
		}
		p := st.projectByName(d.ID, in.projectName)
		if p == nil {
			err = fmt.Errorf("%w: unknown project %q", ErrUnauthenticated, in.projectName)
			return
		}
		req.projectID = p.ID
	})
	return req, err
}

// checkUserPassword finds the user and compares the password, returning the
// user id and the revision of the password it matched.
func (b *Builtin) checkUserPassword(in *authInput) (string, int64, error) {
	var u *userRec
	var pw passwordRec
	b.mirror.read(func(st *mirrorState, _ int64) {
		if in.userID != "" {
			u = st.users[in.userID]
		} else if d := lookupDomain(st, in.userDomain); d != nil {
			u = st.userByName(d.ID, in.userName)
		}
		if u != nil {
			pw = st.passwords[u.ID]
		}
	})
	if u == nil || pw.hash == nil {
		checkPassword(dummyHash(), in.password)
		return "", 0, fmt.Errorf("%w: unknown user or no password", ErrUnauthenticated)
	}
	if !checkPassword(pw.hash, in.password) {
		return "", 0, fmt.Errorf("%w: wrong password for user %s", ErrUnauthenticated, u.ID)
	}
	return u.ID, pw.modRev, nil
}

// lookupDomain finds a domain by id, else by name.
func lookupDomain(st *mirrorState, d ref) *domainRec {
	if d.ID != "" {
		return st.domains[d.ID]
	}
	return st.domainByName(d.Name)
}

// subject validates the caller's token and the token it asks about, and
// checks the caller may look at it: Keystone lets admins, services and the
// token's own user validate or revoke a token.
func (b *Builtin) subject(w http.ResponseWriter, r *http.Request, action string) (*session, bool) {
	caller, err := b.validate(r.Context(), r.Header.Get("X-Auth-Token"))
	if err != nil {
		b.unauthorized(w, r)
		return nil, false
	}
	s, err := b.validate(r.Context(), r.Header.Get("X-Subject-Token"))
	if err != nil {
		writeError(w, &apiError{http.StatusNotFound, "Failed to validate token"})
		return nil, false
	}
	if !caller.isAdmin() && !caller.hasRole("service") && caller.user.ID != s.user.ID {
		writeError(w, errForbidden("identity:"+action))
		return nil, false
	}
	return s, true
}

// checkToken is GET and HEAD /v3/auth/tokens.
func (b *Builtin) checkToken(w http.ResponseWriter, r *http.Request) {
	s, ok := b.subject(w, r, "validate_token")
	if !ok {
		return
	}
	w.Header().Set("X-Subject-Token", r.Header.Get("X-Subject-Token"))
	q := r.URL.Query()
	writeJSON(w, http.StatusOK, map[string]any{"token": b.tokenBody(r, s, !truthy(q.Get("nocatalog"), q.Has("nocatalog")))})
}

// revokeToken is DELETE /v3/auth/tokens: it records the token's audit id
// until the token would have expired anyway.
func (b *Builtin) revokeToken(w http.ResponseWriter, r *http.Request) {
	s, ok := b.subject(w, r, "revoke_token")
	if !ok {
		return
	}
	ttl := int64(time.Until(s.claims.expiresAt())/time.Second) + 1
	lease, err := b.cli.Grant(r.Context(), ttl)
	if err != nil {
		b.serverError(w, r, fmt.Errorf("revoke token: %w", err))
		return
	}
	k := b.keys.revoked(s.claims.Audit[0])
	if _, err := b.commit(r.Context(), "revoke token", nil, clientv3.OpPut(k, "", clientv3.WithLease(lease.ID))); err != nil {
		b.serverError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// tokenBody renders a session as Keystone's token object.
func (b *Builtin) tokenBody(r *http.Request, s *session, withCatalog bool) map[string]any {
	c := s.claims
	t := map[string]any{
		"methods": c.methodNames(),
		"user": map[string]any{
			"id":                  s.user.ID,
			"name":                s.user.Name,
			"domain":              map[string]any{"id": s.userDomain.ID, "name": s.userDomain.Name},
			"password_expires_at": nil,
		},
		"audit_ids":  c.Audit,
		"expires_at": keystoneTime(c.expiresAt()),
		"issued_at":  keystoneTime(c.issuedAt()),
	}
	if s.project == nil {
		return t
	}
	t["project"] = map[string]any{
		"id":     s.project.ID,
		"name":   s.project.Name,
		"domain": map[string]any{"id": s.projectDomain.ID, "name": s.projectDomain.Name},
	}
	t["is_domain"] = false
	roles := make([]any, len(s.roles))
	for i, role := range s.roles {
		roles[i] = map[string]any{"id": role.ID, "name": role.Name}
	}
	t["roles"] = roles
	if withCatalog {
		t["catalog"] = b.catalog(r)
	}
	return t
}

// catalog lists the services this server offers: networking at the base
// URL (clients append /v2.0) and identity at /identity (clients discover v3).
func (b *Builtin) catalog(r *http.Request) []any {
	base := baseURL(r)
	return []any{
		b.service(r, "identity", "keystone", base+"/identity"),
		b.service(r, "network", "neutron", base),
	}
}

// service is one catalog entry with public, internal and admin endpoints.
func (b *Builtin) service(r *http.Request, typ, name, url string) map[string]any {
	var eps []any
	for _, iface := range []string{"public", "internal", "admin"} {
		eps = append(eps, map[string]any{
			"id":        stableID(typ + "/" + iface),
			"interface": iface,
			"region":    b.region,
			"region_id": b.region,
			"url":       url,
		})
	}
	return map[string]any{"id": stableID(typ), "type": typ, "name": name, "endpoints": eps}
}

// stableID derives a fixed id, so catalog ids agree across servers.
func stableID(s string) string {
	sum := sha256.Sum256([]byte("vland/catalog/" + s))
	return hex.EncodeToString(sum[:16])
}

// authProjects is GET /v3/auth/projects: the projects the caller may scope to.
func (b *Builtin) authProjects(w http.ResponseWriter, r *http.Request, s *session) {
	b.writeUserProjects(w, r, s.user.ID)
}

// authCatalog is GET /v3/auth/catalog.
func (b *Builtin) authCatalog(w http.ResponseWriter, r *http.Request, s *session) {
	cat := []any{}
	if s.project != nil {
		cat = b.catalog(r)
	}
	writeJSON(w, http.StatusOK, map[string]any{"catalog": cat, "links": listLinks(r)})
}
