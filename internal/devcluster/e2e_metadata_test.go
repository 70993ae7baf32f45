package devcluster

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const mdURL = "http://169.254.169.254"

// metaJSON fetches the OpenStack meta_data.json a VM sees.
func metaJSON(c *Cluster, vm string) (map[string]any, error) {
	out, err := c.Exec(vm, "curl", "-sS", "-f", "-m", "3", mdURL+"/openstack/latest/meta_data.json")
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return nil, fmt.Errorf("meta_data.json of %s: %v: %q", vm, err, out)
	}
	return m, nil
}

// TestE2EMetadata: a VM behind a router and a VM on a network without one
// each read their own meta_data.json (uuid = their device id) from
// 169.254.169.254; user_data comes back byte for byte, and 404 where none
// was given; EC2 local-ipv4 and public-ipv4 follow the port and its
// floating IP; a VM of another project with the same address on another
// network gets its own data; a VM forging another source address gets
// nothing.
func TestE2EMetadata(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "md", Options{Hosts: 1, NetworkHosts: 1})
	ctx := testContext(t)
	demo, alt := c.Name()+"-demo", c.Name()+"-alt"
	newNetwork(t, c, demo, "routed", "10.91.0.0/24")
	if _, err := c.CreateRouter(ctx, demo, "r1", "routed"); err != nil {
		t.Fatal(err)
	}
	newNetwork(t, c, demo, "iso", "10.92.0.0/24")
	newNetwork(t, c, alt, "iso", "10.91.0.0/24")

	userData := []byte("#cloud-config\nruncmd: [echo hi]\n\x00\xff binary tail\n")
	r := newVM(t, c, VMOptions{Name: "r", Network: "routed", Host: "compute1", IP: "10.91.0.50",
		UserData: userData, Keys: map[string]string{"k1": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0vland k1"}})
	i := newVM(t, c, VMOptions{Name: "i", Network: "iso", Host: "compute1"})
	x := newVM(t, c, VMOptions{Name: "x", Network: "iso", Cloud: alt, Host: "compute1", IP: "10.91.0.50"})

	for _, vm := range []VM{r, i, x} {
		var m map[string]any
		eventually(t, l3Deadline, "meta_data.json of "+vm.Name, func() (bool, error) {
			var err error
			m, err = metaJSON(c, vm.Name)
			return err == nil, nil
		})
		if m["uuid"] != vm.DeviceID {
			t.Errorf("VM %s read uuid %v, want its device id %s", vm.Name, m["uuid"], vm.DeviceID)
		}
	}
	m, _ := metaJSON(c, "r")
	if m["name"] != "r" || !strings.Contains(fmt.Sprint(m["public_keys"]), "AAAAIE0vland") {
		t.Errorf("r's meta_data.json: %v", m)
	}
	got, err := c.Exec("r", "curl", "-sS", "-f", "-m", "3", mdURL+"/openstack/latest/user_data")
	if err != nil || got != string(userData) {
		t.Errorf("r's user_data = %q (%v), want %q", got, err, userData)
	}
	if code, _ := c.Exec("i", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "3", mdURL+"/openstack/latest/user_data"); code != "404" {
		t.Errorf("user_data of a VM without any: HTTP %s, want 404", code)
	}
	if got, err := c.Exec("r", "curl", "-sS", "-f", "-m", "3", mdURL+"/latest/meta-data/local-ipv4"); err != nil || got != r.IP {
		t.Errorf("EC2 local-ipv4 = %q (%v), want %s", got, err, r.IP)
	}
	fip, err := c.CreateFloatingIP(ctx, demo, "r")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, l3Deadline, "EC2 public-ipv4 showing the floating IP", func() (bool, error) {
		got, err := c.Exec("r", "curl", "-sS", "-f", "-m", "3", mdURL+"/latest/meta-data/public-ipv4")
		return err == nil && got == fip.Address, nil
	})

	// Forging a neighbour's address: anti-spoofing drops it before any
	// answer (the request never reaches the router).
	if out, err := c.Exec("i", "sh", "-c", "ip addr add 10.92.0.250/24 dev eth0 && curl -sS -m 3 --interface 10.92.0.250 "+mdURL+"/openstack/latest/meta_data.json"); err == nil {
		t.Errorf("a VM with a forged source address got an answer: %s", out)
	}
}
