package identity

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
)

func TestPasswordAuthByNameScopesProjectByName(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	pc, err := e.login(adminOpts())
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	res := pc.GetAuthResult().(tokens.CreateResult)
	proj, err := res.ExtractProject()
	if err != nil || proj.Name != "admin" || proj.Domain.ID != "default" {
		t.Fatalf("project %+v, %v", proj, err)
	}
	user, err := res.ExtractUser()
	if err != nil || user.Name != "admin" || user.Domain.Name != "Default" {
		t.Fatalf("user %+v, %v", user, err)
	}
	roles, _ := res.ExtractRoles()
	var names []string
	for _, r := range roles {
		names = append(names, r.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"admin", "member", "reader"}) {
		t.Fatalf("roles %v", names)
	}
	cat, err := res.ExtractServiceCatalog()
	if err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	for _, svc := range cat.Entries {
		for _, ep := range svc.Endpoints {
			if ep.Interface == "public" && ep.Region == "RegionOne" {
				urls[svc.Type] = ep.URL
			}
		}
	}
	if urls["network"] != e.srv.URL || urls["identity"] != e.srv.URL+"/identity" {
		t.Fatalf("catalog urls %v", urls)
	}
	tok, err := res.ExtractToken()
	if err != nil || time.Until(tok.ExpiresAt) < 11*time.Hour {
		t.Fatalf("token %+v, %v: want 12h default lifetime", tok, err)
	}
}

func TestPasswordAuthByIDScopesProjectByID(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	p, _ := e.b.CreateProject(ctx, "p1")
	u, err := e.b.CreateUser(ctx, "u1", `p@ss:w"rd!`, p, "member")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := e.login(gophercloud.AuthOptions{UserID: u, Password: `p@ss:w"rd!`, TenantID: p})
	if err != nil {
		t.Fatalf("login by id: %v", err)
	}
	proj, _ := pc.GetAuthResult().(tokens.CreateResult).ExtractProject()
	if proj.ID != p {
		t.Fatalf("scoped to %+v, want %s", proj, p)
	}
	// Scope by project name with the domain given by id.
	pc, err = e.login(gophercloud.AuthOptions{Username: "u1", DomainID: "default", Password: `p@ss:w"rd!`,
		Scope: &gophercloud.AuthScope{ProjectName: "p1", DomainID: "default"}})
	if err != nil {
		t.Fatalf("login with domain ids: %v", err)
	}
	proj, _ = pc.GetAuthResult().(tokens.CreateResult).ExtractProject()
	if proj.ID != p {
		t.Fatalf("scoped to %+v", proj)
	}
}

func TestUnscopedTokensCarryNoRolesAndDefaultProjectScopes(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	p, _ := e.b.CreateProject(ctx, "p1")
	if _, err := e.b.CreateUser(ctx, "withdefault", "pw", p, "member"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.CreateUser(ctx, "nodefault", "pw", ""); err != nil {
		t.Fatal(err)
	}
	// No scope and a default project: Keystone scopes to it.
	resp, body := e.do("POST", "/identity/v3/auth/tokens", "", passwordAuth("withdefault", "pw", ""))
	tok := body["token"].(map[string]any)
	if resp.StatusCode != 201 || tok["project"].(map[string]any)["id"] != p || tok["catalog"] == nil {
		t.Fatalf("default-scoped token: %d %v", resp.StatusCode, body)
	}
	// Explicitly unscoped.
	req := passwordAuth("withdefault", "pw", "")
	req["auth"].(map[string]any)["scope"] = "unscoped"
	resp, body = e.do("POST", "/identity/v3/auth/tokens", "", req)
	tok = body["token"].(map[string]any)
	if resp.StatusCode != 201 || tok["project"] != nil || tok["roles"] != nil || tok["catalog"] != nil {
		t.Fatalf("unscoped token: %d %v", resp.StatusCode, body)
	}
	for _, f := range []string{"issued_at", "expires_at"} {
		if s, _ := tok[f].(string); len(s) != len("2026-11-21T20:00:00.000000Z") || !strings.HasSuffix(s, "Z") {
			t.Fatalf("%s = %q, want Keystone's microsecond format", f, s)
		}
	}
	// No default project: unscoped.
	resp, body = e.do("POST", "/identity/v3/auth/tokens", "", passwordAuth("nodefault", "pw", ""))
	if resp.StatusCode != 201 || body["token"].(map[string]any)["project"] != nil {
		t.Fatalf("token without default project: %d %v", resp.StatusCode, body)
	}
	// An unscoped token authenticates, with no project and no roles.
	c, err := e.b.Authenticate(apiRequest(ctx, resp.Header.Get("X-Subject-Token")))
	if err != nil || c.ProjectID != "" || len(c.Roles) != 0 || c.UserName != "nodefault" {
		t.Fatalf("credentials %+v, %v", c, err)
	}
}

func TestBadCredentialsAre401WithKeystoneBody(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	p, _ := e.b.CreateProject(ctx, "p1")
	other, _ := e.b.CreateProject(ctx, "other")
	if _, err := e.b.CreateUser(ctx, "u1", "right", p, "member"); err != nil {
		t.Fatal(err)
	}
	_ = other
	for name, req := range map[string]map[string]any{
		"wrong password":      passwordAuth("u1", "wrong", "p1"),
		"unknown user":        passwordAuth("nobody", "right", "p1"),
		"no role on project":  passwordAuth("u1", "right", "other"),
		"unknown project":     passwordAuth("u1", "right", "nope"),
		"empty password":      passwordAuth("u1", "", "p1"),
		"password of another": passwordAuth("admin", "right", "admin"),
	} {
		resp, body := e.do("POST", "/identity/v3/auth/tokens", "", req)
		wantKeystoneError(t, resp, body, http.StatusUnauthorized)
		msg := body["error"].(map[string]any)["message"]
		if msg != "The request you have made requires authentication." || body["error"].(map[string]any)["title"] != "Unauthorized" {
			t.Fatalf("%s: body %v", name, body)
		}
		if resp.Header.Get("X-Subject-Token") != "" {
			t.Fatalf("%s: a token was issued", name)
		}
	}
	if _, err := e.login(gophercloud.AuthOptions{Username: "u1", Password: "wrong", DomainName: "Default", TenantName: "p1"}); !gophercloud.ResponseCodeIs(err, 401) {
		t.Fatalf("gophercloud login with a wrong password: %v, want 401", err)
	}
}

func TestTokenValidationGetHeadAndAuthenticate(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	p, _ := e.b.CreateProject(ctx, "p1")
	if _, err := e.b.CreateUser(ctx, "u1", "pw", p, "member"); err != nil {
		t.Fatal(err)
	}
	userTok := e.issue("u1", "pw", "p1")
	admin := e.identity(adminOpts())

	ok, err := tokens.Validate(ctx, admin, userTok)
	if err != nil || !ok {
		t.Fatalf("HEAD validate: %v %v", ok, err)
	}
	res := tokens.Get(ctx, admin, userTok)
	proj, err := res.ExtractProject()
	if err != nil || proj.ID != p {
		t.Fatalf("GET validate: %+v %v", proj, err)
	}
	if ok, err := tokens.Validate(ctx, admin, userTok+"x"); ok || err != nil {
		t.Fatalf("validate forged token: %v %v, want false", ok, err)
	}
	resp, body := e.do("GET", "/identity/v3/auth/tokens", e.adminToken(), nil, "X-Subject-Token", "garbage")
	wantKeystoneError(t, resp, body, http.StatusNotFound)
	// Users may validate their own token, not others'.
	resp, _ = e.do("GET", "/identity/v3/auth/tokens", userTok, nil, "X-Subject-Token", userTok)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Subject-Token") != userTok {
		t.Fatalf("self validation: %d", resp.StatusCode)
	}
	resp, body = e.do("GET", "/identity/v3/auth/tokens", userTok, nil, "X-Subject-Token", e.adminToken())
	wantKeystoneError(t, resp, body, http.StatusForbidden)

	c, err := e.b.Authenticate(apiRequest(ctx, userTok))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(c.Roles)
	if c.ProjectID != p || c.ProjectName != "p1" || c.UserName != "u1" || c.DomainID != "default" ||
		!slices.Equal(c.Roles, []string{"member", "reader"}) || c.IsAdmin() || !c.CanWrite() {
		t.Fatalf("credentials %+v", c)
	}
	for _, tok := range []string{"", "x", "a.b", userTok[:len(userTok)-2]} {
		if _, err := e.b.Authenticate(apiRequest(ctx, tok)); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("token %q: %v, want ErrUnauthenticated", tok, err)
		}
	}
}

func TestTokensExpire(t *testing.T) {
	e := newEnv(t, BuiltinConfig{TokenTTL: time.Second})
	tok := e.issue("admin", adminPassword, "admin")
	if _, err := e.b.Authenticate(apiRequest(t.Context(), tok)); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := e.b.Authenticate(apiRequest(t.Context(), tok)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token: %v, want ErrUnauthenticated", err)
	}
	fresh := e.issue("admin", adminPassword, "admin")
	resp, _ := e.do("HEAD", "/identity/v3/auth/tokens", fresh, nil, "X-Subject-Token", tok)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD of an expired token: %d, want 404", resp.StatusCode)
	}
}

func TestRevokedTokenIsRejectedEverywhere(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	second := e.startBuiltin(BuiltinConfig{})
	p, _ := e.b.CreateProject(ctx, "p1")
	if _, err := e.b.CreateUser(ctx, "u1", "pw", p, "member"); err != nil {
		t.Fatal(err)
	}
	tok := e.issue("u1", "pw", "p1")
	admin := e.identity(adminOpts())
	if err := tokens.Revoke(ctx, admin, tok).Err; err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := e.b.Authenticate(apiRequest(ctx, tok)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("revoked token on this server: %v", err)
	}
	eventually(t, "the other server to see the revocation", func() bool {
		_, err := second.Authenticate(apiRequest(ctx, tok))
		return errors.Is(err, ErrUnauthenticated)
	})
	if ok, _ := tokens.Validate(ctx, admin, tok); ok {
		t.Fatal("revoked token validates")
	}
	// Revocation concerns one token: the user can log in again.
	if _, err := e.b.Authenticate(apiRequest(ctx, e.issue("u1", "pw", "p1"))); err != nil {
		t.Fatalf("new token after revocation: %v", err)
	}
	var revoked []string
	e.b.mirror.read(func(st *mirrorState, _ int64) {
		for id := range st.revoked {
			revoked = append(revoked, id)
		}
	})
	if len(revoked) != 1 {
		t.Fatalf("revocation records %v, want one", revoked)
	}
}

func TestTokenInvalidAfterUserDeleteRoleRemovalOrPasswordChange(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	admin := e.adminToken()
	p, _ := e.b.CreateProject(ctx, "p1")
	valid := func(tok string) bool {
		_, err := e.b.Authenticate(apiRequest(ctx, tok))
		return err == nil
	}

	u1, _ := e.b.CreateUser(ctx, "deleted", "pw", p, "member")
	tok := e.issue("deleted", "pw", "p1")
	if resp, _ := e.do("DELETE", "/identity/v3/users/"+u1, admin, nil); resp.StatusCode != 204 || valid(tok) {
		t.Fatalf("after user delete: status %d, token valid %v", resp.StatusCode, valid(tok))
	}

	u2, _ := e.b.CreateUser(ctx, "demoted", "pw", p, "member", "reader")
	tok = e.issue("demoted", "pw", "p1")
	var memberID string
	e.b.mirror.read(func(st *mirrorState, _ int64) { memberID = st.roleByName("member").ID })
	grant := "/identity/v3/projects/" + p + "/users/" + u2 + "/roles/" + memberID
	if resp, _ := e.do("DELETE", grant, admin, nil); resp.StatusCode != 204 || valid(tok) {
		t.Fatalf("after role removal: status %d, token valid %v", resp.StatusCode, valid(tok))
	}
	// Granting the role again does not revive the old token.
	if resp, _ := e.do("PUT", grant, admin, nil); resp.StatusCode != 204 || valid(tok) {
		t.Fatalf("after re-grant: status %d, old token valid %v", resp.StatusCode, valid(tok))
	}
	if !valid(e.issue("demoted", "pw", "p1")) {
		t.Fatal("new token after re-grant is invalid")
	}

	e.b.CreateUser(ctx, "rotated", "old", p, "member")
	tok = e.issue("rotated", "old", "p1")
	var u3 string
	e.b.mirror.read(func(st *mirrorState, _ int64) { u3 = st.userByName("default", "rotated").ID })
	resp, _ := e.do("PATCH", "/identity/v3/users/"+u3, admin, map[string]any{"user": map[string]any{"password": "new"}})
	if resp.StatusCode != 200 || valid(tok) || !valid(e.issue("rotated", "new", "p1")) {
		t.Fatalf("after password change: status %d, old token valid %v", resp.StatusCode, valid(tok))
	}

	tok = e.issue("rotated", "new", "p1")
	if resp, _ := e.do("DELETE", "/identity/v3/projects/"+p, admin, nil); resp.StatusCode != 204 || valid(tok) {
		t.Fatalf("after project delete: status %d, token valid %v", resp.StatusCode, valid(tok))
	}
}

func TestRescopeWithTokenMethodKeepsExpiryAndAuditChain(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	p, _ := e.b.CreateProject(ctx, "p1")
	u, err := e.b.CreateUser(ctx, "u1", "pw", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.grant(ctx, p, u, e.roleID("member")); err != nil {
		t.Fatal(err)
	}
	unscoped := e.issue("u1", "pw", "")
	resp, body := e.do("POST", "/identity/v3/auth/tokens", "", map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"token"}, "token": map[string]any{"id": unscoped}},
		"scope":    map[string]any{"project": map[string]any{"id": p}},
	}})
	if resp.StatusCode != 201 {
		t.Fatalf("rescope: %d %v", resp.StatusCode, body)
	}
	tok := body["token"].(map[string]any)
	audit := tok["audit_ids"].([]any)
	if len(audit) != 2 || !slices.Contains(tok["methods"].([]any), "token") {
		t.Fatalf("rescoped token %v", tok)
	}
	_, orig := e.do("GET", "/identity/v3/auth/tokens", unscoped, nil, "X-Subject-Token", unscoped)
	if orig["token"].(map[string]any)["expires_at"] != tok["expires_at"] {
		t.Fatalf("rescoped expiry %v differs from the original's %v", tok["expires_at"], orig["token"])
	}
}

// roleID finds a role's id by name.
func (e *env) roleID(name string) string {
	var id string
	e.b.mirror.read(func(st *mirrorState, _ int64) { id = st.roleByName(name).ID })
	return id
}

func TestTokensAreCompact(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	tok := e.issue("admin", adminPassword, "admin")
	if len(tok) > 256 {
		t.Fatalf("admin token is %d bytes: %s", len(tok), tok)
	}
}

// BenchmarkAuthenticate measures the per-request cost of validating a
// token: an HMAC, a small binary decode and a few map lookups.
func BenchmarkAuthenticate(b *testing.B) {
	e := newEnv(b, BuiltinConfig{})
	tok := e.issue("admin", adminPassword, "admin")
	r := apiRequest(b.Context(), tok)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.b.Authenticate(r); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
