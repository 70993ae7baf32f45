package agent

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/vland/vland/internal/agentapi"
	"github.com/vland/vland/internal/dataplane/l2"
	"github.com/vland/vland/internal/dataplane/secgroup"
)

// Device owners whose ports the firewall leaves alone, as Neutron does:
// DHCP and router ports are the cloud's own.
func firewalled(p agentapi.Port) bool {
	return p.Local && !strings.HasPrefix(p.DeviceOwner, "network:")
}

// firewallDesired translates the view into the secgroup package's terms:
// every local port that is not the cloud's own (DHCP, router), with its
// groups, port security and allowed address pairs; the groups and the
// remote-group members and address groups their rules need. Each network
// gets a conntrack zone from zones, which keeps them stable across
// reconciles (a zone that changed would orphan the network's connections).
func firewallDesired(groups map[string]agentapi.SecurityGroup, addrGroups map[string]agentapi.AddressGroup, ports map[string]agentapi.Port, zones *zoneMap) secgroup.Desired {
	d := secgroup.Desired{Groups: map[string]secgroup.Group{}, RemoteGroups: map[string][]netip.Prefix{}, AddressGroups: map[string][]netip.Prefix{}}
	nets := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(ports)) {
		p := ports[id]
		if !firewalled(p) {
			continue
		}
		mac, err := net.ParseMAC(p.MACAddress)
		if err != nil {
			continue
		}
		nets[p.NetworkID] = true
		sp := secgroup.Port{
			ID: p.ID, Device: l2.TapName(p.ID), Bridge: l2.BridgeName(p.NetworkID), Zone: zones.get(p.NetworkID),
			MAC: mac, PortSecurity: p.PortSecurity, Groups: slices.Clone(p.SecurityGroups),
		}
		for _, f := range p.FixedIPs {
			sp.IPs = append(sp.IPs, f.IPAddress)
		}
		for _, ap := range p.AllowedAddressPairs {
			pair := secgroup.AddressPair{Prefix: ap.IPAddress}
			if m, err := net.ParseMAC(ap.MACAddress); err == nil {
				pair.MAC = m
			}
			sp.AllowedPairs = append(sp.AllowedPairs, pair)
		}
		d.Ports = append(d.Ports, sp)
	}
	for id, g := range groups {
		out := secgroup.Group{ID: id, Stateful: g.Stateful}
		for _, r := range g.Rules {
			out.Rules = append(out.Rules, secgroup.Rule{
				ID: r.ID, Direction: r.Direction, Ethertype: r.Ethertype, Protocol: r.Protocol,
				PortMin: r.PortRangeMin, PortMax: r.PortRangeMax, RemoteIPPrefix: r.RemoteIPPrefix,
				RemoteGroupID: r.RemoteGroupID, RemoteAddressGroupID: r.RemoteAddressGroupID,
			})
		}
		d.Groups[id] = out
		if g.Members != nil {
			d.RemoteGroups[id] = slices.Clone(g.Members)
		}
	}
	for id, ag := range addrGroups {
		d.AddressGroups[id] = slices.Clone(ag.Addresses)
	}
	zones.keep(nets)
	return d
}

// zoneMap gives each network on the host a conntrack zone. A network's
// zone is where a hash of its ID points (1..65535), moving to the next free
// one on a collision, so an agent that restarts finds the zones its
// predecessor used, and the connections they track survive it; a zone that
// changed would make every open connection of the network invalid. While
// the agent runs, a network keeps its zone as long as it stays.
type zoneMap struct {
	byNet map[string]uint16
}

// preferredZone is a network's zone when nothing collides with it.
func preferredZone(network string) uint16 {
	h := fnv.New32a()
	h.Write([]byte(network))
	return uint16(1 + h.Sum32()%65535)
}

func (z *zoneMap) get(network string) uint16 {
	if z.byNet == nil {
		z.byNet = map[string]uint16{}
	}
	if v, ok := z.byNet[network]; ok {
		return v
	}
	used := map[uint16]bool{}
	for _, v := range z.byNet {
		used[v] = true
	}
	v := preferredZone(network)
	for used[v] {
		v = v%65535 + 1
	}
	z.byNet[network] = v
	return v
}

// keep forgets the networks not in nets.
func (z *zoneMap) keep(nets map[string]bool) {
	for n := range z.byNet {
		if !nets[n] {
			delete(z.byNet, n)
		}
	}
}

// newFirewall turns on br_netfilter for the host namespace (bridged
// packets must reach the inet hooks the stateful rules live in) and opens
// the firewall's manager.
func newFirewall(ns string, log *slog.Logger) (*secgroup.Manager, error) {
	if err := secgroup.EnableBridgeNetfilter(ns); err != nil {
		return nil, fmt.Errorf("security groups need br_netfilter: %w", err)
	}
	return secgroup.NewManager(secgroup.Options{NetNS: ns, Logger: log})
}
