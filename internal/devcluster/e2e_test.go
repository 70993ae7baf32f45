package devcluster

import (
	"context"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vland/vland/internal/dataplane/l2"
)

// Generous deadlines: the figures belong to the benchmarks, not here.
const (
	reachTimeout = 15 * time.Second
	cutTimeout   = 15 * time.Second
)

// TestE2EPingAcrossHosts: two VMs of one network on different hosts ping
// each other over VXLAN, and ARP resolves to the peer's port MAC.
func TestE2EPingAcrossHosts(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "ping", Options{})
	ctx := testContext(t)
	cloud := c.Name() + "-demo"
	newNetwork(t, c, cloud, "net1", "10.1.0.0/24")
	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "net1", Host: "compute2"})
	for _, p := range [][2]VM{{a, b}, {b, a}} {
		if err := c.WaitPing(ctx, p[0].Name, p[1].IP, reachTimeout); err != nil {
			t.Fatal(err)
		}
		mac, err := c.Neighbor(p[0].Name, p[1].IP)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(mac.String(), p[1].MAC) {
			t.Errorf("%s resolved %s to %s, want %s's port MAC %s", p[0].Name, p[1].IP, mac, p[1].Name, p[1].MAC)
		}
	}
	links := hostLinks(t, c, "compute1")
	tap, ok := links[l2.TapName(a.PortID)]
	if !ok {
		t.Fatalf("no tap for port %s on compute1", a.PortID)
	}
	if br := links[l2.BridgeName(a.NetworkID)]; tap.MasterIndex == 0 || tap.MasterIndex != br.Index {
		t.Errorf("tap %s has master %d, want bridge %s (%d)", tap.Name, tap.MasterIndex, br.Name, br.Index)
	}
	if _, err := exec.LookPath("busybox"); err == nil {
		out, err := c.Exec(a.Name, "busybox", "ping", "-c", "1", "-W", "2", b.IP)
		if err != nil {
			t.Errorf("Exec busybox ping from a to b: %v\n%s", err, out)
		}
	}
}

// TestE2EProjectIsolation: two projects with the same CIDR and the same
// addresses; each VM reaches its own project's peer, and no packet of one
// project is delivered to a VM of the other (the demo's matrix, which
// watches inside the targets and identifies answers by MAC).
func TestE2EProjectIsolation(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "isolation", Options{})
	m, err := c.Demo(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, v := range m.VMs {
			_ = c.DeleteVM(context.Background(), v.Name)
		}
	})
	var b strings.Builder
	m.Print(&b)
	t.Logf("matrix:\n%s", b.String())
	ips := map[string]map[string]bool{} // ip -> clouds holding it
	for _, v := range m.VMs {
		if ips[v.IP] == nil {
			ips[v.IP] = map[string]bool{}
		}
		ips[v.IP][v.Cloud] = true
	}
	for ip, clouds := range ips {
		if len(clouds) != 2 {
			t.Errorf("address %s is held in %d projects; the scenario wants identical addresses in both", ip, len(clouds))
		}
	}
	if len(m.Pairs) != 12 {
		t.Fatalf("%d pairs, want 12", len(m.Pairs))
	}
	for _, p := range m.Pairs {
		if !p.OK {
			t.Errorf("%s -> %s (%s): expected %s, got %s", p.From, p.To, p.ToIP, p.Expected, p.Actual)
		}
		if !p.SameProject && p.Delivered {
			t.Errorf("%s's ping was delivered to %s of another project", p.From, p.To)
		}
		if !p.SameProject && p.Replied && p.AnsweredBy != p.From && !strings.HasPrefix(p.AnsweredBy, strings.SplitN(p.From, "-", 2)[0]) {
			t.Errorf("%s's ping to %s was answered by %s, not a VM of its own project", p.From, p.ToIP, p.AnsweredBy)
		}
	}
	if !m.OK {
		t.Error("matrix not OK")
	}
}

// TestE2EPortDeleteDetaches: a port deleted through the API loses
// connectivity and its tap is detached from the bridge.
func TestE2EPortDeleteDetaches(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "portdel", Options{})
	ctx := testContext(t)
	newNetwork(t, c, c.Name()+"-demo", "net1", "10.2.0.0/24")
	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "net1", Host: "compute2"})
	if err := c.WaitPing(ctx, a.Name, b.IP, reachTimeout); err != nil {
		t.Fatal(err)
	}
	if err := c.Admin().Do(ctx, http.MethodDelete, "/v2.0/ports/"+b.PortID, nil, nil); err != nil {
		t.Fatal(err)
	}
	tap := l2.TapName(b.PortID)
	eventually(t, cutTimeout, "tap "+tap+" detached on compute2", func() (bool, error) {
		l, ok := hostLinks(t, c, "compute2")[tap]
		if !ok {
			return false, permanent{fmt.Errorf("tap %s vanished: the VM still holds its peer", tap)}
		}
		return l.MasterIndex == 0, nil
	})
	eventually(t, cutTimeout, "ping a -> b failing", func() (bool, error) {
		ok, err := c.Ping(a.Name, b.IP, 300*time.Millisecond)
		return !ok, err
	})
	for i := range 3 {
		if ok, _ := c.Ping(a.Name, b.IP, 500*time.Millisecond); ok {
			t.Fatalf("ping %d from a reached b after its port was deleted", i)
		}
	}
}

// TestE2EAgentRestartKeepsTraffic: kill -9 of an agent and its restart do
// not disturb a ping running across them, and the host's links keep their
// ifindexes (nothing is recreated). A VM created after the restart proves
// the new agent has reconciled the whole host before the links are compared.
func TestE2EAgentRestartKeepsTraffic(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "restart", Options{})
	ctx := testContext(t)
	newNetwork(t, c, c.Name()+"-demo", "net1", "10.3.0.0/24")
	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "net1", Host: "compute2"})
	if err := c.WaitPing(ctx, b.Name, a.IP, reachTimeout); err != nil {
		t.Fatal(err)
	}
	before := ownedLinks(hostLinks(t, c, "compute1"))
	if len(before) != 3 {
		t.Fatalf("compute1 has links %v, want a bridge, a vxlan device and a tap", before)
	}
	run, err := c.StartPing(b.Name, a.IP, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Stop()
	waitReplies(t, run, 5)
	if err := c.RestartAgent(ctx, "compute1"); err != nil {
		t.Fatal(err)
	}
	newVM(t, c, VMOptions{Name: "c", Network: "net1", Host: "compute1"})
	waitReplies(t, run, run.Received()+10)
	st := run.Stop()
	t.Logf("ping across the agent restart: %d sent, %d received, %d lost", st.Sent, st.Received, st.Lost)
	if st.Lost > 2 {
		t.Errorf("%d of %d pings lost across the agent restart; at most 2 allowed", st.Lost, st.Sent)
	}
	after := hostLinks(t, c, "compute1")
	for name, idx := range before {
		if l, ok := after[name]; !ok || l.Index != idx {
			t.Errorf("link %s was recreated by the restarted agent (ifindex %d, now %d, present %v)", name, idx, l.Index, ok)
		}
	}
}

// ownedLinks picks the agent's links (brq*, vxlan-*, tap*) with their ifindexes.
func ownedLinks(links map[string]netlink.LinkAttrs) map[string]int {
	m := map[string]int{}
	for name, l := range links {
		if strings.HasPrefix(name, l2.BridgePrefix) || strings.HasPrefix(name, l2.VXLANPrefix) || strings.HasPrefix(name, l2.TapPrefix) {
			m[name] = l.Index
		}
	}
	return m
}

func waitReplies(t *testing.T, run *PingRun, n int) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("%d ping replies", n), func() (bool, error) {
		return run.Received() >= n, nil
	})
}

// TestE2ELastPortRemovesBridge: a network whose last local port goes away
// leaves no bridge or vxlan device on that host, while a host that still
// has a port keeps them.
func TestE2ELastPortRemovesBridge(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "lastport", Options{})
	ctx := testContext(t)
	netID, vni := newNetwork(t, c, c.Name()+"-demo", "net1", "10.4.0.0/24")
	br, vx := l2.BridgeName(netID), l2.VXLANName(vni)
	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "net1", Host: "compute2"})
	if err := c.WaitPing(ctx, a.Name, b.IP, reachTimeout); err != nil {
		t.Fatal(err)
	}
	has := func(host string) (bool, bool) {
		links := hostLinks(t, c, host)
		_, hb := links[br]
		_, hv := links[vx]
		return hb, hv
	}
	if hb, hv := has("compute1"); !hb || !hv {
		t.Fatalf("compute1 lacks %s (%v) or %s (%v) while it has a port", br, hb, vx, hv)
	}
	if err := c.DeleteVM(ctx, a.Name); err != nil {
		t.Fatal(err)
	}
	eventually(t, cutTimeout, "compute1 without "+br+" and "+vx, func() (bool, error) {
		hb, hv := has("compute1")
		return !hb && !hv, nil
	})
	if hb, hv := has("compute2"); !hb || !hv {
		t.Errorf("compute2 lost %s (%v) or %s (%v) though its port remains", br, hb, vx, hv)
	}
	if err := c.DeleteVM(ctx, b.Name); err != nil {
		t.Fatal(err)
	}
	eventually(t, cutTimeout, "compute2 without "+br+" and "+vx, func() (bool, error) {
		hb, hv := has("compute2")
		return !hb && !hv, nil
	})
}

// TestE2ETwoClusters: two clusters up at once, with the same tenant
// addresses, work side by side; taking one down leaves the other intact.
func TestE2ETwoClusters(t *testing.T) {
	t.Parallel()
	cs := [2]*Cluster{upCluster(t, "two0", Options{}), upCluster(t, "two1", Options{})}
	if cs[0].Prefix() == cs[1].Prefix() {
		t.Fatalf("both clusters have prefix %s", cs[0].Prefix())
	}
	ctx := testContext(t)
	var vms [2][2]VM
	for i, c := range cs {
		newNetwork(t, c, c.Name()+"-demo", "net1", "10.0.0.0/24")
		for j := range 2 {
			o := VMOptions{Name: fmt.Sprintf("vm%d", j), Network: "net1", Host: fmt.Sprintf("compute%d", j+1), IP: fmt.Sprintf("10.0.0.%d", 11+j)}
			vms[i][j] = newVM(t, c, o)
		}
	}
	for i, c := range cs {
		if err := c.WaitPing(ctx, vms[i][0].Name, vms[i][1].IP, reachTimeout); err != nil {
			t.Fatalf("cluster %d: %v", i, err)
		}
		mac, _ := c.Neighbor(vms[i][0].Name, vms[i][1].IP)
		if !strings.EqualFold(mac.String(), vms[i][1].MAC) {
			t.Errorf("cluster %d: %s answered by %s, want %s", i, vms[i][1].IP, mac, vms[i][1].MAC)
		}
	}
	first := cs[0].State()
	if err := cs[0].Down(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, first.Name, first.Dir)
	second := cs[1].State()
	for _, ns := range []string{fabricNS(second.Prefix), vms[1][0].Namespace, second.Hosts[0].Namespace} {
		if !namedns.Exists(ns) {
			t.Errorf("namespace %s of the other cluster vanished", ns)
		}
	}
	if err := cs[1].WaitPing(ctx, vms[1][0].Name, vms[1][1].IP, reachTimeout); err != nil {
		t.Errorf("the cluster still up lost connectivity when the other went down: %v", err)
	}
}

// TestE2EDownRemovesEverything: Down removes processes, namespaces, links
// and files even when state.json is cut short, and is idempotent.
func TestE2EDownRemovesEverything(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "down", Options{})
	ctx := testContext(t)
	newNetwork(t, c, c.Name()+"-demo", "net1", "10.5.0.0/24")
	if _, err := c.CreateVM(ctx, VMOptions{Name: "a", Network: "net1"}); err != nil {
		t.Fatal(err)
	}
	st := c.State()
	if n, _ := namedns.WithPrefix(st.Prefix + "-"); len(n) != 4 {
		t.Errorf("namespaces %v, want fabric, two hosts and a VM", n)
	}
	path := filepath.Join(st.Dir, stateFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:len(b)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Down(st.Name, st.Dir, testLogger(t)); err != nil {
		t.Fatalf("Down with a partial state: %v", err)
	}
	assertGone(t, st.Name, st.Dir)
	for _, p := range append([]Proc{st.Server}, agentProcs(st)...) {
		if p.Running() {
			t.Errorf("process %d still runs", p.PID)
		}
	}
	if err := Down(st.Name, st.Dir, nil); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

func agentProcs(st State) []Proc {
	var ps []Proc
	for _, h := range st.Hosts {
		ps = append(ps, h.Agent)
	}
	return ps
}

// TestE2EHostDownUp: a host taken down is cut off and its agent reported
// dead; brought back, its VMs are reachable again.
func TestE2EHostDownUp(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "hostdown", Options{})
	ctx := testContext(t)
	newNetwork(t, c, c.Name()+"-demo", "net1", "10.6.0.0/24")
	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "net1", Host: "compute2"})
	if err := c.WaitPing(ctx, a.Name, b.IP, reachTimeout); err != nil {
		t.Fatal(err)
	}
	if err := c.HostDown(ctx, "compute2"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Ping(a.Name, b.IP, time.Second); ok {
		t.Error("a VM on a host that is down still answers")
	}
	eventually(t, 30*time.Second, "compute2's agent reported dead", func() (bool, error) {
		s, err := c.Status(ctx)
		if err != nil {
			return false, err
		}
		for _, h := range s.Hosts {
			if h.Name == "compute2" {
				return h.Down && !h.AgentRunning && !h.Alive, nil
			}
		}
		return false, permanent{fmt.Errorf("no compute2 in status")}
	})
	if err := c.HostUp(ctx, "compute2"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitPing(ctx, a.Name, b.IP, 30*time.Second); err != nil {
		t.Fatalf("after host up: %v", err)
	}
}

// TestE2EUpFailureCleansUp: when the server does not start, Up fails with
// the server's words and leaves nothing behind.
func TestE2EUpFailureCleansUp(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "vland")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'cannot start: simulated failure' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := newName("upfail")
	dir := filepath.Join(e2eRoot, name)
	t.Cleanup(func() { _ = Down(name, dir, nil) })
	_, err := Up(testContext(t), Options{Name: name, Dir: dir, Binary: bin, NetworkHosts: -1, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "simulated failure") {
		t.Fatalf("Up with a failing server: %v, want the server's own error", err)
	}
	assertGone(t, name, dir)
}
