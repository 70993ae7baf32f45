// Package agentapi defines the objects the server and the host agents
// exchange under /agent/v1 (docs/design/agent-api.md): a host's view of its
// desired state, the events that change it, and the agent's status reports.
package agentapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/netip"
)

// Version is the path element of this protocol version.
const Version = "v1"

// Kinds of objects in a host view.
const (
	KindNetwork = "network"
	KindPort    = "port"
	KindSubnet  = "subnet"
	// KindRouter is a router scheduled to the host.
	KindRouter = "router"
	// KindSecurityGroup is a security group used by a local port, or one
	// such a group's rules name as remote group.
	KindSecurityGroup = "security_group"
	// KindAddressGroup is an address group a used group's rules name.
	KindAddressGroup = "address_group"
	// KindInstance is the instance metadata of a device with ports on a
	// network the host serves metadata for.
	KindInstance = "instance"
)

// Event types of a watch stream.
const (
	EventPut      = "put"
	EventDelete   = "delete"
	EventBookmark = "bookmark"
	// EventResync ends a stream whose log moved past the watcher: list again.
	EventResync = "resync"
)

// Network is a network with ports on the host.
type Network struct {
	ID              string `json:"id"`
	ProjectID       string `json:"project_id"`
	Type            string `json:"type"`
	PhysicalNetwork string `json:"physical_network"`
	SegmentationID  uint32 `json:"segmentation_id"`
	MTU             int    `json:"mtu"`
	AdminStateUp    bool   `json:"admin_state_up"`
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string     `json:"subnet_id"`
	IPAddress netip.Addr `json:"ip_address"`
}

// HostRoute is a static route a subnet hands to its hosts.
type HostRoute struct {
	Destination netip.Prefix `json:"destination"`
	NextHop     netip.Addr   `json:"nexthop"`
}

// Subnet is a subnet of a network in the view, with what DHCP serves.
type Subnet struct {
	ID              string       `json:"id"`
	NetworkID       string       `json:"network_id"`
	IPVersion       int          `json:"ip_version"`
	CIDR            netip.Prefix `json:"cidr"`
	GatewayIP       netip.Addr   `json:"gateway_ip"` // invalid: none
	EnableDHCP      bool         `json:"enable_dhcp"`
	DNSNameservers  []netip.Addr `json:"dns_nameservers"`
	HostRoutes      []HostRoute  `json:"host_routes"`
	IPv6AddressMode string       `json:"ipv6_address_mode"`
	IPv6RAMode      string       `json:"ipv6_ra_mode"`
}

// DHCPOpt is an extra DHCP option of a port (Neutron's extra_dhcp_opts).
type DHCPOpt struct {
	OptName   string `json:"opt_name"`
	OptValue  string `json:"opt_value"`
	IPVersion int    `json:"ip_version"`
}

// Port is a port bound to the host (Local) or, for l2population, a port of
// one of its networks bound elsewhere, with that host's VXLAN endpoint.
// A local port whose DeviceOwner is "network:dhcp" is a DHCP port the host
// serves: the agent builds its qdhcp namespace and answers DHCP there for
// every port of the network.
type Port struct {
	ID           string     `json:"id"`
	NetworkID    string     `json:"network_id"`
	MACAddress   string     `json:"mac_address"`
	FixedIPs     []FixedIP  `json:"fixed_ips"`
	DeviceOwner  string     `json:"device_owner"`
	DeviceID     string     `json:"device_id"`
	AdminStateUp bool       `json:"admin_state_up"`
	Host         string     `json:"host"`
	VTEP         netip.Addr `json:"vtep"`
	Local        bool       `json:"local"`
	// Unbound ports of a network the host serves DHCP for appear too
	// (Host empty, no VTEP): they get leases before they are bound.
	ExtraDHCPOpts []DHCPOpt `json:"extra_dhcp_opts,omitempty"`
	DNSName       string    `json:"dns_name,omitempty"`
	// Firewall of the port (local ports only): PortSecurity off means no
	// filtering and no anti-spoofing.
	PortSecurity        bool          `json:"port_security_enabled,omitempty"`
	SecurityGroups      []string      `json:"security_groups,omitempty"`
	AllowedAddressPairs []AddressPair `json:"allowed_address_pairs,omitempty"`
	// ProjectID is the port's project (every port of the view).
	ProjectID string `json:"project_id,omitempty"`
}

// AddressPair is an allowed address pair of a port.
type AddressPair struct {
	IPAddress  netip.Prefix `json:"ip_address"`
	MACAddress string       `json:"mac_address,omitempty"`
}

// Router is a router the server scheduled to the host, with what its
// namespace must do. Its interface and gateway ports are local ports of the
// view (bound to the host), which give their MACs, addresses and networks.
type Router struct {
	ID           string `json:"id"`
	ProjectID    string `json:"project_id"`
	AdminStateUp bool   `json:"admin_state_up"`
	// Interfaces are the router's network:router_interface port IDs.
	Interfaces []string `json:"interfaces"`
	// GatewayPort is its network:router_gateway port ID; empty: none.
	GatewayPort  string           `json:"gateway_port,omitempty"`
	EnableSNAT   bool             `json:"enable_snat"`
	Routes       []HostRoute      `json:"routes,omitempty"`
	FloatingIPs  []FloatingIP     `json:"floating_ips,omitempty"`
	PortForwards []PortForwarding `json:"port_forwardings,omitempty"`
}

// FloatingIP is a floating IP associated through a router.
type FloatingIP struct {
	ID         string     `json:"id"`
	FloatingIP netip.Addr `json:"floating_ip_address"`
	FixedIP    netip.Addr `json:"fixed_ip_address"`
	PortID     string     `json:"port_id"`
}

// PortForwarding is a DNAT of a floating IP's port(s) to a fixed IP's.
type PortForwarding struct {
	ID              string     `json:"id"`
	FloatingIP      netip.Addr `json:"floating_ip_address"`
	Protocol        string     `json:"protocol"`
	ExternalPortMin uint16     `json:"external_port_min"`
	ExternalPortMax uint16     `json:"external_port_max"`
	InternalIP      netip.Addr `json:"internal_ip_address"`
	InternalPortMin uint16     `json:"internal_port_min"`
	InternalPortMax uint16     `json:"internal_port_max"`
}

// SecurityGroup is a group with its rules and, when some used group names
// it as remote group, its members' addresses cloud-wide.
type SecurityGroup struct {
	ID       string              `json:"id"`
	Name     string              `json:"name,omitempty"`
	Stateful bool                `json:"stateful"`
	Rules    []SecurityGroupRule `json:"rules"`
	Members  []netip.Prefix      `json:"members,omitempty"`
}

// SecurityGroupRule is one rule, normalised as the API stores it.
type SecurityGroupRule struct {
	ID                   string       `json:"id"`
	Direction            string       `json:"direction"`
	Ethertype            string       `json:"ethertype"`
	Protocol             string       `json:"protocol,omitempty"`
	PortRangeMin         *int         `json:"port_range_min,omitempty"`
	PortRangeMax         *int         `json:"port_range_max,omitempty"`
	RemoteIPPrefix       netip.Prefix `json:"remote_ip_prefix,omitzero"`
	RemoteGroupID        string       `json:"remote_group_id,omitempty"`
	RemoteAddressGroupID string       `json:"remote_address_group_id,omitempty"`
}

// AddressGroup is an address group named by a used rule.
type AddressGroup struct {
	ID        string         `json:"id"`
	Addresses []netip.Prefix `json:"addresses"`
}

// Instance is what the metadata service answers a device's VMs.
type Instance struct {
	DeviceID         string            `json:"device_id"`
	ProjectID        string            `json:"project_id"`
	Name             string            `json:"name,omitempty"`
	Hostname         string            `json:"hostname,omitempty"`
	UserData         []byte            `json:"user_data,omitempty"`
	Meta             map[string]string `json:"meta,omitempty"`
	PublicKeys       map[string]string `json:"public_keys,omitempty"`
	AvailabilityZone string            `json:"availability_zone,omitempty"`
}

// View is a host's whole desired state at a store revision.
type View struct {
	Host     string    `json:"host"`
	Revision int64     `json:"revision"`
	Networks []Network `json:"networks"`
	Subnets  []Subnet  `json:"subnets"`
	Ports    []Port    `json:"ports"`
	// Routers, SecurityGroups, AddressGroups and Instances are empty until
	// the features that fill them are deployed; agents ignore kinds they do
	// not know.
	Routers        []Router        `json:"routers,omitempty"`
	SecurityGroups []SecurityGroup `json:"security_groups,omitempty"`
	AddressGroups  []AddressGroup  `json:"address_groups,omitempty"`
	Instances      []Instance      `json:"instances,omitempty"`
}

// Event is one line of a watch stream. Object holds a Network or Port for
// puts (decode by Kind); ID names the object of a delete.
type Event struct {
	Type     string          `json:"type"`
	Kind     string          `json:"kind,omitempty"`
	Revision int64           `json:"revision"`
	ID       string          `json:"id,omitempty"`
	Object   json.RawMessage `json:"object,omitempty"`
}

// AgentInfo is what an agent reports of itself with every heartbeat.
type AgentInfo struct {
	Binary           string         `json:"binary"`
	LocalIP          netip.Addr     `json:"local_ip"`
	Roles            []string       `json:"roles"`
	StartedAt        string         `json:"started_at"`
	AvailabilityZone string         `json:"availability_zone"`
	Configurations   map[string]any `json:"configurations"`
	// Capabilities the server's binding relies on.
	InterfaceMappings map[string]string `json:"interface_mappings"`
	VLANSupported     bool              `json:"vlan_supported"`
}

// Status is an agent's report: its heartbeat and its ports' wiring.
type Status struct {
	Agent AgentInfo         `json:"agent"`
	Ports map[string]string `json:"ports,omitempty"`
}

// Token is the bearer token of host under the deployment secret.
func Token(secret []byte, host string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("vland-agent/" + Version + "/" + host))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ValidToken reports whether token is host's, in constant time.
func ValidToken(secret []byte, host, token string) bool {
	return hmac.Equal([]byte(Token(secret, host)), []byte(token))
}
