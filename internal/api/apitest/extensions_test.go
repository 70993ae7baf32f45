package apitest

import (
	"net/http"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// TestPortSecurityAndAddressPairs: ports inherit their network's
// port_security_enabled; allowed address pairs need port security.
func TestPortSecurityAndAddressPairs(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	off := false
	var open network
	must(t, networks.Create(ctx, c, portsecurity.NetworkCreateOptsExt{
		CreateOptsBuilder: networks.CreateOpts{Name: uniq("psec-off")}, PortSecurityEnabled: &off,
	}).ExtractInto(&open))
	if open.PortSecurityEnabled {
		t.Errorf("network port_security_enabled = true, want false")
	}
	createSubnet(t, c, open.ID, "10.49.0.0/24")
	p := createPort(t, c, rawPort{"network_id": open.ID})
	if p.PortSecurityEnabled {
		t.Errorf("port on a port-security-less network has port security")
	}
	_, err := ports.Create(ctx, c, rawPort{"network_id": open.ID, "allowed_address_pairs": []any{map[string]any{"ip_address": "10.49.0.200"}}}).Extract()
	wantError(t, err, http.StatusConflict, "AddressPairAndPortSecurityRequired")

	n, _ := netWithSubnet(t, c, uniq("psec-on"), "10.49.0.0/24")
	q := createPort(t, c, rawPort{"network_id": n.ID, "allowed_address_pairs": []any{
		map[string]any{"ip_address": "10.49.1.0/24"}, map[string]any{"ip_address": "10.49.0.201", "mac_address": "fa:16:3e:49:00:01"},
	}})
	want := []ports.AddressPair{{IPAddress: "10.49.1.0/24", MACAddress: q.MACAddress}, {IPAddress: "10.49.0.201", MACAddress: "fa:16:3e:49:00:01"}}
	if !q.PortSecurityEnabled || len(q.AllowedAddressPairs) != 2 || q.AllowedAddressPairs[0] != want[0] || q.AllowedAddressPairs[1] != want[1] {
		t.Errorf("port with address pairs = %+v, want %+v", q.AllowedAddressPairs, want)
	}
	_, err = ports.Update(ctx, c, q.ID, portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, PortSecurityEnabled: &off}).Extract()
	wantError(t, err, http.StatusConflict, "AddressPairAndPortSecurityRequired")
	none := []ports.AddressPair{}
	var up port
	// The port's security groups (the default group) go too: port
	// security cannot be off while it has some.
	noGroups := []string{}
	must(t, ports.Update(ctx, c, q.ID, portsecurity.PortUpdateOptsExt{
		UpdateOptsBuilder: ports.UpdateOpts{AllowedAddressPairs: &none, SecurityGroups: &noGroups}, PortSecurityEnabled: &off,
	}).ExtractInto(&up))
	if up.PortSecurityEnabled || len(up.AllowedAddressPairs) != 0 {
		t.Errorf("port after disabling port security = %+v", up)
	}
}
