package devcluster

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vland/vland/internal/namedns"
)

// addSubnet6 adds an IPv6 subnet with the given modes to a network as the
// cloud's project and returns its id.
func addSubnet6(t *testing.T, c *Cluster, cloud, netID, cidr, raMode, addrMode string) string {
	t.Helper()
	cl, err := c.Client(cloud)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Subnet struct {
			ID string `json:"id"`
		} `json:"subnet"`
	}
	body := map[string]any{"subnet": map[string]any{"network_id": netID, "cidr": cidr, "ip_version": 6,
		"ipv6_ra_mode": raMode, "ipv6_address_mode": addrMode}}
	if err := cl.Do(testContext(t), http.MethodPost, "/v2.0/subnets", body, &out); err != nil {
		t.Fatalf("create subnet %s: %v", cidr, err)
	}
	return out.Subnet.ID
}

// vmAddrs6 lists the global IPv6 addresses on a VM's eth0.
func vmAddrs6(t *testing.T, vm VM) []netip.Addr {
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
	list, err := h.AddrList(eth, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, a := range list {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLinkLocalUnicast() {
			out = append(out, ip)
		}
	}
	return out
}

// apiAddr6 is the port's IPv6 address as the API shows it.
func apiAddr6(t *testing.T, vm VM) netip.Addr {
	t.Helper()
	for _, s := range vm.CIDRs {
		if p := netip.MustParsePrefix(s); p.Addr().Is6() {
			return p.Addr()
		}
	}
	t.Fatalf("VM %s has no IPv6 address in the API: %v", vm.Name, vm.CIDRs)
	return netip.Addr{}
}

// TestE2EIPv6SLAACAndDHCPv6: VMs on a slaac subnet make from the DHCP
// namespace's router advertisements exactly the EUI-64 address the API
// shows (across hosts, over VXLAN) and reach each other with it; a VM on a
// dhcpv6-stateful subnet gets its port's address from Debian's dhclient -6
// and the agent's DHCPv6 server, with the DHCP port as DNS server, and makes
// no SLAAC address there (the RA's prefix is not autonomous).
func TestE2EIPv6SLAACAndDHCPv6(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "ipv6", Options{NetworkHosts: 1})
	ctx := testContext(t)
	cloud := c.Name() + "-demo"

	slaacNet, _ := newNetwork(t, c, cloud, "slaac", "10.61.0.0/24")
	addSubnet6(t, c, cloud, slaacNet, "fd00:61::/64", "slaac", "slaac")
	statefulNet, _ := newNetwork(t, c, cloud, "stateful", "10.62.0.0/24")
	sub6 := addSubnet6(t, c, cloud, statefulNet, "fd00:62::/64", "dhcpv6-stateful", "dhcpv6-stateful")

	a := newVM(t, c, VMOptions{Name: "a", Network: "slaac", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "slaac", Host: "compute2"})
	for _, vm := range []VM{a, b} {
		want := apiAddr6(t, vm)
		if !strings.HasPrefix(want.String(), "fd00:61::f816:3eff:fe") {
			t.Errorf("VM %s: API address %s is not the EUI-64 of %s", vm.Name, want, vm.MAC)
		}
		got := vmAddrs6(t, vm)
		if len(got) != 1 || got[0] != want {
			t.Errorf("VM %s: eth0 has %v, the API shows %s", vm.Name, got, want)
		}
	}
	if out, err := c.Exec("a", "ping", "-6", "-c", "1", "-W", "5", apiAddr6(t, b).String()); err != nil {
		t.Errorf("a cannot ping b over IPv6: %v\n%s", err, out)
	}

	s := newVM(t, c, VMOptions{Name: "s", Network: "stateful", Host: "compute1"})
	want := apiAddr6(t, s)
	got := vmAddrs6(t, s)
	if len(got) != 1 || got[0] != want {
		t.Errorf("VM s: eth0 has %v, the API shows %s (and nothing else)", got, want)
	}
	var dhcpPorts struct {
		Ports []port `json:"ports"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/ports?device_owner=network%3Adhcp&network_id="+statefulNet, nil, &dhcpPorts); err != nil || len(dhcpPorts.Ports) != 1 {
		t.Fatalf("DHCP port of the stateful network: %v %+v", err, dhcpPorts)
	}
	var dns string
	for _, f := range dhcpPorts.Ports[0].FixedIPs {
		if f.SubnetID == sub6 {
			dns = f.IPAddress
		}
	}
	l, err := c.VMLease6("s")
	if err != nil {
		t.Fatal(err)
	}
	if l["ip6"] != want.String() || strings.TrimSpace(l["dns6"]) != dns || !strings.Contains(l["domain6"], "openstacklocal") {
		t.Errorf("DHCPv6 lease %v; want ip6 %s, dns6 %s (the DHCP port), domain openstacklocal", l, want, dns)
	}
	// The DHCP port answers DNS over IPv6 too: s resolves a's name.
	if out, err := c.Exec("s", "ping", "-6", "-c", "1", "-W", "5", dns); err != nil {
		t.Errorf("s cannot reach the DHCP port %s: %v\n%s", dns, err, out)
	}
}

// TestE2EIPv6RouterAdvertisements: once a router has an interface on a
// slaac subnet, the router namespace announces it (with a router
// lifetime): a VM makes its EUI-64 address and takes the router as its
// IPv6 default gateway, and reaches the router's address on the subnet.
func TestE2EIPv6RouterAdvertisements(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "ipv6r", Options{Hosts: 1, NetworkHosts: 1})
	ctx := testContext(t)
	cloud := c.Name() + "-demo"
	netID, _ := newNetwork(t, c, cloud, "v6r", "10.63.0.0/24")
	sub6 := addSubnet6(t, c, cloud, netID, "fd00:63::/64", "slaac", "slaac")
	routerID, err := c.CreateRouter(ctx, cloud, "r6", "v6r")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := c.Client(cloud)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Do(ctx, http.MethodPut, "/v2.0/routers/"+routerID+"/add_router_interface", map[string]any{"subnet_id": sub6}, nil); err != nil {
		t.Fatalf("attach the IPv6 subnet: %v", err)
	}
	vm := newVM(t, c, VMOptions{Name: "v", Network: "v6r", Host: "compute1"})
	if got, want := vmAddrs6(t, vm), apiAddr6(t, vm); len(got) != 1 || got[0] != want {
		t.Errorf("eth0 has %v, the API shows %s", got, want)
	}
	eventually(t, l3Deadline, "an IPv6 default route via the router", func() (bool, error) {
		out, err := c.Exec("v", "ip", "-6", "route", "show", "default")
		return err == nil && strings.Contains(out, "via fe80::"), nil
	})
	if out, err := c.Exec("v", "ping", "-6", "-c", "1", "-W", "5", "fd00:63::1"); err != nil {
		t.Errorf("the VM cannot reach the router's address: %v\n%s", err, out)
	}
}
