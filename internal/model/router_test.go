package model

import (
	"net/netip"
	"strings"
	"testing"
)

func TestGatewayInfoDecodes(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       GatewayRequest
		snat       string // "", "true", "false"
		ips        int
	}{
		{"null clears", `{"router": {"external_gateway_info": null}}`, GatewayRequest{}, "", 0},
		{"empty clears", `{"router": {"external_gateway_info": {}}}`, GatewayRequest{}, "", 0},
		{"network only", `{"router": {"external_gateway_info": {"network_id": "` + netID + `"}}}`, GatewayRequest{NetworkID: netID}, "", 0},
		{"snat as string", `{"router": {"external_gateway_info": {"network_id": "` + netID + `", "enable_snat": "False"}}}`, GatewayRequest{NetworkID: netID}, "false", 0},
		{"fixed ips", `{"router": {"external_gateway_info": {"network_id": "` + netID + `", "external_fixed_ips": [{"subnet_id": "` + subID + `"}, {"ip_address": "203.0.113.9"}]}}}`,
			GatewayRequest{NetworkID: netID, HasFixedIPs: true}, "", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := decodeOne(t, RouterSpec, tc.body, Update)
			g := f["external_gateway_info"].(GatewayRequest)
			if g.NetworkID != tc.want.NetworkID || g.HasFixedIPs != tc.want.HasFixedIPs || len(g.FixedIPs) != tc.ips {
				t.Errorf("got %+v", g)
			}
			switch {
			case tc.snat == "" && g.EnableSNAT != nil:
				t.Errorf("enable_snat = %v, want unset", *g.EnableSNAT)
			case tc.snat != "" && (g.EnableSNAT == nil || (*g.EnableSNAT) != (tc.snat == "true")):
				t.Errorf("enable_snat = %v, want %s", g.EnableSNAT, tc.snat)
			}
		})
	}
	for _, tc := range []struct{ name, body, msg string }{
		{"no network", `{"router": {"external_gateway_info": {"enable_snat": true}}}`, "~Expected keys: ['network_id', 'enable_snat', 'external_fixed_ips']"},
		{"unknown key", `{"router": {"external_gateway_info": {"network_id": "` + netID + `", "qos_policy_id": "x"}}}`, "~Validation of dictionary's keys failed"},
		{"bad network", `{"router": {"external_gateway_info": {"network_id": "x"}}}`, "Invalid input for external_gateway_info. Reason: 'x' is not a valid UUID."},
		{"bad snat", `{"router": {"external_gateway_info": {"network_id": "` + netID + `", "enable_snat": "maybe"}}}`, "~'maybe' cannot be converted to boolean"},
		{"bad ips", `{"router": {"external_gateway_info": {"network_id": "` + netID + `", "external_fixed_ips": [{"ip_address": "1.2.3"}]}}}`, "~'1.2.3' is not a valid IP address"},
		{"not a dict", `{"router": {"external_gateway_info": "public"}}`, "~is not a dictionary"},
		{"routes on create", `{"router": {"routes": []}}`, "Attribute 'routes' not allowed in POST"},
		{"status", `{"router": {"status": "DOWN"}}`, "Attribute 'status' not allowed in POST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decode(RouterSpec, tc.body, Create)
			wantAPIErr(t, err, 400, tc.msg)
		})
	}
}

func TestRouterView(t *testing.T) {
	r := &Router{
		Standard:     Standard{ID: subID2, ProjectID: "p", Name: "r1", Tags: []string{}, RevisionNumber: 3},
		AdminStateUp: true, Status: StatusActive,
		GatewayNetworkID: netID, GatewayPortID: subID, EnableSNAT: true,
		GatewayIPs: []FixedIP{{SubnetID: subID, IPAddress: netip.MustParseAddr("203.0.113.5")}},
		Routes:     []HostRoute{{Destination: netip.MustParsePrefix("10.9.0.0/16"), NextHop: netip.MustParseAddr("10.0.0.9")}},
		Interfaces: []string{sgID}, Placement: L3Placement{Host: "network1"},
	}
	jsonEqual(t, r.View(), `{"id": "`+subID2+`", "project_id": "p", "tenant_id": "p", "name": "r1", "description": "", "tags": [],
		"created_at": "", "updated_at": "", "revision_number": 3, "admin_state_up": true, "status": "ACTIVE",
		"external_gateway_info": {"network_id": "`+netID+`", "enable_snat": true, "external_fixed_ips": [{"subnet_id": "`+subID+`", "ip_address": "203.0.113.5"}]},
		"routes": [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.9"}]}`)
	r.GatewayNetworkID = ""
	if v := r.View(); v["external_gateway_info"] != nil {
		t.Errorf("gateway of a router without one: %v", v["external_gateway_info"])
	}
}

func TestFloatingIPViewHasNoName(t *testing.T) {
	f := &FloatingIP{Standard: Standard{ID: subID, ProjectID: "p", Tags: []string{}}, FloatingNetworkID: netID,
		FloatingIPAddress: netip.MustParseAddr("203.0.113.7"), FloatingPortID: sgID, Status: StatusDown}
	jsonEqual(t, f.View(), `{"id": "`+subID+`", "project_id": "p", "tenant_id": "p", "description": "", "tags": [],
		"created_at": "", "updated_at": "", "revision_number": 0, "floating_network_id": "`+netID+`",
		"floating_ip_address": "203.0.113.7", "router_id": null, "port_id": null, "fixed_ip_address": null,
		"status": "DOWN", "port_details": null}`)
	_, _, err := decode(FloatingIPSpec, `{"floatingip": {"floating_network_id": "`+netID+`", "name": "x"}}`, Create)
	wantAPIErr(t, err, 400, "Unrecognized attribute(s) 'name'")
	_, _, err = decode(FloatingIPSpec, `{"floatingip": {}}`, Create)
	wantAPIErr(t, err, 400, "Failed to parse request. Required attribute 'floating_network_id' not specified")
	_, _, err = decode(FloatingIPSpec, `{"floatingip": {"floating_network_id": "`+netID+`"}}`, Update)
	wantAPIErr(t, err, 400, "Cannot update read-only attribute floating_network_id")
}

func TestPortForwardingPortsDecode(t *testing.T) {
	base := `"protocol": "TCP", "internal_port_id": "` + subID + `", "internal_ip_address": "10.0.0.5"`
	for _, tc := range []struct {
		name, extra  string
		internal, ex PortRange
	}{
		{"single ports", `"internal_port": 80, "external_port": "8080"`, PortRange{80, 80}, PortRange{8080, 8080}},
		{"ranges", `"internal_port_range": "80:90", "external_port_range": "8080:8090"`, PortRange{80, 90}, PortRange{8080, 8090}},
		{"range of one", `"internal_port_range": "22", "external_port_range": "2200:2210"`, PortRange{22, 22}, PortRange{2200, 2210}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := decodeOne(t, PortForwardingSpec, `{"port_forwarding": {`+base+`, `+tc.extra+`}}`, Create)
			if f["protocol"] != "tcp" {
				t.Errorf("protocol = %v", f["protocol"])
			}
			var pf PortForwarding
			if err := pf.ApplyPorts(f); err != nil {
				t.Fatal(err)
			}
			if pf.Internal != tc.internal || pf.External != tc.ex {
				t.Errorf("ports %v -> %v, want %v -> %v", pf.External, pf.Internal, tc.ex, tc.internal)
			}
		})
	}
	for _, tc := range []struct{ name, extra, msg string }{
		{"port too large", `"internal_port": 70000`, "Invalid input for internal_port. Reason: '70000' is too large - must be no larger than '65535'."},
		{"port zero", `"external_port": 0`, "~'0' is too small"},
		{"range reversed", `"external_port_range": "90:80"`, "Invalid input for external_port_range. Reason: First port in a port range must be lower than the second port."},
		{"range of three", `"external_port_range": "1:2:3"`, "~Port range must be two integers separated by a colon"},
		{"range open", `"external_port_range": "80:"`, "~Port range must be two integers separated by a colon"},
		{"range junk", `"external_port_range": "a:b"`, "~Invalid port: a"},
		{"range zero", `"external_port_range": "0:5"`, "~Invalid port: 0, the port must be in the range [1, 65535]"},
		{"protocol", `"protocol": "icmp"`, "~'icmp' is not in ['tcp', 'udp']"},
		{"IPv6 internal", `"internal_ip_address": "fd00::5"`, "~is not a valid IPv4 address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"port_forwarding": {` + base + `, ` + tc.extra + `}}`
			if tc.name == "protocol" || tc.name == "IPv6 internal" {
				body = `{"port_forwarding": {"internal_port_id": "` + subID + `", "internal_ip_address": "10.0.0.5", "protocol": "tcp", ` + tc.extra + `}}`
			}
			m, err := DecodeJSON(stringsReader(body))
			if err != nil {
				t.Fatal(err)
			}
			_, err = PortForwardingSpec.Decode(m["port_forwarding"].(map[string]any), Create)
			wantAPIErr(t, err, 400, tc.msg)
		})
	}
	f := decodeOne(t, PortForwardingSpec, `{"port_forwarding": {`+base+`, "internal_port": 80, "internal_port_range": "80:81", "external_port": 1}}`, Create)
	var pf PortForwarding
	if err := pf.ApplyPorts(f); err == nil {
		t.Error("internal_port and internal_port_range both accepted")
	}
}

func TestPortForwardingView(t *testing.T) {
	pf := &PortForwarding{Standard: Standard{ID: subID, ProjectID: "p", Description: "web"}, FloatingIPID: netID, Protocol: "tcp",
		InternalPortID: sgID, InternalIPAddress: netip.MustParseAddr("10.0.0.5"), Internal: PortRange{80, 80}, External: PortRange{8080, 8080}}
	jsonEqual(t, pf.View(), `{"id": "`+subID+`", "project_id": "p", "tenant_id": "p", "description": "web", "protocol": "tcp",
		"internal_port_id": "`+sgID+`", "internal_ip_address": "10.0.0.5", "internal_port": 80, "external_port": 8080,
		"internal_port_range": "80:80", "external_port_range": "8080:8080"}`)
	pf.Internal, pf.External = PortRange{80, 90}, PortRange{8080, 8090}
	v := pf.View()
	if v["internal_port"] != nil || v["external_port"] != nil || v["external_port_range"] != "8080:8090" {
		t.Errorf("range view: %v", v)
	}
	if !(PortRange{80, 90}).Overlaps(PortRange{90, 95}) || (PortRange{80, 90}).Overlaps(PortRange{91, 95}) {
		t.Error("Overlaps is wrong at the edges")
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
