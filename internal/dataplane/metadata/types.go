package metadata

import (
	"net"
	"net/netip"
)

// Instance is everything the service answers for one caller; the agent
// computes it from its desired state (the instance-metadata resource keyed
// by the ports' device_id, and the ports, subnets and floating IPs it
// already knows). The Server never changes an Instance it was given.
type Instance struct {
	ID               string // device_id of the ports (a UUID): meta_data.json uuid, EC2 instance-id
	Name             string // display name
	Hostname         string // as the guest should call itself (the agent adds any DNS domain)
	AvailabilityZone string // "": JSON null, EC2 empty
	ProjectID        string // the project owning the ports
	UserData         []byte // nil: user_data and user-data answer 404
	Meta             map[string]string
	PublicKeys       map[string]string // key name -> OpenSSH public key
	LaunchIndex      int
	// Ports are the instance's ports, in the order the guest sees its
	// NICs: Ports[0] is the primary one (EC2 mac, device-number 0).
	Ports          []Port
	SecurityGroups []string // names, in the order EC2 security-groups lists them
	// LocalIPv4 is the fixed address the request came from; invalid means
	// the request's source if it is IPv4, else the first fixed IPv4 of Ports.
	LocalIPv4 netip.Addr
	// PublicIPv4 is the floating IP of that address; invalid means the
	// first FloatingIP of Ports, if any.
	PublicIPv4 netip.Addr

	// Optional EC2 details that vland does not track; Nova's values for a
	// plain KVM instance are used when they are empty.
	ImageID      string            // Glance image UUID: ami-id ("ami-00000000" when empty)
	InstanceType string            // flavor name: instance-type
	BlockDevices map[string]string // EC2 block-device-mapping; nil: {ami: vda, root: /dev/vda}
}

// Port is one of the instance's Neutron ports as network_data.json and the
// EC2 network/interfaces tree describe it.
type Port struct {
	ID         string // port UUID: link vif_id, EC2 interface-id
	MAC        net.HardwareAddr
	NetworkID  string
	MTU        int    // the network's MTU; 0: unknown (JSON null)
	VIFType    string // binding:vif_type; "": "bridge", what vland binds
	FixedIPs   []FixedIP
	FloatingIP netip.Addr // the floating IP associated with the first fixed IPv4, if any
}

// FixedIP is one fixed address of a port with the subnet it belongs to.
type FixedIP struct {
	Address netip.Addr
	Subnet  Subnet
}

// Subnet is what network_data.json needs of a Neutron subnet.
type Subnet struct {
	ID         string
	CIDR       netip.Prefix // its family is the subnet's ip_version
	Gateway    netip.Addr   // invalid: no gateway (no default route)
	DNS        []netip.Addr // dns_nameservers
	HostRoutes []Route
	// DHCP is enable_dhcp. vland serves DHCP for such a subnet, so, as Nova
	// does when the subnet has a DHCP port, network_data.json tells the
	// guest to use DHCP (ipv4_dhcp / ipv6_dhcp) and leaves the MTU to it.
	DHCP bool
	// IPv6AddressMode is ipv6_address_mode: "", "slaac",
	// "dhcpv6-stateful" or "dhcpv6-stateless".
	IPv6AddressMode string
}

// Route is a subnet host route.
type Route struct {
	Destination netip.Prefix
	NextHop     netip.Addr
}

// Lookup identifies the caller of a listener from the listener's context
// key (the router or network it serves) and the TCP source address of the
// request, never from anything in the request itself. The address is plain
// (IPv4-mapped addresses unmapped, no IPv6 zone: a link-local caller is
// known by the listener's key). Implementations must be safe for
// concurrent use and fast: they run on every request.
type Lookup interface {
	Instance(key string, src netip.Addr) (Instance, bool)
}

// LookupFunc adapts a function to Lookup.
type LookupFunc func(key string, src netip.Addr) (Instance, bool)

// Instance calls f.
func (f LookupFunc) Instance(key string, src netip.Addr) (Instance, bool) { return f(key, src) }
