package l2

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/dataplane/nlutil"
)

// syncFDB makes the vxlan device's own ("self") forwarding entries exactly
// the wanted ones. Every self entry of a vxlan-* device is the Manager's: the
// device is created with nolearning and without a default remote, so the
// kernel adds none. Entries the bridge keeps for the port (NTF_MASTER) are
// left alone. Stale entries go first, so a MAC that moved to another VTEP is
// re-added rather than given a second destination.
func (r *run) syncFDB(dev netlink.Link, want []FDBSpec) error {
	idx := dev.Attrs().Index
	name := dev.Attrs().Name
	var list []netlink.Neigh
	if err := nlutil.RetryDump(func() (err error) {
		list, err = r.h.NeighList(idx, unix.AF_BRIDGE)
		return err
	}); err != nil {
		return fmt.Errorf("list fdb of %s: %w", name, err)
	}
	have := map[string]netlink.Neigh{}
	for _, n := range list {
		if n.Flags&netlink.NTF_SELF == 0 || n.Flags&netlink.NTF_MASTER != 0 || n.IP == nil {
			continue
		}
		dst, _ := netip.AddrFromSlice(n.IP)
		have[fdbKey(n.HardwareAddr, dst.Unmap())] = n
	}
	wanted := map[string]FDBSpec{}
	for _, f := range want {
		wanted[fdbKey(f.MAC, f.Dst)] = f
	}
	var errs []error
	for _, k := range sortedKeys(have) {
		if _, ok := wanted[k]; ok {
			continue
		}
		n := have[k]
		del := &netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: n.State, HardwareAddr: n.HardwareAddr, IP: n.IP,
		}
		if err := r.h.NeighDel(del); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete fdb %s dst %s on %s: %w", n.HardwareAddr, n.IP, name, err))
			continue
		}
		r.changed("delete fdb %s dst %s dev %s", n.HardwareAddr, n.IP, name)
	}
	for _, k := range sortedKeys(wanted) {
		if _, ok := have[k]; ok {
			continue
		}
		f := wanted[k]
		// Append, not replace: all-zeros entries for several VTEPs must coexist.
		add := &netlink.Neigh{
			LinkIndex: idx, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT, HardwareAddr: f.MAC, IP: net.IP(f.Dst.AsSlice()),
		}
		if err := r.h.NeighAppend(add); err != nil {
			errs = append(errs, fmt.Errorf("add fdb %s dst %s on %s: %w", f.MAC, f.Dst, name, err))
			continue
		}
		r.changed("add fdb %s dst %s dev %s", f.MAC, f.Dst, name)
	}
	return errors.Join(errs...)
}

func fdbKey(mac net.HardwareAddr, dst netip.Addr) string {
	return mac.String() + " " + dst.String()
}

// syncNeighbors makes the permanent IPv4 and IPv6 neighbour entries of the
// vxlan device exactly the wanted ones; with the device's proxy flag they
// answer ARP and neighbour solicitations for remote ports locally. Entries in
// other states are the kernel's and left alone unless an address is wanted.
func (r *run) syncNeighbors(dev netlink.Link, want []NeighSpec) error {
	idx := dev.Attrs().Index
	name := dev.Attrs().Name
	have := map[netip.Addr]netlink.Neigh{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		var list []netlink.Neigh
		if err := nlutil.RetryDump(func() (err error) {
			list, err = r.h.NeighList(idx, fam)
			return err
		}); err != nil {
			return fmt.Errorf("list neighbours of %s: %w", name, err)
		}
		for _, n := range list {
			ip, ok := netip.AddrFromSlice(n.IP)
			if ok && n.State&netlink.NUD_PERMANENT != 0 {
				have[ip.Unmap()] = n
			}
		}
	}
	wanted := map[netip.Addr]NeighSpec{}
	for _, n := range want {
		wanted[n.IP] = n
	}
	var errs []error
	for _, ip := range slices.SortedFunc(maps.Keys(have), netip.Addr.Compare) {
		if _, ok := wanted[ip]; ok {
			continue
		}
		n := have[ip]
		del := &netlink.Neigh{LinkIndex: idx, Family: n.Family, IP: n.IP, State: n.State}
		if err := r.h.NeighDel(del); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete neighbour %s on %s: %w", ip, name, err))
			continue
		}
		r.changed("delete neigh %s dev %s", ip, name)
	}
	for _, ip := range slices.SortedFunc(maps.Keys(wanted), netip.Addr.Compare) {
		w := wanted[ip]
		if n, ok := have[ip]; ok && n.HardwareAddr.String() == w.MAC.String() {
			continue
		}
		fam := netlink.FAMILY_V4
		if ip.Is6() {
			fam = netlink.FAMILY_V6
		}
		set := &netlink.Neigh{
			LinkIndex: idx, Family: fam, State: netlink.NUD_PERMANENT,
			IP: net.IP(ip.AsSlice()), HardwareAddr: w.MAC,
		}
		if err := r.h.NeighSet(set); err != nil {
			errs = append(errs, fmt.Errorf("set neighbour %s lladdr %s on %s: %w", ip, w.MAC, name, err))
			continue
		}
		r.changed("set neigh %s lladdr %s dev %s", ip, w.MAC, name)
	}
	return errors.Join(errs...)
}
