package dhcp

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultLeaseTime is the lease offered when a Reservation leaves LeaseTime
// zero: Neutron's dhcp_lease_duration default of 86400 seconds.
const DefaultLeaseTime = 24 * time.Hour

// Infinite, as a Reservation's LeaseTime, offers a lease that never expires
// (Neutron's dhcp_lease_duration = -1): option 51 is 0xffffffff and no renewal
// or rebinding time is sent.
const Infinite time.Duration = -1

// Route is a classless static route handed out in option 121.
type Route struct {
	// Dst is the destination network.
	Dst netip.Prefix
	// NextHop is the gateway; the zero Addr (or 0.0.0.0) means on-link.
	NextHop netip.Addr
}

// Option is an extra DHCP option, Neutron's extra_dhcp_opts entry: it adds an
// option or overrides one the server would compute.
type Option struct {
	// Name is dnsmasq's option name ("tftp-server", "bootfile-name",
	// "option:mtu"), or a decimal code ("66", "option:66"), optionally after
	// dnsmasq tags ("tag:ipxe,bootfile-name"). When empty, Code is used.
	Name string
	// Code is the option number, used only when Name is empty.
	Code uint8
	// Value is the option's value as dnsmasq would read it in a
	// --dhcp-option line: addresses, numbers, hex bytes or text. An empty
	// value sends no option at all for the options the server fills in
	// itself (netmask, broadcast, router, DNS, domain, hostname), and an
	// empty option for the others.
	Value string
}

// Reservation is what one client MAC is given: a port's fixed IPv4 address
// and the options of its subnet.
type Reservation struct {
	// MAC is the client's hardware address, the port's mac_address.
	MAC net.HardwareAddr
	// IP is the address handed out, the port's fixed IP.
	IP netip.Addr
	// Prefix is the subnet the address belongs to (its length gives the
	// netmask and broadcast address).
	Prefix netip.Prefix
	// Router is the subnet's gateway_ip; the zero Addr omits option 3 and
	// the default route of option 121.
	Router netip.Addr
	// DNS are the name servers (option 6); none omits the option.
	DNS []netip.Addr
	// HostRoutes are the subnet's host_routes, sent as classless static
	// routes (options 121 and 249) with the default route via Router added.
	HostRoutes []Route
	// MTU is the network's MTU (option 26); below 68 it is omitted.
	MTU int
	// DomainName is option 15, the network's DNS domain; empty omits it.
	DomainName string
	// Hostname is option 12 ("host-10-0-0-5" or the port's dns_name); empty
	// omits it.
	Hostname string
	// LeaseTime is option 51: zero means DefaultLeaseTime, Infinite (or any
	// negative value) a lease that never expires.
	LeaseTime time.Duration
	// ExtraOptions are the port's extra_dhcp_opts for IPv4; later entries win
	// over earlier ones for the same option.
	ExtraOptions []Option
}

// Table is everything one network's server answers from. It is immutable once
// handed to a Server: SetTable replaces it as a whole.
type Table struct {
	// Servers are the DHCP port's own addresses, each with its subnet's
	// prefix length (10.0.0.2/24). The one inside a client's subnet is the
	// server identifier (option 54) the client sees, and requests for
	// addresses inside these subnets from clients without a reservation get
	// a NAK, as from dnsmasq in authoritative mode.
	Servers []netip.Prefix
	// Hosts maps MACKey(mac) to the client's reservation.
	Hosts map[string]Reservation
}

// MACKey is the key of a hardware address in Table.Hosts: its lower-case,
// colon-separated form, as Neutron writes mac_address.
func MACKey(mac net.HardwareAddr) string { return mac.String() }

// DefaultHostname is the name Neutron gives a port without dns_name:
// "host-" and its address with dots (or colons) turned into dashes,
// host-10-0-0-5 for 10.0.0.5.
func DefaultHostname(ip netip.Addr) string {
	return "host-" + strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
}

// NewTable builds a Table from the DHCP port's addresses and a list of
// reservations, keyed by their MACs; a later reservation for the same MAC
// replaces an earlier one.
func NewTable(servers []netip.Prefix, rs ...Reservation) Table {
	t := Table{Servers: servers, Hosts: make(map[string]Reservation, len(rs))}
	for _, r := range rs {
		t.Hosts[MACKey(r.MAC)] = r
	}
	return t
}

// clone returns a Table whose Hosts map and Servers slice the caller can no
// longer change under a running server.
func (t Table) clone() Table {
	return Table{
		Servers: append([]netip.Prefix(nil), t.Servers...),
		Hosts:   maps.Clone(t.Hosts),
	}
}

// serverFor is the server identifier for a client address: the DHCP port's
// address in the same subnet, else its first IPv4 address. It is invalid when
// the table has no IPv4 server address at all.
func (t Table) serverFor(ip netip.Addr) netip.Addr {
	var first netip.Addr
	for _, s := range t.Servers {
		if !s.Addr().Is4() {
			continue
		}
		if s.Contains(ip) {
			return s.Addr()
		}
		if !first.IsValid() {
			first = s.Addr()
		}
	}
	return first
}

// isServer reports whether ip is one of the DHCP port's addresses.
func (t Table) isServer(ip netip.Addr) bool {
	for _, s := range t.Servers {
		if s.Addr() == ip {
			return true
		}
	}
	return false
}

// authoritative reports whether ip lies in a subnet this server answers for,
// which decides whether a stranger asking for it gets a NAK or silence.
func (t Table) authoritative(ip netip.Addr) bool {
	for _, s := range t.Servers {
		if s.Masked().Contains(ip) {
			return true
		}
	}
	return false
}

// Validate reports every problem of the table that Reply would paper over: a
// reservation keyed under another MAC, an address outside its subnet or not
// IPv4, and extra options that cannot be encoded (Reply skips those). The
// agent logs the result; a Server serves a table with problems as well as it
// can rather than not at all.
func (t Table) Validate() error {
	var errs []error
	if len(t.Servers) == 0 {
		errs = append(errs, errors.New("no server address: replies need a server identifier"))
	}
	for _, s := range t.Servers {
		if !s.IsValid() || !s.Addr().Is4() {
			errs = append(errs, fmt.Errorf("server address %s is not an IPv4 prefix", s))
		}
	}
	for key, r := range t.Hosts {
		if key != MACKey(r.MAC) {
			errs = append(errs, fmt.Errorf("host %s: keyed under %q", r.MAC, key))
		}
		if err := r.validate(); err != nil {
			errs = append(errs, fmt.Errorf("host %s: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// validate checks one reservation, including that its extra options encode.
func (r Reservation) validate() error {
	var errs []error
	if !r.IP.Is4() {
		errs = append(errs, fmt.Errorf("address %s is not IPv4", r.IP))
	}
	if !r.Prefix.IsValid() || !r.Prefix.Addr().Is4() || !r.Prefix.Contains(r.IP) {
		errs = append(errs, fmt.Errorf("address %s is not inside subnet %s", r.IP, r.Prefix))
	}
	if r.Router.IsValid() && !r.Router.Is4() {
		errs = append(errs, fmt.Errorf("router %s is not IPv4", r.Router))
	}
	for _, o := range r.ExtraOptions {
		if _, err := parseOption(o, netip.IPv4Unspecified()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
