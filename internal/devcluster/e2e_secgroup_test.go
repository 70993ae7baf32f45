package devcluster

import (
	"net/http"
	"testing"
	"time"
)

// sgCreate creates a security group or rule as the cloud's project.
func sgCreate(t *testing.T, c *Cluster, cloud, path string, body any) string {
	t.Helper()
	cl, err := c.Client(cloud)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]map[string]any
	if err := cl.Do(testContext(t), http.MethodPost, path, body, &out); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	for _, v := range out {
		return v["id"].(string)
	}
	t.Fatalf("POST %s: empty answer", path)
	return ""
}

// blocked asserts that url does not answer from vm (the allowed path was
// checked to work first, so the firewall is programmed).
func blocked(t *testing.T, c *Cluster, vm, url string) {
	t.Helper()
	if got, err := c.Curl(vm, url, time.Second); err == nil {
		t.Errorf("%s reached %s (answer %s); the firewall should block it", vm, url, got)
	}
}

// TestE2ESecurityGroups drives the firewall through the API on VMs across
// hosts: the default group lets its members talk and keeps others out; a
// group with an ingress rule for TCP 22 opens exactly port 22; a
// remote-group rule follows a port's membership change; a VM without port
// security is reachable on every port.
func TestE2ESecurityGroups(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "sg", Options{Hosts: 2, NetworkHosts: 1})
	ctx := testContext(t)
	cloud := c.Name() + "-demo"
	newNetwork(t, c, cloud, "net", "10.81.0.0/24")
	web := sgCreate(t, c, cloud, "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "web"}})
	sgCreate(t, c, cloud, "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": web, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
		"port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "0.0.0.0/0"}})

	a := newVM(t, c, VMOptions{Name: "a", Network: "net", Host: "compute1"})
	b := newVM(t, c, VMOptions{Name: "b", Network: "net", Host: "compute2"})
	w := newVM(t, c, VMOptions{Name: "w", Network: "net", Host: "compute2", SecurityGroups: []string{"web"}})
	o := newVM(t, c, VMOptions{Name: "o", Network: "net", Host: "compute1", NoPortSecurity: true})
	for _, s := range []struct {
		vm   string
		port int
	}{{"a", 80}, {"b", 80}, {"w", 22}, {"w", 23}, {"w", 80}, {"o", 80}, {"o", 23}} {
		if err := c.StartEchoServer(ctx, s.vm, s.port); err != nil {
			t.Fatal(err)
		}
	}
	// The default group: members reach each other, across hosts.
	curlEventually(t, c, "a", "http://"+b.IP+"/", a.IP)
	curlEventually(t, c, "b", "http://"+a.IP+"/", b.IP)
	// ... and keep the web VM out.
	blocked(t, c, "w", "http://"+a.IP+"/")
	// The web group opens exactly TCP 22.
	curlEventually(t, c, "a", "http://"+w.IP+":22/", a.IP)
	blocked(t, c, "a", "http://"+w.IP+":23/")
	blocked(t, c, "a", "http://"+w.IP+":80/")
	// A port without port security takes anything.
	curlEventually(t, c, "w", "http://"+o.IP+":23/", w.IP)

	// Remote group: web lets the default group's members in on 80; when b
	// moves to the web group only, it loses that.
	cl, err := c.Client(cloud)
	if err != nil {
		t.Fatal(err)
	}
	var groups struct {
		SecurityGroups []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"security_groups"`
	}
	if err := cl.Do(ctx, http.MethodGet, "/v2.0/security-groups?name=default", nil, &groups); err != nil || len(groups.SecurityGroups) != 1 {
		t.Fatalf("default group: %v %+v", err, groups)
	}
	def := groups.SecurityGroups[0].ID
	sgCreate(t, c, cloud, "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": web, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
		"port_range_min": 80, "port_range_max": 80, "remote_group_id": def}})
	curlEventually(t, c, "a", "http://"+w.IP+":80/", a.IP)
	curlEventually(t, c, "b", "http://"+w.IP+":80/", b.IP)
	moved := time.Now()
	if err := cl.Do(ctx, http.MethodPut, "/v2.0/ports/"+b.PortID, map[string]any{"port": map[string]any{"security_groups": []string{web}}}, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, l3Deadline, "b losing web:80 after leaving the default group", func() (bool, error) {
		_, err := c.Curl("b", "http://"+w.IP+":80/", time.Second)
		return err != nil, nil
	})
	t.Logf("membership change enforced within %s", time.Since(moved).Round(time.Millisecond))
	curlEventually(t, c, "a", "http://"+w.IP+":80/", a.IP)
}
