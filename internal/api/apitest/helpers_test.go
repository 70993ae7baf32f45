// Package apitest drives an in-process vland server through gophercloud v2
// and a raw HTTP client, as OpenStack clients would: lifecycle, project
// isolation, segments, IPAM, error bodies and restarts.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/tokens"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/mtu"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/provider"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/vland/vland/internal/server"
	"github.com/vland/vland/internal/service"
)

const adminPassword = "admin-secret"

// ctx is the context of every request the tests make.
var ctx = context.Background()

// quiet discards the server's logs.
var quiet = slog.New(slog.DiscardHandler)

// startServer starts a server on dataDir with the given service config and
// admin password ("" keeps the stored one, or generates one).
func startServer(t testing.TB, dataDir string, cfg service.Config, adminPW string) *server.Server {
	t.Helper()
	srv, err := server.Start(ctx, server.Config{
		Listen:        "127.0.0.1:0",
		DataDir:       dataDir,
		Auth:          server.AuthBuiltin,
		AdminPassword: adminPW,
		Service:       cfg,
		Logger:        quiet,
	})
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	return srv
}

// user is one identity the tests act as.
type user struct {
	name      string
	password  string
	userID    string
	projectID string
	token     string
	// endpoint and resourceBase are the network service's, from the catalog.
	endpoint, resourceBase string
}

// env is a running server and the identities tests act as: the admin,
// members of projects A and B, and a reader of project A.
type env struct {
	srv                 *server.Server
	dataDir             string
	admin, a, b, reader *user
}

// newEnv starts a server on dataDir and creates the projects and users.
// Password hashing dominates the cost (bcrypt is slow under -race), so
// users are created concurrently and only the admin logs in with a
// password here; members get tokens from the identity service directly
// (TestMemberPasswordLogin covers their password login).
func newEnv(t testing.TB, dataDir string, cfg service.Config) *env {
	t.Helper()
	e := &env{srv: startServer(t, dataDir, cfg, adminPassword), dataDir: dataDir}
	pa, err := e.srv.Builtin.CreateProject(ctx, "project-a")
	if err != nil {
		t.Fatal(err)
	}
	pb, err := e.srv.Builtin.CreateProject(ctx, "project-b")
	if err != nil {
		t.Fatal(err)
	}
	e.a = &user{name: "alice", projectID: pa}
	e.b = &user{name: "bob", projectID: pb}
	e.reader = &user{name: "rita", projectID: pa}
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for _, u := range []struct {
		u    *user
		role string
	}{{e.a, "member"}, {e.b, "member"}, {e.reader, "reader"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.addUser(u.u, u.role)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		e.admin, err = e.loginErr(&user{name: "admin", password: adminPassword})
		errs <- err
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []*user{e.a, e.b, e.reader} {
		u.endpoint, u.resourceBase = e.admin.endpoint, e.admin.resourceBase
	}
	return e
}

// addUser creates u with role on its project and issues it a token.
func (e *env) addUser(u *user, role string) error {
	u.password = u.name + "-pw"
	id, err := e.srv.Builtin.CreateUser(ctx, u.name, u.password, u.projectID, role)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.name, err)
	}
	u.userID = id
	if u.token, err = e.srv.Builtin.IssueToken(ctx, id, u.projectID); err != nil {
		return fmt.Errorf("issue token to %s: %w", u.name, err)
	}
	return nil
}

func (e *env) loginErr(u *user) (*user, error) {
	opts := gophercloud.AuthOptions{
		IdentityEndpoint: e.srv.URL + "/identity/v3",
		Username:         u.name,
		Password:         u.password,
		DomainName:       "Default",
	}
	if u.name == "admin" {
		opts.TenantName = "admin"
	}
	pc, err := openstack.AuthenticatedClient(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("authenticate %s: %w", u.name, err)
	}
	sc, err := openstack.NewNetworkV2(pc, gophercloud.EndpointOpts{})
	if err != nil {
		return nil, fmt.Errorf("network endpoint for %s: %w", u.name, err)
	}
	u.token = pc.Token()
	u.endpoint, u.resourceBase = sc.Endpoint, sc.ResourceBase
	ar, ok := pc.GetAuthResult().(tokens.CreateResult)
	if !ok {
		return nil, fmt.Errorf("auth result of %s is %T", u.name, pc.GetAuthResult())
	}
	p, err := ar.ExtractProject()
	if err != nil || p == nil {
		return nil, fmt.Errorf("token of %s has no project: %v", u.name, err)
	}
	usr, err := ar.ExtractUser()
	if err != nil || usr == nil {
		return nil, fmt.Errorf("token of %s has no user: %v", u.name, err)
	}
	if u.projectID != "" && u.projectID != p.ID {
		return nil, fmt.Errorf("token of %s is scoped to %s, want %s", u.name, p.ID, u.projectID)
	}
	u.projectID, u.userID = p.ID, usr.ID
	return u, nil
}

// checker is a transport that fails t on any 500 answer and on any error
// answer of the Networking API that is not a NeutronError body.
type checker struct {
	t    testing.TB
	base http.RoundTripper
}

func (c *checker) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	checkResponse(c.t, req.Method, req.URL.String(), resp)
	return resp, nil
}

// checkResponse applies the invariants every response must hold.
func checkResponse(t testing.TB, method, url string, resp *http.Response) {
	// 503 is how Neutron reports exhausted segment pools (NoNetworkAvailable)
	// and is checked for its NeutronError body below; any other 5xx is a
	// server failure.
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("%s %s answered %d", method, url, resp.StatusCode)
	}
	if resp.StatusCode < 400 || resp.StatusCode == http.StatusUnauthorized || !strings.Contains(url, "/v2.0") && resp.StatusCode != http.StatusNotFound {
		return
	}
	if strings.Contains(url, "/identity/") {
		return
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(data))
	var b neutronBody
	if err := json.Unmarshal(data, &b); err != nil || b.NeutronError == nil || b.NeutronError.Type == "" || b.NeutronError.Message == "" {
		t.Errorf("%s %s answered %d without a NeutronError body: %s", method, url, resp.StatusCode, data)
	}
}

type neutronBody struct {
	NeutronError *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
		Detail  string `json:"detail"`
	} `json:"NeutronError"`
}

// net returns a gophercloud network client acting as u whose transport
// checks every response of the test t.
func (u *user) net(t testing.TB) *gophercloud.ServiceClient {
	pc := &gophercloud.ProviderClient{
		HTTPClient: http.Client{Transport: &checker{t: t, base: http.DefaultTransport}, Timeout: 30 * time.Second},
	}
	pc.SetToken(u.token)
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: u.endpoint, ResourceBase: u.resourceBase}
}

// apiError is a NeutronError as the server sent it.
type apiError struct {
	Status  int
	Type    string
	Message string
}

// neutronError extracts the status and NeutronError body of a failed
// gophercloud call; it fails the test if err is not an HTTP error answer
// with a NeutronError body.
func neutronError(t testing.TB, err error) apiError {
	t.Helper()
	if err == nil {
		t.Fatalf("request succeeded, want an error")
	}
	var ue gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T) is not an unexpected response code", err, err)
	}
	var b neutronBody
	if jerr := json.Unmarshal(ue.Body, &b); jerr != nil || b.NeutronError == nil {
		t.Fatalf("%d answer has no NeutronError body: %s", ue.Actual, ue.Body)
	}
	return apiError{Status: ue.Actual, Type: b.NeutronError.Type, Message: b.NeutronError.Message}
}

// wantError asserts that err is a NeutronError of the given status and type.
func wantError(t testing.TB, err error, status int, typ string) apiError {
	t.Helper()
	e := neutronError(t, err)
	if e.Status != status || e.Type != typ {
		t.Errorf("got %d %s (%s), want %d %s", e.Status, e.Type, e.Message, status, typ)
	}
	return e
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// network is a network with every extension the server implements.
type network struct {
	networks.Network
	provider.NetworkProviderExt
	external.NetworkExternalExt
	mtu.NetworkMTUExt
	portsecurity.PortSecurityExt
}

// port is a port with its extensions.
type port struct {
	ports.Port
	portsbinding.PortsBindingExt
	portsecurity.PortSecurityExt
}

// rawNet is a network create body given attribute by attribute.
type rawNet map[string]any

func (r rawNet) ToNetworkCreateMap() (map[string]any, error) {
	return map[string]any{"network": map[string]any(r)}, nil
}

// rawPort is a port create body given attribute by attribute.
type rawPort map[string]any

func (r rawPort) ToPortCreateMap() (map[string]any, error) {
	return map[string]any{"port": map[string]any(r)}, nil
}

// rawSubnet is a subnet create body given attribute by attribute.
type rawSubnet map[string]any

func (r rawSubnet) ToSubnetCreateMap() (map[string]any, error) {
	return map[string]any{"subnet": map[string]any(r)}, nil
}

// upd is an update body of any resource, given attribute by attribute
// (gophercloud's Update wants a struct).
type upd struct{ m map[string]any }

func update(m map[string]any) upd { return upd{m} }

func (u upd) ToNetworkUpdateMap() (map[string]any, error) { return map[string]any{"network": u.m}, nil }
func (u upd) ToSubnetUpdateMap() (map[string]any, error)  { return map[string]any{"subnet": u.m}, nil }
func (u upd) ToPortUpdateMap() (map[string]any, error)    { return map[string]any{"port": u.m}, nil }

// createNet creates a network from a raw body and returns it.
func createNet(t testing.TB, c *gophercloud.ServiceClient, body rawNet) network {
	t.Helper()
	var n network
	must(t, networks.Create(ctx, c, body).ExtractInto(&n))
	return n
}

// getNet reads a network.
func getNet(t testing.TB, c *gophercloud.ServiceClient, id string) network {
	t.Helper()
	var n network
	must(t, networks.Get(ctx, c, id).ExtractInto(&n))
	return n
}

// createSubnet creates an IPv4 subnet with default pools and gateway.
func createSubnet(t testing.TB, c *gophercloud.ServiceClient, netID, cidr string) *subnets.Subnet {
	t.Helper()
	sn, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: netID, CIDR: cidr, IPVersion: gophercloud.IPv4}).Extract()
	must(t, err)
	return sn
}

// createPort creates a port from a raw body and returns it.
func createPort(t testing.TB, c *gophercloud.ServiceClient, body rawPort) port {
	t.Helper()
	var p port
	must(t, ports.Create(ctx, c, body).ExtractInto(&p))
	return p
}

// netWithSubnet creates a network named name and an IPv4 subnet of cidr on it.
func netWithSubnet(t testing.TB, c *gophercloud.ServiceClient, name, cidr string) (network, *subnets.Subnet) {
	t.Helper()
	n := createNet(t, c, rawNet{"name": name})
	return n, createSubnet(t, c, n.ID, cidr)
}

// listPorts lists every port matching opts, following pages.
func listPorts(t testing.TB, c *gophercloud.ServiceClient, opts ports.ListOptsBuilder) []port {
	t.Helper()
	pages, err := ports.List(c, opts).AllPages(ctx)
	must(t, err)
	var out []port
	must(t, ports.ExtractPortsInto(pages, &out))
	return out
}

// listNets lists every network matching opts, following pages.
func listNets(t testing.TB, c *gophercloud.ServiceClient, opts networks.ListOptsBuilder) []network {
	t.Helper()
	pages, err := networks.List(c, opts).AllPages(ctx)
	must(t, err)
	var out []network
	must(t, networks.ExtractNetworksInto(pages, &out))
	return out
}

// rawResult is a raw HTTP answer.
type rawResult struct {
	status int
	body   []byte
}

// json decodes the answer as an object.
func (r rawResult) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %s", r.status, r.body)
	}
	return m
}

// neutron decodes the answer as a NeutronError.
func (r rawResult) neutron(t testing.TB) apiError {
	t.Helper()
	var b neutronBody
	if err := json.Unmarshal(r.body, &b); err != nil || b.NeutronError == nil {
		t.Fatalf("%d answer has no NeutronError body: %s", r.status, r.body)
	}
	return apiError{Status: r.status, Type: b.NeutronError.Type, Message: b.NeutronError.Message}
}

// rawDo sends one request with an optional token; t (when not nil) gets the
// response invariants checked.
func rawDo(t testing.TB, check testing.TB, token, method, url, body string, headers map[string]string) rawResult {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	must(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	if check != nil {
		checkResponse(check, method, url, resp)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	must(t, err)
	return rawResult{status: resp.StatusCode, body: data}
}

// raw sends a request to the server as u with a JSON body (may be empty).
func (e *env) raw(t testing.TB, u *user, method, path, body string) rawResult {
	t.Helper()
	tok := ""
	if u != nil {
		tok = u.token
	}
	return rawDo(t, t, tok, method, e.srv.URL+path, body, nil)
}

// wantRaw asserts a raw answer is a NeutronError of status and type.
func wantRaw(t testing.TB, r rawResult, status int, typ string) {
	t.Helper()
	if r.status != status {
		t.Errorf("got %d (%s), want %d %s", r.status, r.body, status, typ)
		return
	}
	if e := r.neutron(t); e.Type != typ {
		t.Errorf("got %d %s (%s), want %d %s", e.Status, e.Type, e.Message, status, typ)
	}
}

// jsonBody marshals v for a raw request.
func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return string(b)
}

// names gives each test its own object names, so parallel tests sharing a
// server never see each other's objects in filtered lists.
var (
	nameMu  sync.Mutex
	nameSeq int
)

// nextVNI returns a VNI no other test uses, above the default tenant range
// (1-65535) so that tenant networks created in parallel never take it.
func nextVNI() int {
	nameMu.Lock()
	defer nameMu.Unlock()
	nameSeq++
	return 70000 + nameSeq
}

func uniq(prefix string) string {
	nameMu.Lock()
	defer nameMu.Unlock()
	nameSeq++
	return fmt.Sprintf("%s-%d", prefix, nameSeq)
}

// shared is the server most tests share; TestMain starts and stops it.
var shared *env

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vland-apitest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tb := &mainTB{}
	func() {
		defer func() {
			if r := recover(); r != nil && r != errMainFatal {
				panic(r)
			}
		}()
		shared = newEnv(tb, dir, service.DefaultConfig())
	}()
	code := 1
	if !tb.failed {
		code = m.Run()
		shared.srv.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var errMainFatal = errors.New("setup failed")

// mainTB is the testing.TB TestMain sets the shared server up with.
type mainTB struct {
	testing.TB
	failed bool
}

func (m *mainTB) Helper() {}
func (m *mainTB) Errorf(format string, args ...any) {
	m.failed = true
	fmt.Fprintf(os.Stderr, "setup: "+format+"\n", args...)
}
func (m *mainTB) Fatalf(format string, args ...any) {
	m.Errorf(format, args...)
	panic(errMainFatal)
}
func (m *mainTB) Fatal(args ...any) { m.Fatalf("%s", fmt.Sprint(args...)) }
