package devcluster

import (
	"context"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// dhcpPortWaitInTest is how long the test gives the server's DHCP scheduler
// to create the network's DHCP port before making one itself.
const dhcpPortWaitInTest = 5 * time.Second

// TestE2EVMGetsItsAddressByDHCP: on a network with DHCP, VMs on two compute
// hosts get exactly their ports' addresses, the gateway as default route,
// the subnet's host route and the network's MTU from the DHCP service of
// the network host (across VXLAN), and reach each other with them.
func TestE2EVMGetsItsAddressByDHCP(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "dhcp", Options{NetworkHosts: 1})
	ctx := testContext(t)
	cloud := c.Name() + "-demo"
	netID, _ := newNetwork(t, c, cloud, "net1", "10.7.0.0/24")
	cl, err := c.Client(cloud)
	if err != nil {
		t.Fatal(err)
	}
	var subnets struct {
		Subnets []struct {
			ID        string `json:"id"`
			GatewayIP string `json:"gateway_ip"`
			ProjectID string `json:"project_id"`
		} `json:"subnets"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/subnets?network_id="+netID, nil, &subnets); err != nil || len(subnets.Subnets) != 1 {
		t.Fatalf("subnets of net1: %v %+v", err, subnets)
	}
	sn := subnets.Subnets[0]
	routes := map[string]any{"subnet": map[string]any{"host_routes": []map[string]string{{"destination": "172.31.0.0/16", "nexthop": "10.7.0.254"}}}}
	if err := cl.Do(ctx, http.MethodPut, "/v2.0/subnets/"+sn.ID, routes, nil); err != nil {
		t.Fatal(err)
	}

	dhcpPort := ensureDHCPPort(t, c, netID, sn.ID, sn.ProjectID)
	if err := c.waitPortStatus(ctx, dhcpPort, "ACTIVE", 30*time.Second); err != nil {
		t.Fatalf("DHCP port: %v", err)
	}

	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "net1", Host: "compute2"})
	for _, vm := range []VM{a, b} {
		if !vm.DHCP || !vm.DHCPClient.Running() {
			t.Fatalf("VM %s: DHCP %v, client running %v", vm.Name, vm.DHCP, vm.DHCPClient.Running())
		}
		checkDHCPVM(t, vm, sn.GatewayIP)
		l, err := c.VMLease(vm.Name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("VM %s lease: %v", vm.Name, l)
	}
	if err := c.WaitPing(ctx, a.Name, b.IP, reachTimeout); err != nil {
		t.Fatal(err)
	}

	// A forced renewal keeps the address and the routes.
	before := vmRoutes(t, a)
	if l := renewLease(t, c, a.Name); l["event"] != "renew" || l["ip"] != a.IP {
		t.Errorf("renewal: %v", l)
	}
	checkDHCPVM(t, a, sn.GatewayIP)
	if after := vmRoutes(t, a); !slices.Equal(before, after) {
		t.Errorf("routes changed across a renewal: %v, then %v", before, after)
	}

	// Deleting a VM ends its DHCP client.
	if err := c.DeleteVM(ctx, b.Name); err != nil {
		t.Fatal(err)
	}
	if b.DHCPClient.Running() {
		t.Errorf("DHCP client of deleted VM b (pid %d) still runs", b.DHCPClient.PID)
	}
}

// ensureDHCPPort returns the network's DHCP port: the one the server's
// scheduler made, or, when none appears within dhcpPortWaitInTest, one the
// test makes on network1 as the scheduler would.
func ensureDHCPPort(t *testing.T, c *Cluster, netID, subnetID, projectID string) string {
	t.Helper()
	ctx := testContext(t)
	var found string
	q := "/v2.0/ports?device_owner=network%3Adhcp&network_id=" + url.QueryEscape(netID)
	_ = poll(ctx, dhcpPortWaitInTest, 200*time.Millisecond, "DHCP port", func() (bool, error) {
		var out struct {
			Ports []port `json:"ports"`
		}
		if err := c.Admin().Do(ctx, http.MethodGet, q, nil, &out); err != nil {
			return false, err
		}
		if len(out.Ports) > 0 {
			found = out.Ports[0].ID
		}
		return found != "", nil
	})
	if found != "" {
		t.Logf("DHCP port %s made by the server", found)
		return found
	}
	body := map[string]any{"port": map[string]any{
		"network_id": netID, "project_id": projectID, "name": "", "device_owner": "network:dhcp",
		"device_id": "dhcp-e2e-" + netID, "binding:host_id": "network1",
		"fixed_ips": []map[string]string{{"subnet_id": subnetID}},
	}}
	var out struct {
		Port port `json:"port"`
	}
	if err := c.Admin().Do(ctx, http.MethodPost, "/v2.0/ports", body, &out); err != nil {
		t.Fatalf("create the DHCP port: %v", err)
	}
	t.Logf("no DHCP port after %s: the test made %s on network1 (%v)", dhcpPortWaitInTest, out.Port.ID, out.Port.FixedIPs)
	t.Cleanup(func() {
		if err := c.Admin().Do(context.Background(), http.MethodDelete, "/v2.0/ports/"+out.Port.ID, nil, nil); err != nil && !IsNotFound(err) {
			t.Errorf("delete the DHCP port: %v", err)
		}
	})
	return out.Port.ID
}

// checkDHCPVM checks the VM's eth0 as the lease configured it: exactly its
// port's address, its network's MTU, the gateway as default route and the
// subnet's host route.
func checkDHCPVM(t *testing.T, vm VM, gateway string) {
	t.Helper()
	h, err := namedns.Handle(vm.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	eth, err := h.LinkByName(vmIface)
	if err != nil {
		t.Fatal(err)
	}
	if eth.Attrs().MTU != vm.MTU {
		t.Errorf("VM %s: eth0 MTU %d, want the network's %d", vm.Name, eth.Attrs().MTU, vm.MTU)
	}
	addrs, err := h.AddrList(eth, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
	}
	if want := vm.CIDRs[0]; len(got) != 1 || got[0] != want {
		t.Errorf("VM %s: eth0 has %v, want exactly its port's %s", vm.Name, got, want)
	}
	routes := vmRoutes(t, vm)
	for _, want := range []string{"default via " + gateway, "172.31.0.0/16 via 10.7.0.254"} {
		if !slices.Contains(routes, want) {
			t.Errorf("VM %s: routes %v lack %q", vm.Name, routes, want)
		}
	}
}

// vmRoutes lists the VM's IPv4 routes with a gateway, as "dst via gw".
func vmRoutes(t *testing.T, vm VM) []string {
	t.Helper()
	h, err := namedns.Handle(vm.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rs, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		if r.Gw == nil {
			continue
		}
		dst := "default"
		if r.Dst != nil {
			if p, err := netip.ParsePrefix(r.Dst.String()); err == nil && p.Bits() > 0 {
				dst = p.String()
			}
		}
		out = append(out, fmt.Sprintf("%s via %s", dst, r.Gw))
	}
	slices.Sort(out)
	return out
}

// TestE2EDHCPAfterAgentRestart: kill -9 and restart of the network host's
// agent leave its DHCP namespace and links as they are (same ifindexes),
// and the VM's next renewal gets the same address from the new agent.
func TestE2EDHCPAfterAgentRestart(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "dhcprestart", Options{NetworkHosts: 1})
	ctx := testContext(t)
	cloud := c.Name() + "-demo"
	netID, _ := newNetwork(t, c, cloud, "net1", "10.8.0.0/24")
	var subnets struct {
		Subnets []struct {
			ID        string `json:"id"`
			ProjectID string `json:"project_id"`
		} `json:"subnets"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/subnets?network_id="+netID, nil, &subnets); err != nil || len(subnets.Subnets) != 1 {
		t.Fatalf("subnets of net1: %v %+v", err, subnets)
	}
	dhcpPort := ensureDHCPPort(t, c, netID, subnets.Subnets[0].ID, subnets.Subnets[0].ProjectID)
	if err := c.waitPortStatus(ctx, dhcpPort, "ACTIVE", 30*time.Second); err != nil {
		t.Fatalf("DHCP port: %v", err)
	}
	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	qdhcpNS := agentNSPrefix(c.Prefix(), "network1") + "qdhcp-" + netID
	links := func() map[string]int {
		m := ownedLinks(hostLinks(t, c, "network1"))
		h, err := namedns.Handle(qdhcpNS)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		ls, err := listLinks(h)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			m[qdhcpNS+"/"+l.Attrs().Name] = l.Attrs().Index
		}
		return m
	}
	before := links()
	if len(before) != 5 {
		t.Fatalf("network1 has %v, want a bridge, a vxlan device, the DHCP tap, lo and ns- in %s", before, qdhcpNS)
	}
	start := time.Now()
	if err := c.RestartAgent(ctx, "network1"); err != nil {
		t.Fatal(err)
	}
	l := renewLease(t, c, a.Name)
	t.Logf("renewal answered %s after the agent's kill -9", time.Since(start).Round(time.Millisecond))
	if l["event"] != "renew" || l["ip"] != a.IP {
		t.Errorf("renewal after the agent restart: %v, want a renew of %s", l, a.IP)
	}
	after := links()
	for name, idx := range before {
		if after[name] != idx {
			t.Errorf("link %s was recreated by the restarted agent (ifindex %d, now %d)", name, idx, after[name])
		}
	}
}

// renewLease forces the VM's DHCP client to renew and returns the record
// of the answer (renew on an ACK; nak or a new bound otherwise).
func renewLease(t *testing.T, c *Cluster, vm string) Lease {
	t.Helper()
	old, err := c.VMLease(vm)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RenewVMLease(vm); err != nil {
		t.Fatal(err)
	}
	var l Lease
	eventually(t, 15*time.Second, "renewal of "+vm+"'s lease", func() (bool, error) {
		l, err = c.VMLease(vm)
		return err == nil && l["seq"] != old["seq"] && l["event"] != "deconfig", nil
	})
	return l
}

// TestE2EVMWithoutLeaseFailsClearly: when the network's DHCP service does
// not answer (its agent is killed), creating a VM fails within its DHCP
// timeout with an error naming the VM and its port, and leaves no VM,
// namespace or DHCP client behind.
func TestE2EVMWithoutLeaseFailsClearly(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "dhcpfail", Options{NetworkHosts: 1})
	ctx := testContext(t)
	netID, _ := newNetwork(t, c, c.Name()+"-demo", "net1", "10.9.0.0/24")
	var subnets struct {
		Subnets []struct {
			ID        string `json:"id"`
			ProjectID string `json:"project_id"`
		} `json:"subnets"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/subnets?network_id="+netID, nil, &subnets); err != nil || len(subnets.Subnets) != 1 {
		t.Fatalf("subnets of net1: %v %+v", err, subnets)
	}
	dhcpPort := ensureDHCPPort(t, c, netID, subnets.Subnets[0].ID, subnets.Subnets[0].ProjectID)
	if err := c.waitPortStatus(ctx, dhcpPort, "ACTIVE", 30*time.Second); err != nil {
		t.Fatalf("DHCP port: %v", err)
	}
	// The DHCP server dies with its agent; the DHCP port stays until the
	// server notices the agent's death, longer than this test needs.
	h, err := c.host("network1")
	if err != nil {
		t.Fatal(err)
	}
	if !h.Agent.kill(syscall.SIGKILL, 5*time.Second) {
		t.Fatal("network1's agent does not die")
	}
	start := time.Now()
	_, err = c.CreateVM(ctx, VMOptions{Name: "x", Network: "net1", Host: "compute1", DHCPTimeout: 2 * time.Second})
	t.Logf("CreateVM failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("a VM was created though no DHCP server answers")
	}
	if !strings.Contains(err.Error(), "VM x") || !strings.Contains(err.Error(), "no DHCP lease for its port") {
		t.Errorf("error %q does not say which VM and port got no lease", err)
	}
	if _, err := c.VM("x"); err == nil {
		t.Error("the failed VM is still recorded")
	}
	if namedns.Exists(vmNS(c.Prefix(), "x")) {
		t.Error("the failed VM's namespace remains")
	}
	for _, p := range procsNaming(c.Dir()) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID)); strings.Contains(string(b), dhcpScriptName) {
			t.Errorf("the failed VM's DHCP client (pid %d) still runs", p.PID)
		}
	}
}
