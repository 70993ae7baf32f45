package identity

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/domains"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"
)

func TestProjectAndUserLifecycleThroughGophercloud(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	c := e.identity(adminOpts())

	p, err := projects.Create(ctx, c, projects.CreateOpts{Name: "p1", Description: "first"}).Extract()
	if err != nil || p.DomainID != "default" || !p.Enabled || p.ParentID != "default" {
		t.Fatalf("create project: %+v %v", p, err)
	}
	if _, err := projects.Create(ctx, c, projects.CreateOpts{Name: "p2"}).Extract(); err != nil {
		t.Fatal(err)
	}
	page, err := projects.List(c, projects.ListOpts{Name: "p1", DomainID: "default"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := projects.ExtractProjects(page)
	if len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("filtered list %+v", list)
	}
	page, _ = projects.List(c, nil).AllPages(ctx)
	if list, _ = projects.ExtractProjects(page); len(list) != 3 {
		t.Fatalf("all projects %+v, want admin, p1, p2", list)
	}
	name, desc := "p1-renamed", "renamed"
	up, err := projects.Update(ctx, c, p.ID, projects.UpdateOpts{Name: name, Description: &desc}).Extract()
	if err != nil || up.Name != name || up.Description != desc {
		t.Fatalf("update: %+v %v", up, err)
	}
	if _, err := projects.Update(ctx, c, p.ID, projects.UpdateOpts{Name: "p2"}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Fatalf("rename onto an existing name: %v, want 409", err)
	}

	u, err := users.Create(ctx, c, users.CreateOpts{Name: "u1", Password: "pw", DefaultProjectID: p.ID,
		Extra: map[string]any{"email": "u1@example.com"}}).Extract()
	if err != nil || u.DefaultProjectID != p.ID || u.DomainID != "default" || u.Extra["email"] != "u1@example.com" {
		t.Fatalf("create user: %+v %v", u, err)
	}
	if _, err := users.Create(ctx, c, users.CreateOpts{Name: "u1", Password: "x"}).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		t.Fatalf("duplicate user: %v, want 409", err)
	}
	page, _ = users.List(c, users.ListOpts{Name: "u1", DomainID: "default"}).AllPages(ctx)
	if ul, _ := users.ExtractUsers(page); len(ul) != 1 || ul[0].ID != u.ID {
		t.Fatalf("filtered users %+v", ul)
	}
	got, err := users.Get(ctx, c, u.ID).Extract()
	if err != nil || got.Name != "u1" {
		t.Fatalf("get user: %+v %v", got, err)
	}

	if err := users.Delete(ctx, c, u.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := projects.Delete(ctx, c, p.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if _, err := projects.Get(ctx, c, p.ID).Extract(); !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		t.Fatalf("get deleted project: %v, want 404", err)
	}
	resp, body := e.do("GET", "/identity/v3/projects/"+p.ID, e.adminToken(), nil)
	wantKeystoneError(t, resp, body, http.StatusNotFound)
	if msg := body["error"].(map[string]any)["message"]; msg != "Could not find project: "+p.ID+"." {
		t.Fatalf("404 message %q", msg)
	}
	resp, body = e.do("DELETE", "/identity/v3/users/"+u.ID, e.adminToken(), nil)
	wantKeystoneError(t, resp, body, http.StatusNotFound)

	// The name is free again.
	if _, err := projects.Create(ctx, c, projects.CreateOpts{Name: name}).Extract(); err != nil {
		t.Fatalf("recreate a deleted project's name: %v", err)
	}
}

func TestListsHaveKeystoneLinks(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	tok := e.adminToken()
	for _, coll := range []string{"projects", "users", "roles", "domains", "role_assignments"} {
		resp, body := e.do("GET", "/identity/v3/"+coll, tok, nil)
		links, _ := body["links"].(map[string]any)
		if resp.StatusCode != 200 || links["self"] != e.srv.URL+"/identity/v3/"+coll {
			t.Fatalf("%s: %d links %v", coll, resp.StatusCode, links)
		}
		if _, ok := links["next"]; !ok {
			t.Fatalf("%s: links lack next", coll)
		}
		items, _ := body[coll].([]any)
		if len(items) == 0 {
			t.Fatalf("%s: empty", coll)
		}
		if coll == "role_assignments" {
			continue
		}
		for _, it := range items {
			self := it.(map[string]any)["links"].(map[string]any)["self"].(string)
			if !strings.HasPrefix(self, e.srv.URL+"/identity/v3/"+coll+"/") {
				t.Fatalf("%s: item self link %q", coll, self)
			}
		}
	}
	c := e.identity(adminOpts())
	d, err := domains.Get(t.Context(), c, "default").Extract()
	if err != nil || d.Name != "Default" {
		t.Fatalf("default domain %+v %v", d, err)
	}
	page, _ := domains.List(c, domains.ListOpts{Name: "Default"}).AllPages(t.Context())
	if dl, _ := domains.ExtractDomains(page); len(dl) != 1 {
		t.Fatalf("domains by name %+v", dl)
	}
}

func TestAdminAPIIsForbiddenToMembers(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	p, _ := e.b.CreateProject(ctx, "p1")
	u, _ := e.b.CreateUser(ctx, "u1", "pw", p, "member")
	tok := e.issue("u1", "pw", "p1")
	for _, req := range []struct{ method, path string }{
		{"GET", "/identity/v3/projects"},
		{"POST", "/identity/v3/projects"},
		{"DELETE", "/identity/v3/projects/" + p},
		{"GET", "/identity/v3/users"},
		{"POST", "/identity/v3/users"},
		{"GET", "/identity/v3/roles"},
		{"GET", "/identity/v3/role_assignments"},
		{"PUT", "/identity/v3/projects/" + p + "/users/" + u + "/roles/" + e.roleID("admin")},
		{"GET", "/identity/v3/projects/" + e.adminProject()},
		{"GET", "/identity/v3/users/" + e.adminUser()},
	} {
		resp, body := e.do(req.method, req.path, tok, map[string]any{"project": map[string]any{"name": "x"}})
		wantKeystoneError(t, resp, body, http.StatusForbidden)
	}
	// Users may read themselves, their project and their projects.
	for _, path := range []string{"/identity/v3/projects/" + p, "/identity/v3/users/" + u, "/identity/v3/users/" + u + "/projects", "/identity/v3/auth/projects"} {
		if resp, body := e.do("GET", path, tok, nil); resp.StatusCode != 200 {
			t.Fatalf("GET %s as member: %d %v", path, resp.StatusCode, body)
		}
	}
	// No token at all is a 401.
	resp, body := e.do("GET", "/identity/v3/projects", "", nil)
	wantKeystoneError(t, resp, body, http.StatusUnauthorized)
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatal("401 without WWW-Authenticate")
	}
}

func (e *env) adminProject() string {
	var id string
	e.b.mirror.read(func(st *mirrorState, _ int64) { id = st.projectByName("default", "admin").ID })
	return id
}

func (e *env) adminUser() string {
	var id string
	e.b.mirror.read(func(st *mirrorState, _ int64) { id = st.userByName("default", "admin").ID })
	return id
}

func TestConcurrentCreatesOfOneNameYieldExactlyOne(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	second := serve(t, e.startBuiltin(BuiltinConfig{}))
	tok := e.adminToken()
	for _, kind := range []string{"projects", "users", "roles"} {
		var wg sync.WaitGroup
		codes := make([]int, 16)
		for i := range codes {
			wg.Go(func() {
				// Half the requests go to a second server on the same store.
				base := e.srv.URL
				if i%2 == 1 {
					base = second.URL
				}
				singular := strings.TrimSuffix(kind, "s")
				body := fmt.Sprintf(`{%q: {"name": "same", "password": "pw"}}`, singular)
				req, _ := http.NewRequestWithContext(t.Context(), "POST", base+"/identity/v3/"+kind, strings.NewReader(body))
				req.Header.Set("X-Auth-Token", tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				codes[i] = resp.StatusCode
			})
		}
		wg.Wait()
		created, conflicts := 0, 0
		for _, c := range codes {
			switch c {
			case http.StatusCreated:
				created++
			case http.StatusConflict:
				conflicts++
			}
		}
		if created != 1 || conflicts != 15 {
			t.Fatalf("%s: codes %v, want one 201 and fifteen 409", kind, codes)
		}
		resp, body := e.do("GET", "/identity/v3/"+kind+"?name=same", tok, nil)
		if n := len(body[kind].([]any)); resp.StatusCode != 200 || n != 1 {
			t.Fatalf("%s named same: %d", kind, n)
		}
	}
}

func TestRoleAssignmentsThroughGophercloud(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	c := e.identity(adminOpts())
	p, _ := e.b.CreateProject(ctx, "p1")
	u, _ := e.b.CreateUser(ctx, "u1", "pw", p)

	page, err := roles.List(c, roles.ListOpts{Name: "member"}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rl, _ := roles.ExtractRoles(page)
	if len(rl) != 1 || rl[0].Name != "member" {
		t.Fatalf("roles named member: %+v", rl)
	}
	member := rl[0].ID
	if r, err := roles.Get(ctx, c, member).Extract(); err != nil || r.Name != "member" {
		t.Fatalf("get role: %+v %v", r, err)
	}
	if err := roles.Validate(ctx, c, member, roles.ValidateOpts{UserID: u, ProjectID: p}).ExtractErr(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("check absent grant: %v, want 404", err)
	}
	if err := roles.Assign(ctx, c, member, roles.AssignOpts{UserID: u, ProjectID: p}).ExtractErr(); err != nil {
		t.Fatalf("assign: %v", err)
	}
	if err := roles.Assign(ctx, c, member, roles.AssignOpts{UserID: u, ProjectID: p}).ExtractErr(); err != nil {
		t.Fatalf("assign twice: %v", err)
	}
	if err := roles.Validate(ctx, c, member, roles.ValidateOpts{UserID: u, ProjectID: p}).ExtractErr(); err != nil {
		t.Fatalf("check grant: %v", err)
	}
	if err := roles.Assign(ctx, c, "nope", roles.AssignOpts{UserID: u, ProjectID: p}).ExtractErr(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("assign unknown role: %v, want 404", err)
	}

	yes := true
	page, err = roles.ListAssignments(c, roles.ListAssignmentsOpts{ScopeProjectID: p, IncludeNames: &yes}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	al, _ := roles.ExtractRoleAssignments(page)
	if len(al) != 1 || al[0].User.Name != "u1" || al[0].Role.Name != "member" || al[0].Scope.Project.Name != "p1" ||
		al[0].User.Domain.Name != "Default" || al[0].Scope.Project.Domain.Name != "Default" {
		t.Fatalf("assignments on p1 with names: %+v", al)
	}
	page, _ = roles.ListAssignments(c, roles.ListAssignmentsOpts{UserID: e.adminUser(), RoleID: e.roleID("reader")}).AllPages(ctx)
	if al, _ = roles.ExtractRoleAssignments(page); len(al) != 1 || al[0].Scope.Project.ID != e.adminProject() || al[0].Role.Name != "" {
		t.Fatalf("admin's reader assignments without names: %+v", al)
	}
	page, _ = roles.ListAssignmentsOnResource(c, roles.ListAssignmentsOnResourceOpts{UserID: u, ProjectID: p}).AllPages(ctx)
	if rl, _ = roles.ExtractRoles(page); len(rl) != 1 || rl[0].ID != member {
		t.Fatalf("roles of u1 on p1: %+v", rl)
	}
	page, _ = users.ListProjects(c, u).AllPages(ctx)
	if pl, _ := projects.ExtractProjects(page); len(pl) != 1 || pl[0].ID != p {
		t.Fatalf("projects of u1: %+v", pl)
	}

	if err := roles.Unassign(ctx, c, member, roles.UnassignOpts{UserID: u, ProjectID: p}).ExtractErr(); err != nil {
		t.Fatalf("unassign: %v", err)
	}
	if err := roles.Unassign(ctx, c, member, roles.UnassignOpts{UserID: u, ProjectID: p}).ExtractErr(); !gophercloud.ResponseCodeIs(err, 404) {
		t.Fatalf("unassign twice: %v, want 404", err)
	}
	page, _ = roles.ListAssignments(c, roles.ListAssignmentsOpts{ScopeProjectID: p}).AllPages(ctx)
	if al, _ = roles.ExtractRoleAssignments(page); len(al) != 0 {
		t.Fatalf("assignments after unassign: %+v", al)
	}

	// Custom roles can be created and deleted; deleting one drops its grants.
	r, err := roles.Create(ctx, c, roles.CreateOpts{Name: "auditor"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if err := roles.Assign(ctx, c, r.ID, roles.AssignOpts{UserID: u, ProjectID: p}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	if err := roles.Delete(ctx, c, r.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	page, _ = roles.ListAssignments(c, roles.ListAssignmentsOpts{UserID: u}).AllPages(ctx)
	if al, _ = roles.ExtractRoleAssignments(page); len(al) != 0 {
		t.Fatalf("assignments after role delete: %+v", al)
	}
}

func TestMalformedBodiesAre400NotServerErrors(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	tok := e.adminToken()
	p, _ := e.b.CreateProject(t.Context(), "p1")
	cases := []struct{ method, path, body string }{
		{"POST", "/identity/v3/auth/tokens", ``},
		{"POST", "/identity/v3/auth/tokens", `{`},
		{"POST", "/identity/v3/auth/tokens", `[]`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": 5}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {}}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {"identity": {"methods": []}}}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {"identity": {"methods": ["password"]}}}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "password": "x"}}}}}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "x", "password": 5}}}}}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "x", "password": "p"}}}, "scope": 7}}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {"identity": {"methods": ["password"], "password": {"user": {"id": "x", "password": "p"}}}, "scope": {"project": {"name": "p"}}}}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {"identity": {"methods": "password"}}}`},
		{"POST", "/identity/v3/auth/tokens", `{"auth": {"identity": {"methods": ["token"], "token": {}}}}`},
		{"POST", "/identity/v3/projects", `{"project": {}}`},
		{"POST", "/identity/v3/projects", `{"project": {"name": ""}}`},
		{"POST", "/identity/v3/projects", `{"project": {"name": 3}}`},
		{"POST", "/identity/v3/projects", `{"project": {"name": "x", "enabled": "yes"}}`},
		{"POST", "/identity/v3/projects", `{"project": {"name": "` + strings.Repeat("x", 65) + `"}}`},
		{"POST", "/identity/v3/projects", `{"project": {"name": "x", "domain_id": "nope"}}`},
		{"POST", "/identity/v3/projects", `not json`},
		{"PATCH", "/identity/v3/projects/" + p, `{"project": {"domain_id": "other"}}`},
		{"PATCH", "/identity/v3/projects/" + p, `{"project": null}`},
		{"POST", "/identity/v3/users", `{"user": {"name": ["x"]}}`},
		{"POST", "/identity/v3/users", `{"user": {"name": "x", "password": 1}}`},
		{"POST", "/identity/v3/users", `{}`},
		{"POST", "/identity/v3/roles", `{"role": {"name": ""}}`},
		{"POST", "/identity/v3/users/x/password", `{"user": {}}`},
	}
	for _, c := range cases {
		resp, body := e.do(c.method, c.path, tok, c.body)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s %s: %d %v, want 400", c.method, c.path, c.body, resp.StatusCode, body)
			continue
		}
		wantKeystoneError(t, resp, body, http.StatusBadRequest)
	}
	// Unsupported methods and scopes are authentication failures, as in Keystone.
	domainScoped := passwordAuth("admin", adminPassword, "")
	domainScoped["auth"].(map[string]any)["scope"] = map[string]any{"domain": map[string]any{"id": "default"}}
	for _, body := range []any{`{"auth": {"identity": {"methods": ["totp"]}}}`, domainScoped} {
		resp, out := e.do("POST", "/identity/v3/auth/tokens", "", body)
		wantKeystoneError(t, resp, out, http.StatusUnauthorized)
	}
	resp, out := e.do("GET", "/identity/v3/nothing/here", tok, nil)
	wantKeystoneError(t, resp, out, http.StatusNotFound)
	resp, out = e.do("GET", "/identity/v3/projects/"+url.PathEscape("a name/with slash"), tok, nil)
	wantKeystoneError(t, resp, out, http.StatusNotFound)
}
