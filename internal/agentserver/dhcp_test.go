package agentserver_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vland/vland/internal/agentapi"
)

// heartbeatLoop reports host alive until ctx ends.
func (e *env) heartbeatLoop(ctx context.Context, host, tok, ip string) {
	go func() {
		for ctx.Err() == nil {
			st := agentapi.Status{Agent: agentapi.AgentInfo{Binary: "vland-agent", LocalIP: netip.MustParseAddr(ip),
				Roles: []string{"compute", "network"}, StartedAt: time.Now().UTC().Format(time.RFC3339)}}
			e.do("PUT", "/agent/v1/hosts/"+host+"/status", "Authorization", "Bearer "+tok, st)
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
}

// dhcpHost waits until the network's DHCP agents are exactly one and
// returns its host, failing after a deadline.
func (e *env) dhcpHost(netID, not string) string {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		var out struct {
			Agents []map[string]any `json:"agents"`
		}
		e.api("GET", "/v2.0/networks/"+netID+"/dhcp-agents", nil, &out)
		if len(out.Agents) == 1 && out.Agents[0]["host"] != not {
			return out.Agents[0]["host"].(string)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.t.Fatalf("network %s not served by one DHCP agent (other than %q) in time", netID, not)
	return ""
}

// TestDHCPIsScheduledAndFailsOver: a network with a DHCP-enabled subnet gets
// a DHCP port on a live network host; when that host's agent dies the port
// moves to the other network host; an admin can unschedule and reschedule.
func TestDHCPIsScheduledAndFailsOver(t *testing.T) {
	e := start(t)
	ctx1, stop1 := context.WithCancel(context.Background())
	ctx2, stop2 := context.WithCancel(context.Background())
	t.Cleanup(stop1)
	t.Cleanup(stop2)
	e.heartbeatLoop(ctx1, "network1", e.agentToken("network1"), "10.250.0.101")
	e.heartbeatLoop(ctx2, "network2", e.agentToken("network2"), "10.250.0.102")

	var net struct{ Network struct{ ID string } }
	e.api("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "d"}}, &net)
	var sub struct{ Subnet struct{ ID string } }
	e.api("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net.Network.ID, "cidr": "10.5.0.0/24", "ip_version": 4}}, &sub)

	first := e.dhcpHost(net.Network.ID, "")
	var ports struct {
		Ports []map[string]any `json:"ports"`
	}
	e.api("GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+net.Network.ID, nil, &ports)
	if len(ports.Ports) != 1 || ports.Ports[0]["binding:host_id"] != first || len(ports.Ports[0]["fixed_ips"].([]any)) != 1 {
		t.Fatalf("DHCP port: %+v", ports.Ports)
	}

	// The serving host dies: the network moves to the other one.
	if first == "network1" {
		stop1()
	} else {
		stop2()
	}
	second := e.dhcpHost(net.Network.ID, first)
	if second == first {
		t.Fatalf("DHCP stayed on dead host %s", first)
	}

	// Manual unscheduling and scheduling through the agent scheduler API.
	var agents struct {
		Agents []map[string]any `json:"agents"`
	}
	e.api("GET", "/v2.0/agents?agent_type=DHCP+agent&host="+second, nil, &agents)
	if len(agents.Agents) != 1 {
		t.Fatalf("DHCP agent record of %s: %+v", second, agents)
	}
	id := agents.Agents[0]["id"].(string)
	var hosted struct {
		Networks []map[string]any `json:"networks"`
	}
	e.api("GET", "/v2.0/agents/"+id+"/dhcp-networks", nil, &hosted)
	if len(hosted.Networks) != 1 || hosted.Networks[0]["id"] != net.Network.ID {
		t.Fatalf("dhcp-networks of %s: %+v", second, hosted)
	}
	if code := e.api("POST", "/v2.0/agents/"+id+"/dhcp-networks", map[string]any{"network_id": net.Network.ID}, nil); code != 409 {
		t.Fatalf("scheduling a network twice on one agent: %d, want 409", code)
	}
	if code := e.api("DELETE", fmt.Sprintf("/v2.0/agents/%s/dhcp-networks/%s", id, net.Network.ID), nil, nil); code != 204 {
		t.Fatalf("unschedule: %d", code)
	}
}

// TestAvailabilityZonesSteerDHCP: agents report zones; the zones are listed;
// a network hinted to one zone is served there and shows that zone; an
// unknown hint is refused.
func TestAvailabilityZonesSteerDHCP(t *testing.T) {
	e := start(t)
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	for host, az := range map[string]string{"net-a": "az-a", "net-b": "az-b"} {
		tok := e.agentToken(host)
		go func() {
			for ctx.Err() == nil {
				st := agentapi.Status{Agent: agentapi.AgentInfo{Binary: "vland-agent", LocalIP: netip.MustParseAddr("10.250.1.1"),
					Roles: []string{"network"}, AvailabilityZone: az, StartedAt: time.Now().UTC().Format(time.RFC3339)}}
				e.do("PUT", "/agent/v1/hosts/"+host+"/status", "Authorization", "Bearer "+tok, st)
				select {
				case <-ctx.Done():
				case <-time.After(300 * time.Millisecond):
				}
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var zones struct {
			Zones []map[string]any `json:"availability_zones"`
		}
		e.api("GET", "/v2.0/availability_zones?state=available", nil, &zones)
		if len(zones.Zones) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("zones: %+v", zones)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := e.api("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"availability_zone_hints": []string{"nowhere"}}}, nil); code != 404 {
		t.Fatalf("unknown zone hint: %d, want 404", code)
	}
	var net struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	e.api("POST", "/v2.0/networks", map[string]any{"network": map[string]any{"availability_zone_hints": []string{"az-b"}}}, &net)
	e.api("POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net.Network.ID, "cidr": "10.6.0.0/24", "ip_version": 4}}, nil)
	if host := e.dhcpHost(net.Network.ID, ""); host != "net-b" {
		t.Fatalf("network hinted to az-b served by %s", host)
	}
	var got struct {
		Network map[string]any `json:"network"`
	}
	e.api("GET", "/v2.0/networks/"+net.Network.ID, nil, &got)
	if zones, _ := got.Network["availability_zones"].([]any); len(zones) != 1 || zones[0] != "az-b" {
		t.Fatalf("availability_zones: %v", got.Network["availability_zones"])
	}
}

// TestExtendedBindingsMigrateAPort: a port bound to compute1 gets an
// inactive binding to compute2, which activation makes the port's binding.
func TestExtendedBindingsMigrateAPort(t *testing.T) {
	e := start(t)
	e.report("compute1", e.agentToken("compute1"), "10.250.0.1", nil)
	e.report("compute2", e.agentToken("compute2"), "10.250.0.2", nil)
	var net struct{ Network struct{ ID string } }
	e.api("POST", "/v2.0/networks", map[string]any{"network": map[string]any{}}, &net)
	var p struct{ Port map[string]any }
	e.api("POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net.Network.ID, "binding:host_id": "compute1"}}, &p)
	id := p.Port["id"].(string)
	var b struct{ Binding map[string]any }
	if code := e.api("POST", "/v2.0/ports/"+id+"/bindings", map[string]any{"binding": map[string]any{"host": "compute2"}}, &b); code != 201 {
		t.Fatalf("create binding: %d", code)
	}
	if b.Binding["status"] != "INACTIVE" || b.Binding["vif_type"] != "bridge" {
		t.Fatalf("new binding: %+v", b.Binding)
	}
	if code := e.api("POST", "/v2.0/ports/"+id+"/bindings", map[string]any{"binding": map[string]any{"host": "compute2"}}, nil); code != 409 {
		t.Fatalf("duplicate binding: %d, want 409", code)
	}
	if code := e.api("PUT", "/v2.0/ports/"+id+"/bindings/compute2/activate", nil, &b); code != 200 || b.Binding["status"] != "ACTIVE" {
		t.Fatalf("activate: %d %+v", code, b.Binding)
	}
	e.api("GET", "/v2.0/ports/"+id, nil, &p)
	if p.Port["binding:host_id"] != "compute2" {
		t.Fatalf("port host after activation: %v", p.Port["binding:host_id"])
	}
	var list struct{ Bindings []map[string]any }
	e.api("GET", "/v2.0/ports/"+id+"/bindings", nil, &list)
	if len(list.Bindings) != 2 || list.Bindings[1]["host"] != "compute1" || list.Bindings[1]["status"] != "INACTIVE" {
		t.Fatalf("bindings: %+v", list.Bindings)
	}
	if code := e.api("DELETE", "/v2.0/ports/"+id+"/bindings/compute1", nil, nil); code != 204 {
		t.Fatalf("delete inactive binding: %d", code)
	}
	if code := e.api("DELETE", "/v2.0/ports/"+id+"/bindings/compute9", nil, nil); code != 404 {
		t.Fatalf("delete missing binding: %d, want 404", code)
	}
}
