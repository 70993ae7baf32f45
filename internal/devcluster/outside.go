package devcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/namedns"
)

// The outside: a dev cloud's external (provider) network and the piece of
// "internet" on it. The fabric holds a second bridge, <p>-ext; each network
// host gets eth2 on it (mapped to physical network "public"), and namespace
// <p>-outside has eth0 there with 203.0.113.1, the external subnet's gateway,
// where an HTTP server answers every GET with the caller's source address.
// 203.0.113.0/24 (TEST-NET-3) exists only inside the cluster's namespaces:
// this machine's own uplink is 192.0.2.0/24, which nothing here touches.
const (
	// ExternalNetwork is the name of the cloud's external network.
	ExternalNetwork = "public"
	// ExternalPhysnet is the physical network it is a flat network on.
	ExternalPhysnet = "public"
	// hostExtIface is the network hosts' interface on the external network.
	hostExtIface = "eth2"
	// outsideIface is the outside namespace's interface.
	outsideIface = "eth0"
	// OutsidePort is the port of the outside's HTTP server.
	OutsidePort = 80
)

var (
	// ExternalCIDR is the external subnet.
	ExternalCIDR = netip.MustParsePrefix("203.0.113.0/24")
	// OutsideIP is the outside's address, the external subnet's gateway.
	OutsideIP = netip.MustParseAddr("203.0.113.1")
	// externalPool is what floating IPs and router gateways are taken from.
	externalPool = [2]string{"203.0.113.10", "203.0.113.250"}
)

func extBridge(p string) string             { return p + "-ext" }
func outsideNS(p string) string             { return p + "-outside" }
func outsideLink(p string) string           { return p + "-out" }
func hostExtLink(p, host string) string     { return p + "x" + host }
func (c *Cluster) OutsideNamespace() string { return outsideNS(c.st.Prefix) }

// buildOutside creates the external bridge in the fabric and the outside
// namespace on it.
func buildOutside(prefix string) error {
	fh, err := namedns.Handle(fabricNS(prefix))
	if err != nil {
		return err
	}
	defer fh.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = extBridge(prefix), underlayMTU
	if err := fh.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		return fmt.Errorf("create bridge %s: %w", la.Name, err)
	}
	if err := linkUp(fh, la.Name); err != nil {
		return err
	}
	ns := outsideNS(prefix)
	if err := namedns.Create(ns); err != nil {
		return err
	}
	oh, err := namedns.Handle(ns)
	if err != nil {
		return err
	}
	defer oh.Close()
	if err := linkUp(oh, "lo"); err != nil {
		return err
	}
	if err := plugInto(fh, prefix, oh, outsideIface, outsideLink(prefix)); err != nil {
		return err
	}
	if err := addAddr(oh, outsideIface, netip.PrefixFrom(OutsideIP, ExternalCIDR.Bits())); err != nil {
		return err
	}
	return linkUp(oh, outsideIface)
}

// plugInto creates a veth with end inner in the namespace of h and end
// outer on the fabric's external bridge, both up.
func plugInto(fh *netlink.Handle, prefix string, h *netlink.Handle, inner, outer string) error {
	fabric, err := netns.GetFromName(fabricNS(prefix))
	if err != nil {
		return fmt.Errorf("open fabric namespace: %w", err)
	}
	defer fabric.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = inner, underlayMTU
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: outer, PeerNamespace: netlink.NsFd(fabric)}); err != nil {
		return fmt.Errorf("create %s paired with %s: %w", inner, outer, err)
	}
	br, err := fh.LinkByName(extBridge(prefix))
	if err != nil {
		return err
	}
	l, err := fh.LinkByName(outer)
	if err != nil {
		return err
	}
	if err := fh.LinkSetMaster(l, br); err != nil {
		return fmt.Errorf("enslave %s to %s: %w", outer, br.Attrs().Name, err)
	}
	return linkUp(fh, outer)
}

// buildHostExternal gives a network host its eth2 on the external bridge
// (up, no address: the agent enslaves it to the external network's bridge).
func buildHostExternal(prefix string, host Host) error {
	fh, err := namedns.Handle(fabricNS(prefix))
	if err != nil {
		return err
	}
	defer fh.Close()
	hh, err := namedns.Handle(host.Namespace)
	if err != nil {
		return err
	}
	defer hh.Close()
	if err := plugInto(fh, prefix, hh, hostExtIface, hostExtLink(prefix, host.Name)); err != nil {
		return err
	}
	return linkUp(hh, hostExtIface)
}

// setExternalLink cuts a network host off the external network, or back.
func setExternalLink(prefix string, host Host, up bool) error {
	if host.Role != RoleNetwork {
		return nil
	}
	h, err := namedns.Handle(fabricNS(prefix))
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(hostExtLink(prefix, host.Name))
	if err != nil {
		return fmt.Errorf("external link of %s: %w", host.Name, err)
	}
	if up {
		err = h.LinkSetUp(l)
	} else {
		err = h.LinkSetDown(l)
	}
	if err != nil {
		return fmt.Errorf("set external link of %s up=%v: %w", host.Name, up, err)
	}
	return nil
}

// startOutsideServer starts `vland dev outside serve` in the outside
// namespace (its --dir lets Down find it, like every cluster process).
func (c *Cluster) startOutsideServer(ctx context.Context) error {
	st := c.st
	args := []string{"dev", "outside", "serve", "--dir", st.Dir, "--listen", netip.AddrPortFrom(OutsideIP, OutsidePort).String()}
	logPath := filepath.Join(st.Dir, "logs", "outside.log")
	p, err := startDetachedIn(outsideNS(st.Prefix), st.Binary, args, nil, logPath)
	if err != nil {
		return fmt.Errorf("outside HTTP server: %w", err)
	}
	st.Outside = p
	if err := st.save(); err != nil {
		return err
	}
	// Answering means listening: ask it from inside the outside namespace.
	return poll(ctx, 10*time.Second, 50*time.Millisecond, "outside HTTP server", func() (bool, error) {
		if !p.Running() {
			return false, permanent{fmt.Errorf("outside HTTP server exited: %s", tail(logPath, 1000))}
		}
		out, err := c.OutsideExec("curl", "-sS", "-m", "2", fmt.Sprintf("http://%s:%d/", OutsideIP, OutsidePort))
		return err == nil && strings.TrimSpace(out) == OutsideIP.String(), nil
	})
}

// ServeOutside is the outside's HTTP server: every GET (any path) is
// answered with the caller's source address and a newline. It runs until
// ctx ends; it is what `vland dev outside serve` runs.
func ServeOutside(ctx context.Context, listen string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				host = r.RemoteAddr
			}
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintln(w, host)
			log.Info("GET", "from", r.RemoteAddr, "path", r.URL.Path)
		}),
	}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	log.Info("outside HTTP server listening", "addr", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// OutsideExec runs a command in the outside namespace and returns its
// combined output.
func (c *Cluster) OutsideExec(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("no command")
	}
	cmd := exec.Command(args[0], args[1:]...)
	var out []byte
	err := namedns.Do(outsideNS(c.st.Prefix), func() error {
		var err error
		out, err = cmd.CombinedOutput()
		return err
	})
	return string(out), err
}

// createExternalNetwork makes the cloud's external network as admin: flat
// on physnet public, router:external, with a subnet in 203.0.113.0/24 whose
// gateway is the outside and no DHCP (Neutron's devstack "public").
func (c *Cluster) createExternalNetwork(ctx context.Context) error {
	var out struct {
		Network network `json:"network"`
	}
	body := map[string]any{"network": map[string]any{
		"name": ExternalNetwork, "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": ExternalPhysnet,
	}}
	if err := c.Admin().Do(ctx, http.MethodPost, "/v2.0/networks", body, &out); err != nil {
		return fmt.Errorf("create external network: %w", err)
	}
	sub := map[string]any{"subnet": map[string]any{
		"network_id": out.Network.ID, "name": ExternalNetwork + "-subnet", "ip_version": 4,
		"cidr": ExternalCIDR.String(), "gateway_ip": OutsideIP.String(), "enable_dhcp": false,
		"allocation_pools": []map[string]string{{"start": externalPool[0], "end": externalPool[1]}},
	}}
	if err := c.Admin().Do(ctx, http.MethodPost, "/v2.0/subnets", sub, nil); err != nil {
		return fmt.Errorf("create external subnet: %w", err)
	}
	c.log.Info("external network ready", "network", out.Network.ID, "cidr", ExternalCIDR, "outside", OutsideIP)
	return nil
}

// StartInOutside starts cmd inside the outside namespace.
func (c *Cluster) StartInOutside(cmd *exec.Cmd) error {
	if c.st.Outside.PID == 0 {
		return errors.New("this cluster has no outside (it has no network host)")
	}
	return namedns.Do(outsideNS(c.st.Prefix), cmd.Start)
}
