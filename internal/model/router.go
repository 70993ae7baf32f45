package model

// Router is a virtual router: interfaces on tenant subnets, an optional
// gateway on an external network with SNAT, and extra routes.
type Router struct {
	Standard
	AdminStateUp bool   `json:"admin_state_up"`
	Status       string `json:"status"`
	// GatewayNetworkID is the external network of the gateway ("": none).
	GatewayNetworkID string `json:"gw_network_id,omitempty"`
	// GatewayPortID is the gateway's port (device_owner network:router_gateway).
	GatewayPortID string `json:"gw_port_id,omitempty"`
	// GatewayIPs mirror the gateway port's fixed IPs, so the router renders
	// without reading its port.
	GatewayIPs []FixedIP   `json:"gw_ips,omitempty"`
	EnableSNAT bool        `json:"enable_snat"`
	Routes     []HostRoute `json:"routes"`
	Interfaces []string    `json:"interfaces,omitempty"` // interface port ids, in attachment order
	Placement  L3Placement `json:"placement"`
}

// L3Placement is where the L3 scheduler put a router (l3_agent_scheduler).
// It is internal: views never show it; /v2.0/routers/{id}/l3-agents does.
type L3Placement struct {
	// Host is the network host whose L3 agent hosts the router ("": none).
	Host string `json:"host,omitempty"`
	// Manual is set when an admin removed the router from its agent: the
	// scheduler then leaves it unhosted until an admin adds it again, as
	// Neutron's remove_router_from_l3_agent does.
	Manual bool `json:"manual,omitempty"`
}

// Device owners of the ports routers and floating IPs hold.
const (
	OwnerRouterInterface = "network:router_interface"
	OwnerRouterGateway   = "network:router_gateway"
	OwnerFloatingIP      = "network:floatingip"
)

// GatewayRequest is a request's external_gateway_info. A zero NetworkID
// (null or {}) removes the gateway.
type GatewayRequest struct {
	NetworkID string
	// EnableSNAT is nil when not given.
	EnableSNAT *bool
	// FixedIPs are external_fixed_ips; HasFixedIPs tells an empty list from none.
	FixedIPs    []FixedIPRequest
	HasFixedIPs bool
}

// RouterSpec is the attribute map of routers (router, ext-gw-mode, extraroute).
var RouterSpec = &Spec{
	Singular: "router",
	Plural:   "routers",
	Attrs: append(standardAttrs(),
		&Attr{Name: "admin_state_up", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "status"},
		&Attr{Name: "external_gateway_info", Post: true, Put: true, Parse: parseGatewayInfo},
		// extraroute: routes are set by update only (allow_post False).
		&Attr{Name: "routes", Put: true, Parse: parseHostRoutes},
	),
}

// parseGatewayInfo is neutron-lib's type:dict_or_nodata with the keys of
// ext-gw-mode: network_id (required), enable_snat, external_fixed_ips.
func parseGatewayInfo(v any) (any, error) {
	if v == nil {
		return GatewayRequest{}, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, reason("'%s' is not a dictionary", show(v))
	}
	if len(m) == 0 {
		return GatewayRequest{}, nil
	}
	m, err := dictWith(m, []string{"network_id"}, "enable_snat", "external_fixed_ips")
	if err != nil {
		return nil, err
	}
	var g GatewayRequest
	id, err := ParseUUID(m["network_id"])
	if err != nil {
		return nil, err
	}
	g.NetworkID = id.(string)
	if s, ok := m["enable_snat"]; ok {
		b, err := ParseBool(s)
		if err != nil {
			return nil, err
		}
		snat := b.(bool)
		g.EnableSNAT = &snat
	}
	if ips, ok := m["external_fixed_ips"]; ok {
		if ips == nil {
			ips = []any{}
		}
		r, err := parseFixedIPs(ips)
		if err != nil {
			return nil, err
		}
		g.FixedIPs, g.HasFixedIPs = r.([]FixedIPRequest), true
	}
	return g, nil
}

// ParseRoutes validates a list of extra routes (the body of
// add_extraroutes and remove_extraroutes) as the routes attribute does.
func ParseRoutes(v any) ([]HostRoute, error) {
	r, err := parseHostRoutes(v)
	if err != nil {
		return nil, err
	}
	return r.([]HostRoute), nil
}

// Apply sets the plain attributes of f on r (not the gateway or routes,
// which the service validates against other objects).
func (r *Router) Apply(f Fields) {
	r.ApplyStandard(f)
	if v, ok := f["admin_state_up"]; ok {
		r.AdminStateUp = v.(bool)
	}
}

// View implements Object.
func (r *Router) View() map[string]any {
	m := make(map[string]any, 16)
	r.Standard.view(m)
	m["admin_state_up"] = r.AdminStateUp
	m["status"] = r.Status
	m["external_gateway_info"] = r.GatewayView()
	m["routes"] = RoutesView(r.Routes)
	return m
}

// GatewayView renders external_gateway_info: null without a gateway.
func (r *Router) GatewayView() any {
	if r.GatewayNetworkID == "" {
		return nil
	}
	ips := make([]any, len(r.GatewayIPs))
	for i, f := range r.GatewayIPs {
		ips[i] = map[string]any{"subnet_id": f.SubnetID, "ip_address": f.IPAddress.String()}
	}
	return map[string]any{"network_id": r.GatewayNetworkID, "enable_snat": r.EnableSNAT, "external_fixed_ips": ips}
}

// RoutesView renders extra routes as the API shows them.
func RoutesView(routes []HostRoute) []any {
	out := make([]any, len(routes))
	for i, rt := range routes {
		out[i] = map[string]any{"destination": rt.Destination.String(), "nexthop": rt.NextHop.String()}
	}
	return out
}

// HasInterface reports whether port id is one of the router's interfaces.
func (r *Router) HasInterface(id string) bool { return contains(r.Interfaces, id) }
