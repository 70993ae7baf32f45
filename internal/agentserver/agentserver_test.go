package agentserver_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/server"
	"github.com/vland/vland/internal/service"
)

type env struct {
	t     *testing.T
	srv   *server.Server
	admin string // admin Keystone token
}

func start(t *testing.T) *env {
	t.Helper()
	cfg := service.DefaultConfig()
	cfg.AgentDownTime = 2 * time.Second
	srv, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DataDir: t.TempDir(), Auth: server.AuthBuiltin, AdminPassword: "pw", Service: cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{t: t, srv: srv}
	e.admin = e.tokenFor("admin", "pw", "admin")
	return e
}

func (e *env) tokenFor(user, pass, project string) string {
	body := fmt.Sprintf(`{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":%q,"domain":{"id":"default"},"password":%q}}},"scope":{"project":{"name":%q,"domain":{"id":"default"}}}}}`, user, pass, project)
	resp, err := http.Post(e.srv.URL+"/identity/v3/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		e.t.Fatalf("token for %s: %d", user, resp.StatusCode)
	}
	return resp.Header.Get("X-Subject-Token")
}

// do sends a request with a header "X-Auth-Token" or "Authorization".
func (e *env) do(method, path, hdr, val string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set(hdr, val)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *env) api(method, path string, body any, out any) int {
	e.t.Helper()
	code, b := e.do(method, path, "X-Auth-Token", e.admin, body)
	if out != nil && code < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return code
}

func (e *env) agentToken(host string) string {
	var out struct{ Token string }
	code, b := e.do("GET", "/agent/v1/hosts/"+host+"/token", "X-Auth-Token", e.admin, nil)
	if code != 200 || json.Unmarshal(b, &out) != nil {
		e.t.Fatalf("agent token: %d %s", code, b)
	}
	return out.Token
}

func (e *env) report(host, tok string, ip string, ports map[string]string) {
	e.t.Helper()
	st := agentapi.Status{Agent: agentapi.AgentInfo{Binary: "vland-agent", LocalIP: netip.MustParseAddr(ip), Roles: []string{"compute"},
		StartedAt: time.Now().UTC().Format(time.RFC3339)}, Ports: ports}
	if code, b := e.do("PUT", "/agent/v1/hosts/"+host+"/status", "Authorization", "Bearer "+tok, st); code != 204 {
		e.t.Fatalf("status: %d %s", code, b)
	}
}

func TestAgentTokensAreBoundToTheirHost(t *testing.T) {
	e := start(t)
	tok := e.agentToken("compute1")
	if code, _ := e.do("GET", "/agent/v1/hosts/compute1/view", "Authorization", "Bearer "+tok, nil); code != 200 {
		t.Fatalf("own view: %d", code)
	}
	if code, _ := e.do("GET", "/agent/v1/hosts/compute2/view", "Authorization", "Bearer "+tok, nil); code != 401 {
		t.Fatalf("another host's view with compute1's token: %d, want 401", code)
	}
	if code, _ := e.do("PUT", "/agent/v1/hosts/compute2/status", "Authorization", "Bearer "+tok, map[string]any{}); code != 401 {
		t.Fatalf("another host's status: %d, want 401", code)
	}
	if code, _ := e.do("GET", "/agent/v1/hosts/compute1/token", "X-Auth-Token", "bogus", nil); code != 401 {
		t.Fatalf("token without auth: %d", code)
	}
}

// TestBindingViewWatchAndStatus follows a port from binding to ACTIVE: the
// server binds it to a host with a live agent, the host's view and watch
// carry it (and the remote port with its VTEP), and the agent's report
// makes it ACTIVE; the agent shows in /v2.0/agents and dies without heartbeats.
func TestBindingViewWatchAndStatus(t *testing.T) {
	e := start(t)
	tok1, tok2 := e.agentToken("compute1"), e.agentToken("compute2")
	e.report("compute1", tok1, "10.250.0.1", nil)
	e.report("compute2", tok2, "10.250.0.2", nil)

	var net struct{ Network struct{ ID string } }
	e.api("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}}, &net)
	e.api("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net.Network.ID, "cidr": "10.0.0.0/24", "ip_version": 4}}, nil)
	type port struct {
		ID         string         `json:"id"`
		Status     string         `json:"status"`
		VIFType    string         `json:"binding:vif_type"`
		VIFDetails map[string]any `json:"binding:vif_details"`
	}
	var p1, p2, p3 struct{ Port port }
	e.api("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net.Network.ID, "binding:host_id": "compute1"}}, &p1)
	e.api("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net.Network.ID, "binding:host_id": "compute2"}}, &p2)
	e.api("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net.Network.ID, "binding:host_id": "nohost"}}, &p3)
	if p1.Port.VIFType != "bridge" || p1.Port.VIFDetails["bridge_name"] != "brq"+net.Network.ID[:11] || p1.Port.VIFDetails["tap_name"] != "tap"+p1.Port.ID[:11] {
		t.Fatalf("binding on a live agent's host: %+v", p1.Port)
	}
	if p3.Port.VIFType != "binding_failed" {
		t.Fatalf("binding on a host without agent: %q", p3.Port.VIFType)
	}

	var view agentapi.View
	code, b := e.do("GET", "/agent/v1/hosts/compute1/view", "Authorization", "Bearer "+tok1, nil)
	if code != 200 || json.Unmarshal(b, &view) != nil {
		t.Fatalf("view: %d %s", code, b)
	}
	if len(view.Networks) != 1 || len(view.Ports) != 2 {
		t.Fatalf("compute1 view: %+v", view)
	}
	for _, p := range view.Ports {
		if p.ID == p2.Port.ID && (p.Local || p.VTEP != netip.MustParseAddr("10.250.0.2")) {
			t.Fatalf("remote port in view: %+v", p)
		}
		if p.ID == p1.Port.ID && !p.Local {
			t.Fatalf("local port not local: %+v", p)
		}
	}

	// Watch from the listed revision: a new port on compute2 arrives as a put.
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/agent/v1/hosts/compute1/view?watch=1&since=%d", e.srv.URL, view.Revision), nil)
	req.Header.Set("Authorization", "Bearer "+tok1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("watch: %v %v", err, resp)
	}
	defer resp.Body.Close()
	var p4 struct{ Port port }
	e.api("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net.Network.ID, "binding:host_id": "compute2"}}, &p4)
	sc := bufio.NewScanner(resp.Body)
	found := false
	for !found && sc.Scan() {
		var ev agentapi.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		found = ev.Type == agentapi.EventPut && ev.Kind == agentapi.KindPort && ev.ID == p4.Port.ID
	}
	if !found {
		t.Fatalf("watch ended without the new port: %v", sc.Err())
	}

	// A revision from before this server's log answers 410.
	if code, _ := e.do("GET", "/agent/v1/hosts/compute1/view?watch=1&since=1", "Authorization", "Bearer "+tok1, nil); code != 410 {
		t.Fatalf("watch from a compacted revision: %d, want 410", code)
	}

	e.report("compute1", tok1, "10.250.0.1", map[string]string{p1.Port.ID: "ACTIVE"})
	var got struct{ Port port }
	e.api("GET", "/v2.0/ports/"+p1.Port.ID, nil, &got)
	if got.Port.Status != "ACTIVE" {
		t.Fatalf("port after its tap is wired: %s", got.Port.Status)
	}

	var agents struct {
		Agents []map[string]any `json:"agents"`
	}
	e.api("GET", "/v2.0/agents?host=compute1", nil, &agents)
	if len(agents.Agents) != 1 || agents.Agents[0]["alive"] != true || agents.Agents[0]["agent_type"] != "Linux bridge agent" {
		t.Fatalf("agents: %+v", agents)
	}
	id := agents.Agents[0]["id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var one struct{ Agent map[string]any }
		e.api("GET", "/v2.0/agents/"+id, nil, &one)
		if one.Agent["alive"] == false {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agent still alive long after its heartbeats stopped")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code := e.api("DELETE", "/v2.0/agents/"+id, nil, nil); code != 204 {
		t.Fatalf("delete dead agent: %d", code)
	}
}
