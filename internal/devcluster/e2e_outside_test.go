package devcluster

import (
	"net/http"
	"strings"
	"testing"
)

// TestE2EOutside: a cluster with a network host has the external network
// "public" (flat on physnet public, router:external, 203.0.113.0/24 with the
// outside as gateway) and the outside namespace, whose HTTP server answers
// with the caller's address; network hosts have eth2 on it, compute hosts
// do not.
func TestE2EOutside(t *testing.T) {
	t.Parallel()
	c := upCluster(t, "outside", Options{Hosts: 1, NetworkHosts: 1})
	ctx := testContext(t)
	var nets struct {
		Networks []struct {
			ID       string `json:"id"`
			External bool   `json:"router:external"`
			Type     string `json:"provider:network_type"`
			Physnet  string `json:"provider:physical_network"`
		} `json:"networks"`
	}
	if err := c.Admin().Do(ctx, http.MethodGet, "/v2.0/networks?name="+ExternalNetwork, nil, &nets); err != nil || len(nets.Networks) != 1 {
		t.Fatalf("external network: %v %+v", err, nets)
	}
	if n := nets.Networks[0]; !n.External || n.Type != "flat" || n.Physnet != ExternalPhysnet {
		t.Errorf("external network %+v", n)
	}
	out, err := c.OutsideExec("curl", "-sS", "-m", "5", "http://203.0.113.1/anything")
	if err != nil || strings.TrimSpace(out) != "203.0.113.1" {
		t.Errorf("outside HTTP server: %v %q", err, out)
	}
	if _, ok := hostLinks(t, c, "network1")[hostExtIface]; !ok {
		t.Errorf("network1 has no %s", hostExtIface)
	}
	if _, ok := hostLinks(t, c, "compute1")[hostExtIface]; ok {
		t.Errorf("compute1 has %s", hostExtIface)
	}
}
