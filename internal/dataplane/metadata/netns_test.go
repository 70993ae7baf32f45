package metadata

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/namedns"
	"github.com/vland/vland/internal/namedns/nstest"
)

// The metadata address and its IPv6 link-local twin.
const (
	mdAddr4 = "169.254.169.254"
	mdAddr6 = "fe80::a9fe:a9fe"
)

// site is one network as the agent serves it: a service namespace (the
// qdhcp-/qrouter- namespace) holding the metadata address on ns-md, and a
// VM namespace whose eth0 pairs with it, with the guest's address and a
// route to 169.254.169.254 through the service side, as DHCP's option 121
// would install.
type site struct {
	svc, vm *nstest.NS
	mac     net.HardwareAddr
	vmIP    netip.Addr
	vmLL    netip.Addr // the VM's EUI-64 link-local address
}

func requireRoot(t *testing.T) {
	t.Helper()
	nstest.RequireRoot(t, "network namespaces and veth pairs")
}

// newSite builds the two namespaces; the metadata addresses are added by
// addMetadataAddrs, so that a test can open its socket first.
func newSite(t *testing.T, mac string) *site {
	t.Helper()
	s := &site{svc: nstest.New(t, "vmdsvc"), vm: nstest.New(t, "vmdvm"), mac: mustMAC(mac), vmIP: netip.MustParseAddr("10.50.0.10")}
	// No duplicate address detection: link-local addresses usable at once.
	for _, ns := range []*nstest.NS{s.svc, s.vm} {
		if err := namedns.Do(ns.Name, func() error {
			return os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
	}
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ns-md"}, PeerName: "eth0", PeerHardwareAddr: s.mac,
		PeerNamespace: netlink.NsFd(int(s.vm.Fd))}
	if err := s.svc.H.LinkAdd(v); err != nil {
		t.Fatalf("veth: %v", err)
	}
	s.addr(t, s.svc, "ns-md", "10.50.0.1/24", 0)
	s.addr(t, s.vm, "eth0", s.vmIP.String()+"/24", 0)
	s.up(t, s.svc, "ns-md")
	s.up(t, s.vm, "eth0")
	eth0 := s.link(t, s.vm, "eth0")
	if err := s.vm.H.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: netlink.NewIPNet(net.ParseIP(mdAddr4)),
		Gw: net.ParseIP("10.50.0.1")}); err != nil {
		t.Fatalf("route to the metadata address: %v", err)
	}
	s.vmLL = eui64(s.mac)
	s.settle(t)
	return s
}

func (s *site) link(t *testing.T, ns *nstest.NS, name string) netlink.Link {
	t.Helper()
	l, err := ns.H.LinkByName(name)
	if err != nil {
		t.Fatalf("%s: %s: %v", ns.Name, name, err)
	}
	return l
}

func (s *site) up(t *testing.T, ns *nstest.NS, name string) {
	t.Helper()
	if err := ns.H.LinkSetUp(s.link(t, ns, name)); err != nil {
		t.Fatal(err)
	}
}

func (s *site) addr(t *testing.T, ns *nstest.NS, dev, cidr string, flags int) {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	a.Flags = flags
	if err := ns.H.AddrAdd(s.link(t, ns, dev), a); err != nil {
		t.Fatalf("%s: add %s: %v", ns.Name, cidr, err)
	}
}

// addMetadataAddrs puts 169.254.169.254/32 and fe80::a9fe:a9fe/64 on the
// service side, as the agent does in a qdhcp- namespace.
func (s *site) addMetadataAddrs(t *testing.T) {
	t.Helper()
	s.addr(t, s.svc, "ns-md", mdAddr4+"/32", 0)
	s.addr(t, s.svc, "ns-md", mdAddr6+"/64", unix.IFA_F_NODAD)
}

// settle waits until both ends are operational and the VM's link-local
// address is usable.
func (s *site) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, b := s.link(t, s.svc, "ns-md").Attrs(), s.link(t, s.vm, "eth0").Attrs()
		addrs, _ := s.vm.H.AddrList(s.link(t, s.vm, "eth0"), netlink.FAMILY_V6)
		ll := slices.ContainsFunc(addrs, func(a netlink.Addr) bool {
			return a.IP.Equal(net.IP(s.vmLL.AsSlice())) && a.Flags&unix.IFA_F_TENTATIVE == 0
		})
		if a.OperState == netlink.OperUp && b.OperState == netlink.OperUp && ll {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("veth not ready after 5 s: %s %s, link-local %v (%v)", a.OperState, b.OperState, ll, addrs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// eui64 is the link-local address the kernel derives from a MAC.
func eui64(mac net.HardwareAddr) netip.Addr {
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15] = mac[0]^2, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}

// curl runs curl inside the VM namespace and returns the body and the
// status code.
func (s *site) curl(t *testing.T, args ...string) ([]byte, string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("needs curl")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"netns", "exec", s.vm.Name, "curl", "-sS", "--max-time", "5", "-w", "\n%{http_code}"}, args...)
	out, err := exec.CommandContext(ctx, "ip", full...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("curl %v: %v %s", args, err, stderr)
	}
	i := bytes.LastIndexByte(out, '\n')
	return out[:i], string(out[i+1:])
}

// TestListenInNamespaceServesVMOverVeth opens the service inside a
// namespace (before the metadata address exists there: freebind) and
// reads it with curl from a VM namespace across a veth, over IPv4 and over
// IPv6 link-local; a second address of the same VM that matches no port
// gets 404.
func TestListenInNamespaceServesVMOverVeth(t *testing.T) {
	requireRoot(t)
	st := newSite(t, "fa:16:3e:12:34:56")
	in := fullInstance()
	lookup := LookupFunc(func(key string, src netip.Addr) (Instance, bool) {
		if key == "net1" && (src == st.vmIP || src == st.vmLL) {
			return in, true
		}
		return Instance{}, false
	})
	srv, err := NewServer(Options{Lookup: lookup, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l4, err := srv.Listen(st.svc.Name, mdAddr4+":80", "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	l6, err := srv.Listen(st.svc.Name, "["+mdAddr6+"%ns-md]:80", "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer l6.Close()
	st.addMetadataAddrs(t)

	body, code := st.curl(t, "http://169.254.169.254/openstack/latest/meta_data.json")
	if code != "200" || !bytes.Contains(body, []byte(`"uuid":"`+in.ID+`"`)) || !bytes.Contains(body, []byte(`"name":"web-1"`)) {
		t.Errorf("meta_data.json: %s %s", code, body)
	}
	body, code = st.curl(t, "http://169.254.169.254/openstack/latest/user_data")
	if code != "200" || !bytes.Equal(body, in.UserData) {
		t.Errorf("user_data: %s %q", code, body)
	}
	// The Instance has no LocalIPv4: local-ipv4 is the request's source.
	if body, code = st.curl(t, "http://169.254.169.254/latest/meta-data/local-ipv4"); code != "200" || string(body) != "10.50.0.10" {
		t.Errorf("local-ipv4: %s %q", code, body)
	}
	body, code = st.curl(t, "-g", "http://["+mdAddr6+"%25eth0]/latest/meta-data/instance-id")
	if code != "200" || string(body) != "i-d8f4c0f4" {
		t.Errorf("over IPv6 link-local: %s %q", code, body)
	}
	st.addr(t, st.vm, "eth0", "10.50.0.11/24", 0)
	if body, code = st.curl(t, "--interface", "10.50.0.11", "http://169.254.169.254/openstack/latest/meta_data.json"); code != "404" {
		t.Errorf("from an address with no port: %s %q, want 404", code, body)
	}
	if body, code = st.curl(t, "-X", "POST", "http://169.254.169.254/openstack/latest/password"); code != "405" {
		t.Errorf("POST: %s %q", code, body)
	}
	if err := l4.Close(); err != nil {
		t.Error(err)
	}
}

// TestSameAddressOnTwoNetworks: two listeners (two networks, each in its
// namespace) see callers with the same address, and each gets its own
// instance, by the listener's key.
func TestSameAddressOnTwoNetworks(t *testing.T) {
	requireRoot(t)
	a, b := newSite(t, "fa:16:3e:00:aa:01"), newSite(t, "fa:16:3e:00:bb:01")
	ia, ib := bareInstance(), bareInstance()
	ia.ID, ia.Name = "aaaaaaaa-0000-4000-8000-000000000001", "vm-a"
	ib.ID, ib.Name = "bbbbbbbb-0000-4000-8000-000000000002", "vm-b"
	lookup := LookupFunc(func(key string, src netip.Addr) (Instance, bool) {
		if src != netip.MustParseAddr("10.50.0.10") {
			return Instance{}, false
		}
		switch key {
		case "net-a":
			return ia, true
		case "net-b":
			return ib, true
		}
		return Instance{}, false
	})
	srv, err := NewServer(Options{Lookup: lookup, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		s   *site
		key string
	}{{a, "net-a"}, {b, "net-b"}} {
		l, err := srv.Listen(x.s.svc.Name, mdAddr4+":80", x.key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		x.s.addMetadataAddrs(t)
	}
	if body, code := a.curl(t, "http://169.254.169.254/latest/meta-data/instance-id"); code != "200" || string(body) != "i-aaaaaaaa" {
		t.Errorf("network a: %s %q", code, body)
	}
	if body, code := b.curl(t, "http://169.254.169.254/latest/meta-data/instance-id"); code != "200" || string(body) != "i-bbbbbbbb" {
		t.Errorf("network b: %s %q", code, body)
	}
}

// cloudInitScript drives Debian's cloud-init: its OpenStack datasource
// (detection forced, since this is no Nova guest) crawls
// http://169.254.169.254 exactly as at boot, and the script prints what
// the datasource made of it.
const cloudInitScript = `
import base64, json, sys
from cloudinit import distros, helpers, settings
from cloudinit.sources import DataSourceOpenStack as dso
from cloudinit.sources.helpers import openstack

tmp = sys.argv[1]
dso.detect_openstack = lambda accept_oracle=False: True
paths = helpers.Paths({"cloud_dir": tmp + "/cloud", "run_dir": tmp + "/run"})
distro = distros.fetch("debian")("debian", {}, paths)
cfg = dict(settings.CFG_BUILTIN)
cfg["datasource"] = {"OpenStack": {"max_wait": 10, "timeout": 5, "retries": 1}}
ds = dso.DataSourceOpenStack(cfg, distro, paths)
ok = ds.get_data()
out = {"ok": ok}
if ok:
    out.update({
        "instance_id": ds.get_instance_id(),
        "hostname": ds.get_hostname().hostname,
        "keys": sorted(ds.get_public_ssh_keys()),
        "userdata": base64.b64encode(ds.get_userdata_raw()).decode(),
        "availability_zone": ds.availability_zone,
        "version": ds.version,
        "metadata_address": ds.metadata_address,
        "ec2_instance_id": ds.ec2_metadata.get("instance-id"),
        "ec2_local_ipv4": ds.ec2_metadata.get("local-ipv4"),
        "ec2_keys": ds.ec2_metadata.get("public-keys"),
        "ec2_mac": ds.ec2_metadata.get("mac"),
        "network_config": ds.network_config,
        "vendordata": ds.vendordata_pure,
        "random_seed_len": len(ds.metadata.get("random_seed", b"")),
    })
print(json.dumps(out))
`

// TestCloudInitReadsTheService runs the real cloud-init OpenStack
// datasource (Debian's cloud-init package) inside a VM namespace against
// the service and checks what it understood: instance id, hostname, keys,
// user data, the EC2 tree, and network_data.json turned into its network
// configuration for the VM's own eth0.
func TestCloudInitReadsTheService(t *testing.T) {
	requireRoot(t)
	const py = "/usr/bin/python3" // Debian's, with cloudinit; not pyenv's
	if _, err := os.Stat("/usr/lib/python3/dist-packages/cloudinit/sources/DataSourceOpenStack.py"); err != nil {
		t.Skip("needs Debian's cloud-init package (apt-get install cloud-init)")
	}
	st := newSite(t, "fa:16:3e:00:00:01") // the full instance's first port
	in := fullInstance()
	in.Ports = in.Ports[:1] // cloud-init refuses a NIC the guest lacks
	in.Ports[0].FixedIPs[0].Address = st.vmIP
	srv, err := NewServer(Options{Lookup: LookupFunc(func(key string, src netip.Addr) (Instance, bool) {
		return in, key == "router1" && src == st.vmIP
	}), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := srv.Listen(st.svc.Name, mdAddr4+":80", "router1")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st.addMetadataAddrs(t)

	dir := t.TempDir()
	script := filepath.Join(dir, "ci.py")
	if err := os.WriteFile(script, []byte(cloudInitScript), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", st.vm.Name, py, script, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cloud-init: %v\n%s", err, stderr.Bytes())
	}
	var got struct {
		OK            bool                              `json:"ok"`
		InstanceID    string                            `json:"instance_id"`
		Hostname      string                            `json:"hostname"`
		Keys          []string                          `json:"keys"`
		UserData      []byte                            `json:"userdata"`
		AZ            string                            `json:"availability_zone"`
		Version       int                               `json:"version"`
		EC2InstanceID string                            `json:"ec2_instance_id"`
		EC2LocalIPv4  string                            `json:"ec2_local_ipv4"`
		EC2Keys       map[string]any                    `json:"ec2_keys"`
		EC2MAC        string                            `json:"ec2_mac"`
		Vendordata    map[string]any                    `json:"vendordata"`
		RandomSeedLen int                               `json:"random_seed_len"`
		NetworkConfig struct{ Config []map[string]any } `json:"network_config"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s\n%s", err, out, stderr.Bytes())
	}
	t.Logf("cloud-init read: %s", out)
	if !got.OK {
		t.Fatalf("the datasource found no metadata:\n%s", stderr.Bytes())
	}
	want := []string{in.PublicKeys["alice"], in.PublicKeys["bob"]}
	slices.Sort(want)
	if got.InstanceID != in.ID || got.Hostname != "web-1" || !slices.Equal(got.Keys, want) || !bytes.Equal(got.UserData, in.UserData) ||
		got.AZ != "nova" || got.Version != 2 || got.RandomSeedLen != randomSeedBytes {
		t.Errorf("cloud-init understood %+v", got)
	}
	if got.EC2InstanceID != "i-d8f4c0f4" || got.EC2LocalIPv4 != "10.50.0.10" || got.EC2MAC != "fa:16:3e:00:00:01" || len(got.EC2Keys) != 2 {
		t.Errorf("cloud-init's EC2 crawl: %+v", got)
	}
	// network_data.json became a configuration for the VM's own NIC: eth0
	// found by its MAC, with DHCPv4 and SLAAC.
	var eth0 map[string]any
	for _, c := range got.NetworkConfig.Config {
		if c["mac_address"] == "fa:16:3e:00:00:01" {
			eth0 = c
		}
	}
	if eth0 == nil || eth0["name"] != "eth0" || eth0["type"] != "physical" || !strings.Contains(jsonString(eth0["subnets"]), `"type":"dhcp4"`) ||
		!strings.Contains(jsonString(eth0["subnets"]), `"type":"ipv6_slaac"`) {
		t.Errorf("network config for eth0: %v (all: %v)", eth0, got.NetworkConfig.Config)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
