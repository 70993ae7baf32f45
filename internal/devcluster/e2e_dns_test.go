package devcluster

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vland/vland/internal/dataplane/dhcp"
	"net/netip"
)

// TestE2EVMResolvesPeersByName: a VM asks the network's DNS service (the
// DHCP port's address, in the network host's qdhcp namespace, across VXLAN)
// for another VM's default name and gets its address, and for the address
// and gets the name back.
func TestE2EVMResolvesPeersByName(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("needs dig in the test environment (Debian package bind9-dnsutils)")
	}
	c := upCluster(t, "dns", Options{NetworkHosts: 1})
	ctx := testContext(t)
	cloud := c.Name() + "-demo"
	netID, _ := newNetwork(t, c, cloud, "net1", "10.8.0.0/24")
	cl, err := c.Client(cloud)
	if err != nil {
		t.Fatal(err)
	}
	var subnets struct {
		Subnets []struct {
			ID        string `json:"id"`
			ProjectID string `json:"project_id"`
		} `json:"subnets"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/subnets?network_id="+netID, nil, &subnets); err != nil || len(subnets.Subnets) != 1 {
		t.Fatalf("subnets of net1: %v %+v", err, subnets)
	}
	sn := subnets.Subnets[0]
	dhcpPort := ensureDHCPPort(t, c, netID, sn.ID, sn.ProjectID)
	if err := c.waitPortStatus(ctx, dhcpPort, "ACTIVE", 30*time.Second); err != nil {
		t.Fatalf("DHCP port: %v", err)
	}
	var dp struct {
		Port port `json:"port"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/ports/"+dhcpPort, nil, &dp); err != nil || len(dp.Port.FixedIPs) == 0 {
		t.Fatalf("DHCP port %s: %v %+v", dhcpPort, err, dp)
	}
	server := "@" + dp.Port.FixedIPs[0].IPAddress

	a := newVM(t, c, VMOptions{Name: "a", Network: "net1", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "net1", Host: "compute2"})
	bIP := netip.MustParseAddr(b.IP)
	name := dhcp.DefaultHostname(bIP) + ".openstacklocal"

	dig := func(args ...string) string {
		t.Helper()
		var out string
		// The VM's port may be newer than the agent's last table: retry
		// briefly, as a resolver would.
		_ = poll(ctx, 10*time.Second, 200*time.Millisecond, "dig "+strings.Join(args, " "), func() (bool, error) {
			o, err := c.Exec(a.Name, append([]string{"dig", "+short", "+time=1", "+tries=2", server}, args...)...)
			out = strings.TrimSpace(o)
			return err == nil && out != "", nil
		})
		return out
	}
	if got := dig(name); got != b.IP {
		t.Errorf("dig %s %s from VM a: %q, want %q", server, name, got, b.IP)
	}
	if got := dig("-x", b.IP); got != name+"." {
		t.Errorf("dig %s -x %s from VM a: %q, want %q", server, b.IP, got, name+".")
	}
	if out, _ := c.Exec(a.Name, "dig", "+time=1", "+tries=2", server, "no-such-vm.openstacklocal"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("unknown name: want NXDOMAIN, got\n%s", out)
	}
}
