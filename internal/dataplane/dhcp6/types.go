package dhcp6

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"time"
)

// DefaultLeaseTime is the valid and preferred lifetime of an address when a
// Reservation leaves LeaseTime zero: Neutron's dhcp_lease_duration default.
const DefaultLeaseTime = 24 * time.Hour

// Infinite, as a LeaseTime, gives addresses that never expire.
const Infinite time.Duration = -1

// Reservation is what one client MAC is given.
type Reservation struct {
	// MAC is the port's mac_address.
	MAC net.HardwareAddr
	// Addrs are the port's fixed IPs in dhcpv6-stateful subnets, handed out
	// in the client's IA_NA. None: the client gets configuration only.
	Addrs []netip.Addr
	// DNS are the name servers (option 23).
	DNS []netip.Addr
	// DomainSearch is the search list (option 24), usually the DNS domain.
	DomainSearch []string
	// LeaseTime is the addresses' lifetime: zero means DefaultLeaseTime,
	// negative Infinite.
	LeaseTime time.Duration
}

// Table is everything one network's server answers from; SetTable replaces
// it as a whole.
type Table struct {
	// Hosts maps MACKey(mac) to the client's reservation.
	Hosts map[string]Reservation
	// Stateful are the dhcpv6-stateful subnets this server is authoritative
	// for: addresses inside them that a client holds without a reservation
	// are answered with zero lifetimes.
	Stateful []netip.Prefix
}

// MACKey is the key of a hardware address in Table.Hosts.
func MACKey(mac net.HardwareAddr) string { return mac.String() }

// NewTable builds a Table from the stateful prefixes and reservations.
func NewTable(stateful []netip.Prefix, rs ...Reservation) Table {
	t := Table{Stateful: stateful, Hosts: make(map[string]Reservation, len(rs))}
	for _, r := range rs {
		t.Hosts[MACKey(r.MAC)] = r
	}
	return t
}

// Empty reports whether the table serves nobody: no server is needed.
func (t Table) Empty() bool { return len(t.Hosts) == 0 && len(t.Stateful) == 0 }

func (t Table) clone() Table {
	return Table{Hosts: maps.Clone(t.Hosts), Stateful: append([]netip.Prefix(nil), t.Stateful...)}
}

// authoritative reports whether ip lies in a stateful subnet of this server.
func (t Table) authoritative(ip netip.Addr) bool {
	for _, p := range t.Stateful {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Validate reports problems the server would paper over.
func (t Table) Validate() error {
	var errs []error
	for key, r := range t.Hosts {
		if key != MACKey(r.MAC) {
			errs = append(errs, fmt.Errorf("host %s: keyed under %q", r.MAC, key))
		}
		for _, a := range r.Addrs {
			if !a.Is6() || a.Is4In6() {
				errs = append(errs, fmt.Errorf("host %s: address %s is not IPv6", key, a))
			}
		}
	}
	for _, p := range t.Stateful {
		if !p.IsValid() || !p.Addr().Is6() {
			errs = append(errs, fmt.Errorf("stateful subnet %s is not an IPv6 prefix", p))
		}
	}
	return errors.Join(errs...)
}

// lifetimes returns the preferred and valid lifetimes and T1/T2 for a lease.
func lifetimes(lease time.Duration) (valid, t1, t2 time.Duration) {
	switch {
	case lease == 0:
		lease = DefaultLeaseTime
	case lease < 0:
		// 0xffffffff seconds is "infinity"; T1/T2 of 0 leave renewal to the client.
		return time.Duration(0xffffffff) * time.Second, 0, 0
	}
	return lease, lease / 2, lease * 4 / 5
}
