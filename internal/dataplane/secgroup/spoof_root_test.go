package secgroup

import (
	"net"
	"net/netip"
	"testing"
)

// openGroup allows everything in and out, so that only anti-spoofing can
// stop a packet.
func openGroup(id string) Group {
	return Group{ID: id, Stateful: true, Rules: []Rule{
		{ID: id + "-e4", Direction: Egress, Ethertype: IPv4}, {ID: id + "-e6", Direction: Egress, Ethertype: IPv6},
		{ID: id + "-i4", Direction: Ingress, Ethertype: IPv4}, {ID: id + "-i6", Direction: Ingress, Ethertype: IPv6},
	}}
}

// TestSpoofedSourceIPDroppedAllowedPairPasses: with every rule open, a
// VM's packets from an address that is not its own are dropped, from an
// allowed-address pair they pass, and from its own they pass.
func TestSpoofedSourceIPDroppedAllowedPairPasses(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqspf")
	a := h.vm(t, "brqspf", 1, "10.60.0.1/24")
	b := h.vm(t, "brqspf", 1, "10.60.0.2/24")
	settle(t, h.NS, a.NS, b.NS)
	a.addAddr(t, "10.60.0.66/24") // not the port's
	a.addAddr(t, "10.60.0.77/24") // an allowed-address pair
	pa := a.withGroups("open")
	pa.AllowedPairs = []AddressPair{{Prefix: pfx("10.60.0.77/32")}}
	h.reconcile(t, Desired{Ports: []Port{pa, b.withGroups("open")}, Groups: map[string]Group{"open": openGroup("open")}})
	b.listen(t, 80)
	c, err := a.dial(ip4("10.60.0.77"), b.ip(0), 80, okWait)
	if err != nil {
		t.Fatalf("from the allowed pair: %v", err)
	}
	c.Close()
	if c, err := a.dial(ip4("10.60.0.66"), b.ip(0), 80, blockWait); err == nil {
		c.Close()
		t.Fatal("a connection from a spoofed source address got through")
	}
	c, err = a.dial(a.ip(0), b.ip(0), 80, okWait)
	if err != nil {
		t.Fatalf("from the port's own address: %v", err)
	}
	c.Close()
}

// TestSpoofedMACDropped: a VM that changes its MAC is cut off, ARP
// included, until it takes its own back; an allowed-address pair with its
// own MAC lets it use another.
func TestSpoofedMACDropped(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqmac")
	a := h.vm(t, "brqmac", 1, "10.61.0.1/24")
	b := h.vm(t, "brqmac", 1, "10.61.0.2/24")
	settle(t, h.NS, a.NS, b.NS)
	d := Desired{Ports: []Port{a.withGroups("open"), b.withGroups("open")}, Groups: map[string]Group{"open": openGroup("open")}}
	h.reconcile(t, d)
	b.listen(t, 80)
	a.canConnect(t, b.ip(0), 80)

	other := net.HardwareAddr{0x02, 0x61, 0, 0, 0, 0x99}
	setMAC(t, a, other)
	flushNeigh(t, b)
	a.cannotConnect(t, b.ip(0), 80)

	pa := a.withGroups("open")
	pa.AllowedPairs = []AddressPair{{Prefix: netip.PrefixFrom(a.ip(0), 32), MAC: other}}
	d.Ports[0] = pa
	h.reconcile(t, d)
	a.canConnect(t, b.ip(0), 80)

	d.Ports[0] = a.withGroups("open")
	h.reconcile(t, d)
	flushNeigh(t, b)
	a.cannotConnect(t, b.ip(0), 80)
	setMAC(t, a, a.port.MAC)
	a.canConnect(t, b.ip(0), 80)
}

func setMAC(t *testing.T, v *vm, mac net.HardwareAddr) {
	t.Helper()
	eth, err := v.H.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.H.LinkSetHardwareAddr(eth, mac); err != nil {
		t.Fatal(err)
	}
}

// flushNeigh forgets the namespace's neighbours, so that the next packet
// resolves them again (with the MAC a peer has now).
func flushNeigh(t *testing.T, v *vm) {
	t.Helper()
	eth, err := v.H.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	neighs, err := v.H.NeighList(eth.Attrs().Index, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		_ = v.H.NeighDel(&n)
	}
}

// TestFakeDHCPServerReachesNobody: a VM sending DHCP replies (UDP 67 to
// 68) reaches no other VM, while the same datagram from another source
// port does, with the same open rules.
func TestFakeDHCPServerReachesNobody(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqdhcp")
	rogue := h.vm(t, "brqdhcp", 1, "10.62.0.1/24")
	victim := h.vm(t, "brqdhcp", 1, "10.62.0.2/24")
	settle(t, h.NS, rogue.NS, victim.NS)
	h.reconcile(t, Desired{Ports: []Port{rogue.withGroups("open"), victim.withGroups("open")}, Groups: map[string]Group{"open": openGroup("open")}})
	client := victim.udpListen(t, "0.0.0.0", 68)
	rogue.udpSend(t, "0.0.0.0", 6767, 68, "control", "255.255.255.255")
	if !received(client, "control", okWait) {
		t.Fatal("the control datagram (source port 6767) did not arrive")
	}
	rogue.udpSend(t, "0.0.0.0", 67, 68, "offer", "255.255.255.255", victim.ip(0).String())
	if received(client, "offer", blockWait) {
		t.Fatal("a DHCP reply from a VM reached another VM")
	}
}

// TestPortSecurityDisabledPassesEverything: a port without port security
// sends from any address and receives anything; the same port with port
// security and no group does neither.
func TestPortSecurityDisabledPassesEverything(t *testing.T) {
	h := newHost(t)
	h.bridge(t, "brqnps")
	free := h.vm(t, "brqnps", 1, "10.63.0.1/24")
	peer := h.vm(t, "brqnps", 1, "10.63.0.2/24")
	settle(t, h.NS, free.NS, peer.NS)
	free.addAddr(t, "10.63.0.66/24")
	pf := free.port
	pf.PortSecurity = false
	d := Desired{Ports: []Port{pf, peer.withGroups("open")}, Groups: map[string]Group{"open": openGroup("open")}}
	h.reconcile(t, d)
	free.listen(t, 9999)
	peer.listen(t, 80)
	peer.canConnect(t, free.ip(0), 9999)
	if c, err := free.dial(ip4("10.63.0.66"), peer.ip(0), 80, okWait); err != nil {
		t.Fatalf("spoofed source without port security: %v", err)
	} else {
		c.Close()
	}

	d.Ports[0] = free.port // port security, no groups
	h.reconcile(t, d)
	peer.cannotConnect(t, free.ip(0), 9999)
	if c, err := free.dial(ip4("10.63.0.66"), peer.ip(0), 80, blockWait); err == nil {
		c.Close()
		t.Fatal("spoofed source passed with port security on")
	}
}
