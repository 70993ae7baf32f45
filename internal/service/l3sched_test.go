package service_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/service"
)

func heartbeat(t *testing.T, svc *service.Service, host string) {
	t.Helper()
	err := svc.ReportStatus(context.Background(), host, agentapi.Status{Agent: agentapi.AgentInfo{
		Binary: "vland-agent", LocalIP: netip.MustParseAddr("10.250.0.1"), Roles: []string{"compute", "network"},
		StartedAt: time.Now().UTC().Format(time.RFC3339)}})
	if err != nil {
		t.Fatal(err)
	}
}

func newRouter(t *testing.T, svc *service.Service, ctx context.Context, m map[string]any) *model.Router {
	t.Helper()
	rs, err := svc.CreateRouters(ctx, []model.Fields{decode(t, model.RouterSpec, m)})
	if err != nil {
		t.Fatal(err)
	}
	return rs[0]
}

func schedule(t *testing.T, svc *service.Service) {
	t.Helper()
	if err := svc.ScheduleL3(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestL3SchedulerBalancesAndLeavesDeadHosts: routers spread over the live
// network hosts, fewest routers first; when a host's agent dies its
// routers move to the live one; an admin's removal sticks; a router that
// is down or has no live agent to go to stays unplaced.
func TestL3SchedulerBalancesAndLeavesDeadHosts(t *testing.T) {
	cfg := service.DefaultConfig()
	cfg.AgentDownTime = 400 * time.Millisecond
	svc := newService(t, cfg)
	ctx := asProject("p1")
	admin := asProject("admin", policy.RoleAdmin, policy.RoleMember)

	lonely := newRouter(t, svc, ctx, map[string]any{"name": "before-agents"})
	schedule(t, svc)
	if h := svc.RouterHost(lonely.ID); h != "" {
		t.Fatalf("router placed on %q with no L3 agent", h)
	}

	heartbeat(t, svc, "net1")
	heartbeat(t, svc, "net2")
	var rs []*model.Router
	for range 3 {
		rs = append(rs, newRouter(t, svc, ctx, map[string]any{"name": "r"}))
	}
	down := newRouter(t, svc, ctx, map[string]any{"name": "down", "admin_state_up": false})
	schedule(t, svc)
	n1, n2 := len(svc.RoutersOnHost("net1")), len(svc.RoutersOnHost("net2"))
	if n1+n2 != 4 || n1 != 2 || n2 != 2 {
		t.Fatalf("placement: net1 %v, net2 %v", svc.RoutersOnHost("net1"), svc.RoutersOnHost("net2"))
	}
	if h := svc.RouterHost(down.ID); h != "" {
		t.Errorf("down router placed on %s", h)
	}

	// net1 stops reporting; net2 goes on.
	deadline := time.Now().Add(10 * time.Second)
	for len(svc.RoutersOnHost("net1")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("routers still on dead net1: %v", svc.RoutersOnHost("net1"))
		}
		heartbeat(t, svc, "net2")
		schedule(t, svc)
		time.Sleep(50 * time.Millisecond)
	}
	if got := svc.RoutersOnHost("net2"); len(got) != 4 {
		t.Fatalf("routers on net2 after net1 died: %v", got)
	}
	for _, r := range append(rs, lonely) {
		if h := svc.RouterHost(r.ID); h != "net2" {
			t.Errorf("router %s on %q, want net2", r.ID, h)
		}
	}

	// An admin takes a router off its agent: it stays off.
	agentID := service.AgentID("net2", model.AgentTypeL3)
	if err := svc.RemoveL3Router(admin, agentID, rs[0].ID); err != nil {
		t.Fatal(err)
	}
	heartbeat(t, svc, "net2")
	schedule(t, svc)
	if h := svc.RouterHost(rs[0].ID); h != "" {
		t.Errorf("router placed again after an admin removed it: %s", h)
	}
	if err := svc.AddL3Router(ctx, agentID, rs[0].ID); err == nil {
		t.Error("a member placed a router")
	}
	if err := svc.AddL3Router(admin, agentID, rs[0].ID); err != nil {
		t.Fatal(err)
	}
	if h := svc.RouterHost(rs[0].ID); h != "net2" {
		t.Errorf("router after adding by hand on %q", h)
	}
	err := svc.AddL3Router(admin, service.AgentID("net1", model.AgentTypeL3), rs[0].ID)
	if e, ok := apierr.As(err); !ok || e.Type != "InvalidL3Agent" {
		t.Errorf("adding to a dead agent: %v", err)
	}
}
