package l2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/vland/vland/internal/dataplane/nlutil"
)

// ensureBridge creates the bridge if missing and fixes its MTU and up state in
// place. A non-bridge link under the bridge's name is an error, not replaced:
// only bridges named brq* are the Manager's.
func (r *run) ensureBridge(spec LinkSpec) (netlink.Link, error) {
	l := r.links[spec.Name]
	if l != nil && l.Type() != "bridge" {
		return nil, fmt.Errorf("%s exists and is a %s, not a bridge", spec.Name, l.Type())
	}
	if l == nil {
		// Created without an MTU: setMTU below then goes through the bridge's
		// change_mtu, which pins it, so the kernel does not re-derive it from
		// the ports (to 1500 when the last port leaves, for instance).
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: spec.Name}}
		if err := r.h.LinkAdd(br); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", spec.Name, err)
		}
		r.changed("create bridge %s", spec.Name)
		var err error
		if l, err = r.refresh(spec.Name); err != nil {
			return nil, err
		}
		// Like Neutron's agent, keep the host off tenant networks: without an
		// IPv6 link-local address the bridge sends no router solicitation or
		// MLD report into them and cannot be reached there. Done before the
		// first up, when the address would be generated.
		if err := r.h.LinkSetIP6AddrGenMode(l, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
			return nil, fmt.Errorf("bridge %s: disable IPv6 address generation: %w", spec.Name, err)
		}
	}
	if err := r.setMTU(l, spec.MTU); err != nil {
		return nil, err
	}
	if err := r.setUp(l); err != nil {
		return nil, err
	}
	return l, nil
}

// ensureVXLAN creates the vxlan device if missing, recreates it if an
// attribute the kernel cannot change differs, and wires it to the bridge.
func (r *run) ensureVXLAN(spec LinkSpec, brIndex, underlay int) (netlink.Link, error) {
	l := r.links[spec.Name]
	if l != nil {
		v, ok := l.(*netlink.Vxlan)
		if !ok {
			return nil, fmt.Errorf("%s exists and is a %s, not a vxlan device", spec.Name, l.Type())
		}
		if why := vxlanMismatch(v, spec, underlay); why != "" {
			if err := r.deleteLink(l, "to recreate it: "+why); err != nil {
				return nil, err
			}
			l = nil
		}
	}
	if l == nil {
		v := &netlink.Vxlan{
			LinkAttrs:    netlink.LinkAttrs{Name: spec.Name, MTU: spec.MTU, MasterIndex: brIndex},
			VxlanId:      int(spec.VNI),
			VtepDevIndex: underlay,
			SrcAddr:      net.IP(spec.Local.AsSlice()),
			Port:         spec.Port,
			Learning:     spec.Learning,
			Proxy:        spec.Proxy,
			// No outer UDP checksum over IPv4 (the kernel's and Neutron's
			// default; the inner packet keeps its own): computing it for
			// every segment cost throughput. IPv6 requires it.
			UDPCSum: spec.Local.Is6(),
		}
		if err := r.h.LinkAdd(v); err != nil {
			return nil, fmt.Errorf("create vxlan %s (id %d local %s dstport %d mtu %d): %w",
				spec.Name, spec.VNI, spec.Local, spec.Port, spec.MTU, err)
		}
		r.changed("create vxlan %s id %d local %s dstport %d dev-index %d mtu %d",
			spec.Name, spec.VNI, spec.Local, spec.Port, underlay, spec.MTU)
		var err error
		if l, err = r.refresh(spec.Name); err != nil {
			return nil, err
		}
	}
	if err := r.wirePort(l, spec, brIndex); err != nil {
		if errors.Is(err, unix.EINVAL) {
			err = fmt.Errorf("%w (the underlay must carry the network MTU plus 50 bytes of VXLAN headers)", err)
		}
		return nil, err
	}
	return l, nil
}

// vxlanMismatch says which immutable attribute of an existing vxlan device
// differs from the spec, or "" if none does. The underlay device is compared
// only when known, so a VTEP address that is briefly missing does not cause
// a recreation.
func vxlanMismatch(v *netlink.Vxlan, spec LinkSpec, underlay int) string {
	local, _ := netip.AddrFromSlice(v.SrcAddr)
	switch {
	case v.VxlanId != int(spec.VNI):
		return fmt.Sprintf("id %d, want %d", v.VxlanId, spec.VNI)
	case local.Unmap() != spec.Local:
		return fmt.Sprintf("local %s, want %s", local, spec.Local)
	case v.Port != spec.Port:
		return fmt.Sprintf("dstport %d, want %d", v.Port, spec.Port)
	case v.Learning != spec.Learning:
		return fmt.Sprintf("learning %t, want %t", v.Learning, spec.Learning)
	case v.Proxy != spec.Proxy:
		return fmt.Sprintf("proxy %t, want %t", v.Proxy, spec.Proxy)
	case v.FlowBased:
		return "external (flow-based) mode"
	case v.Group != nil && !v.Group.IsUnspecified():
		return fmt.Sprintf("group or remote %s, want none", v.Group)
	case underlay != 0 && v.VtepDevIndex != underlay:
		return fmt.Sprintf("device index %d, want %d", v.VtepDevIndex, underlay)
	}
	return ""
}

// ensureVLAN creates the 802.1Q sub-interface if missing, recreates it if its
// parent or VLAN id differ, and wires it to the bridge.
func (r *run) ensureVLAN(spec LinkSpec, brIndex int) error {
	parent := r.links[spec.Parent]
	if parent == nil {
		return fmt.Errorf("physical interface %s not found", spec.Parent)
	}
	l := r.links[spec.Name]
	if l != nil {
		v, ok := l.(*netlink.Vlan)
		if !ok {
			return fmt.Errorf("%s exists and is a %s, not a vlan device", spec.Name, l.Type())
		}
		if v.VlanId != int(spec.VLANID) || v.ParentIndex != parent.Attrs().Index {
			why := fmt.Sprintf("vlan %d on index %d, want %d on %s", v.VlanId, v.ParentIndex, spec.VLANID, spec.Parent)
			if err := r.deleteLink(l, "to recreate it: "+why); err != nil {
				return err
			}
			l = nil
		}
	}
	if l == nil {
		v := &netlink.Vlan{
			LinkAttrs: netlink.LinkAttrs{
				Name: spec.Name, MTU: spec.MTU, ParentIndex: parent.Attrs().Index, MasterIndex: brIndex,
			},
			VlanId: int(spec.VLANID),
		}
		if err := r.h.LinkAdd(v); err != nil {
			return fmt.Errorf("create vlan %s: %w", spec.Name, err)
		}
		r.changed("create vlan %s link %s id %d mtu %d", spec.Name, spec.Parent, spec.VLANID, spec.MTU)
		var err error
		if l, err = r.refresh(spec.Name); err != nil {
			return err
		}
	}
	return r.wirePort(l, spec, brIndex)
}

// wirePort makes a link a port of the bridge: MTU first (so the bridge never
// adjusts its own to a port's), then master, then up.
func (r *run) wirePort(l netlink.Link, spec LinkSpec, brIndex int) error {
	if err := r.setMTU(l, spec.MTU); err != nil {
		return err
	}
	if a := l.Attrs(); a.MasterIndex != brIndex {
		if err := r.h.LinkSetMasterByIndex(l, brIndex); err != nil {
			return fmt.Errorf("enslave %s to %s: %w", a.Name, spec.Master, err)
		}
		r.changed("set %s master %s", a.Name, spec.Master)
		a.MasterIndex = brIndex
	}
	return r.setUp(l)
}

func (r *run) setMTU(l netlink.Link, mtu int) error {
	a := l.Attrs()
	if mtu == 0 || a.MTU == mtu {
		return nil
	}
	if err := r.h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set mtu %d on %s (now %d): %w", mtu, a.Name, a.MTU, err)
	}
	r.changed("set %s mtu %d (was %d)", a.Name, mtu, a.MTU)
	a.MTU = mtu
	return nil
}

func (r *run) setUp(l netlink.Link) error {
	if isUp(l) {
		return nil
	}
	a := l.Attrs()
	if err := r.h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", a.Name, err)
	}
	r.changed("set %s up", a.Name)
	a.Flags |= net.FlagUp
	return nil
}

// refresh reads one link again, after creating it, to learn its index.
func (r *run) refresh(name string) (netlink.Link, error) {
	l, err := r.h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	r.links[name] = l
	return l, nil
}

func (r *run) deleteLink(l netlink.Link, why string) error {
	name := l.Attrs().Name
	if err := nlutil.IgnoreNotFound(r.h.LinkDel(l)); err != nil {
		return fmt.Errorf("delete %s %s: %w", l.Type(), name, err)
	}
	r.changed("delete %s %s (%s)", l.Type(), name, why)
	delete(r.links, name)
	return nil
}

// cleanup removes what the Manager owns and the plan no longer wants: bridges
// named brq* (with the VLAN sub-interfaces enslaved to them) and vxlan-*
// devices; and takes taps that no network wants off the bridges that stay.
// Objects of networks that are in the plan but failed are kept. Errors are
// per object and joined; one failure does not stop the rest.
func (r *run) cleanup(plan Plan) error {
	wantLink := map[string]bool{}
	for _, np := range plan.Networks {
		wantLink[np.Bridge] = true
		if np.Device != "" {
			wantLink[np.Device] = true
		}
	}
	taps := plan.desiredTaps()
	var errs []error
	// Taps first: a bridge deleted below releases its ports by itself.
	for _, name := range sortedKeys(r.links) {
		l := r.links[name]
		if !strings.HasPrefix(name, TapPrefix) || l.Attrs().MasterIndex == 0 || taps[name] != "" {
			continue
		}
		br := r.byIndex(l.Attrs().MasterIndex)
		if br == nil || !ownedBridge(br) || !wantLink[br.Attrs().Name] {
			continue
		}
		if err := r.h.LinkSetNoMaster(l); err != nil {
			errs = append(errs, fmt.Errorf("release stale %s from %s: %w", name, br.Attrs().Name, err))
			continue
		}
		r.changed("release %s from %s (no network wants it)", name, br.Attrs().Name)
	}
	for _, name := range sortedKeys(r.links) {
		l := r.links[name]
		if l == nil || wantLink[name] {
			continue // deleted along the way, or wanted
		}
		switch {
		case ownedBridge(l):
			for _, v := range r.vlanPortsOf(l) {
				errs = append(errs, r.deleteLink(v, "its bridge "+name+" is no longer wanted"))
			}
			errs = append(errs, r.deleteLink(l, "no network wants it"))
		case strings.HasPrefix(name, VXLANPrefix) && l.Type() == "vxlan":
			errs = append(errs, r.deleteLink(l, "no network wants it"))
		}
	}
	return errors.Join(errs...)
}

func ownedBridge(l netlink.Link) bool {
	return strings.HasPrefix(l.Attrs().Name, BridgePrefix) && l.Type() == "bridge"
}

// vlanPortsOf returns the ports of a bridge that are VLAN sub-interfaces the
// Manager created: of kind vlan and named <parent>.<vid> after their parent.
func (r *run) vlanPortsOf(br netlink.Link) []netlink.Link {
	var out []netlink.Link
	for _, name := range sortedKeys(r.links) {
		v, ok := r.links[name].(*netlink.Vlan)
		if !ok || v.MasterIndex != br.Attrs().Index {
			continue
		}
		parent := r.byIndex(v.ParentIndex)
		if parent != nil && name == parent.Attrs().Name+"."+strconv.Itoa(v.VlanId) {
			out = append(out, v)
		}
	}
	return out
}
