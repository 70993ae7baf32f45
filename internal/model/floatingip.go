package model

import (
	"net/netip"
	"slices"
)

// FloatingIP is an address of an external network that floats to a fixed
// IP of a tenant port (1:1 NAT), or carries port forwardings.
type FloatingIP struct {
	Standard
	FloatingNetworkID string     `json:"floating_network_id"`
	FloatingIPAddress netip.Addr `json:"floating_ip_address"`
	// FloatingPortID is the port holding the address on the external
	// network (device_owner network:floatingip, device_id the FIP's id).
	FloatingPortID string `json:"floating_port_id"`
	// RouterID is the router that does the NAT: set while associated, or
	// while port forwardings use the address.
	RouterID       string     `json:"router_id,omitempty"`
	PortID         string     `json:"port_id,omitempty"`
	FixedIPAddress netip.Addr `json:"fixed_ip_address"`
	Status         string     `json:"status"`
}

// FloatingIPSpec is the attribute map of floating IPs (router,
// fip-port-details).
var FloatingIPSpec = &Spec{
	Singular: "floatingip",
	Plural:   "floatingips",
	// Floating IPs have no name.
	Attrs: append(slices.DeleteFunc(standardAttrs(), func(a *Attr) bool { return a.Name == "name" }),
		&Attr{Name: "floating_network_id", Post: true, Required: true, Parse: ParseUUID},
		&Attr{Name: "floating_ip_address", Post: true, Parse: ParseIPOrNull},
		// subnet_id is input only: the subnet to take the address from.
		&Attr{Name: "subnet_id", Post: true, Parse: ParseUUIDOrNull},
		&Attr{Name: "port_id", Post: true, Put: true, Parse: ParseUUIDOrNull},
		&Attr{Name: "fixed_ip_address", Post: true, Put: true, Parse: ParseIPOrNull},
		&Attr{Name: "router_id"},
		&Attr{Name: "status"},
		&Attr{Name: "port_details"},
	),
}

// View implements Object. port_details is null here; the service fills it
// in from the associated port when rendering.
func (f *FloatingIP) View() map[string]any {
	m := make(map[string]any, 18)
	f.Standard.view(m)
	delete(m, "name")
	m["floating_network_id"] = f.FloatingNetworkID
	m["floating_ip_address"] = addrOrNull(f.FloatingIPAddress)
	m["router_id"] = stringOrNull(f.RouterID)
	m["port_id"] = stringOrNull(f.PortID)
	m["fixed_ip_address"] = addrOrNull(f.FixedIPAddress)
	m["status"] = f.Status
	m["port_details"] = nil
	return m
}

// PortDetails renders a port as fip-port-details shows it.
func PortDetails(p *Port) map[string]any {
	return map[string]any{
		"name": p.Name, "network_id": p.NetworkID, "mac_address": p.MACAddress, "admin_state_up": p.AdminStateUp,
		"status": p.Status, "device_id": p.DeviceID, "device_owner": p.DeviceOwner,
	}
}
