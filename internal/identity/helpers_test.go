package identity

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"golang.org/x/crypto/bcrypt"

	"github.com/vland/vland/internal/store"
)

const adminPassword = `s3cret:"pa$$word"!`

func TestMain(m *testing.M) {
	// bcrypt at its default cost under the race detector makes every
	// password check take most of a second.
	bcryptCost = bcrypt.MinCost
	os.Exit(m.Run())
}

// env is one vland identity service on a real embedded etcd, served over
// real HTTP.
type env struct {
	t   testing.TB
	dir string
	st  *store.Store
	b   *Builtin
	srv *httptest.Server
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEnv starts a store in a fresh directory and a builtin on it.
func newEnv(t testing.TB, cfg BuiltinConfig) *env {
	t.Helper()
	dir := t.TempDir()
	st := openStore(t, dir)
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, dir: dir, st: st}
	e.b = e.startBuiltin(cfg)
	e.srv = serve(t, e.b)
	return e
}

// openStore starts an embedded etcd in dir. The store picks its ports by
// listening and closing, so another process may take one meanwhile: retry.
func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	for attempt := 0; ; attempt++ {
		st, err := store.Open(t.Context(), store.Config{DataDir: dir, Logger: quietLogger()})
		if err == nil {
			return st
		}
		if attempt == 4 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("open store: %v", err)
		}
	}
}

// startBuiltin starts a builtin on e's store, stopped when the test ends.
func (e *env) startBuiltin(cfg BuiltinConfig) *Builtin {
	e.t.Helper()
	cfg.Store = e.st
	if cfg.AdminPassword == "" {
		cfg.AdminPassword = adminPassword
	}
	if cfg.DataDir == "" {
		cfg.DataDir = e.dir
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	b, err := NewBuiltin(e.t.Context(), cfg)
	if err != nil {
		e.t.Fatalf("start builtin: %v", err)
	}
	e.t.Cleanup(b.Close)
	return b
}

// serve mounts b's handler as the vland server does.
func serve(t testing.TB, b *Builtin) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/identity", b.Handler())
	mux.Handle("/identity/", b.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// login authenticates with gophercloud against the identity v3 endpoint.
func (e *env) login(opts gophercloud.AuthOptions) (*gophercloud.ProviderClient, error) {
	opts.IdentityEndpoint = e.srv.URL + "/identity/v3"
	return openstack.AuthenticatedClient(e.t.Context(), opts)
}

// adminOpts are the bootstrap admin's credentials, by name.
func adminOpts() gophercloud.AuthOptions {
	return gophercloud.AuthOptions{Username: "admin", Password: adminPassword, DomainName: "Default", TenantName: "admin"}
}

// identity returns an identity v3 client for the given credentials.
func (e *env) identity(opts gophercloud.AuthOptions) *gophercloud.ServiceClient {
	e.t.Helper()
	pc, err := e.login(opts)
	if err != nil {
		e.t.Fatalf("login as %q/%q: %v", opts.Username, opts.UserID, err)
	}
	c, err := openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{})
	if err != nil {
		e.t.Fatalf("identity client: %v", err)
	}
	return c
}

// adminToken is a token of the bootstrap admin on the admin project.
func (e *env) adminToken() string {
	e.t.Helper()
	pc, err := e.login(adminOpts())
	if err != nil {
		e.t.Fatalf("admin login: %v", err)
	}
	return pc.Token()
}

// do sends a raw request and decodes a JSON answer (nil when empty).
func (e *env) do(method, path, token string, body any, headers ...string) (*http.Response, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(v))
	default:
		data, err := json.Marshal(v)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	var out map[string]any
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			e.t.Fatalf("%s %s: %d answer is not JSON: %q", method, path, resp.StatusCode, data)
		}
	}
	return resp, out
}

// passwordAuth is a Keystone password-auth body scoped to a project by name.
func passwordAuth(user, password, project string) map[string]any {
	auth := map[string]any{
		"identity": map[string]any{
			"methods": []string{"password"},
			"password": map[string]any{"user": map[string]any{
				"name": user, "domain": map[string]any{"name": "Default"}, "password": password,
			}},
		},
	}
	if project != "" {
		auth["scope"] = map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"id": "default"}}}
	}
	return map[string]any{"auth": auth}
}

// issue obtains a token by password over HTTP, failing the test otherwise.
func (e *env) issue(user, password, project string) string {
	e.t.Helper()
	resp, body := e.do("POST", "/identity/v3/auth/tokens", "", passwordAuth(user, password, project))
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("issue token for %s on %q: %d %v", user, project, resp.StatusCode, body)
	}
	return resp.Header.Get("X-Subject-Token")
}

// apiRequest builds a request carrying token, as the API server sees it.
func apiRequest(ctx context.Context, token string) *http.Request {
	r := httptest.NewRequest("GET", "/v2.0/networks", nil).WithContext(ctx)
	if token != "" {
		r.Header.Set("X-Auth-Token", token)
	}
	return r
}

// wantKeystoneError checks a Keystone error body and status.
func wantKeystoneError(t *testing.T, resp *http.Response, body map[string]any, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("status %d, want %d (body %v)", resp.StatusCode, code, body)
	}
	e, ok := body["error"].(map[string]any)
	if !ok || e["code"] != float64(code) || e["title"] == "" || e["message"] == "" {
		t.Fatalf("error body %v is not Keystone's shape for %d", body, code)
	}
}

// eventually retries f until it returns true or a few seconds pass.
func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
