package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vland/vland/internal/model"
	"github.com/vland/vland/internal/segments"
	"github.com/vland/vland/internal/server"
	"github.com/vland/vland/internal/service"
)

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	cfg := server.Config{Service: service.DefaultConfig()}
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9696", "address the API listens on")
	fs.StringVar(&cfg.DataDir, "data-dir", "/var/lib/vland", "directory of the embedded etcd and generated secrets")
	endpoints := fs.String("etcd-endpoints", "", "comma-separated external etcd endpoints (default: embedded etcd)")
	fs.StringVar(&cfg.EtcdPrefix, "etcd-prefix", "/vland", "key prefix in etcd")
	fs.StringVar(&cfg.Auth, "auth", server.AuthBuiltin, "identity mode: builtin, keystone or noauth")
	fs.StringVar(&cfg.AdminPassword, "admin-password", os.Getenv("VLAND_ADMIN_PASSWORD"), "bootstrap admin password (env VLAND_ADMIN_PASSWORD)")
	fs.DurationVar(&cfg.TokenTTL, "token-ttl", 12*time.Hour, "lifetime of builtin identity tokens")
	fs.StringVar(&cfg.Keystone.URL, "keystone-url", "", "external Keystone v3 URL (auth=keystone)")
	fs.StringVar(&cfg.Keystone.Username, "keystone-username", "neutron", "service user (auth=keystone)")
	fs.StringVar(&cfg.Keystone.Password, "keystone-password", os.Getenv("VLAND_KEYSTONE_PASSWORD"), "service password (auth=keystone; env VLAND_KEYSTONE_PASSWORD)")
	fs.StringVar(&cfg.Keystone.ProjectName, "keystone-project", "service", "service project (auth=keystone)")
	fs.StringVar(&cfg.Keystone.UserDomainName, "keystone-user-domain", "Default", "service user's domain (auth=keystone)")
	fs.StringVar(&cfg.Keystone.ProjectDomainName, "keystone-project-domain", "Default", "service project's domain (auth=keystone)")
	tenantTypes := fs.String("tenant-network-types", "vxlan", "ordered tenant network types (vxlan, vlan, local)")
	vni := fs.String("vxlan-vni-ranges", "1:65535", "comma-separated VNI ranges for tenant networks")
	vlans := fs.String("network-vlan-ranges", "", "physnet[:min:max],... VLAN physical networks and tenant ranges")
	flats := fs.String("flat-networks", "*", "physnets flat networks may use (* for any)")
	fs.IntVar(&cfg.Service.Segments.PhysicalMTU, "physical-mtu", 1500, "MTU of the underlay (global_physnet_mtu)")
	baseMAC := fs.String("base-mac", "fa:16:3e:00:00:00", "base MAC address; the first three octets are kept")
	fs.DurationVar(&cfg.Service.AgentDownTime, "agent-down-time", 30*time.Second, "time after an agent's last heartbeat at which it is dead")
	fs.IntVar(&cfg.Service.DHCPAgentsPerNetwork, "dhcp-agents-per-network", 1, "network hosts serving each network's DHCP")
	dnsDomain := fs.String("dns-domain", "openstacklocal", "domain of ports' DNS names (Neutron's dns_domain)")
	urlFile := fs.String("url-file", "", "write the server's URL to this file once it listens (with --listen 127.0.0.1:0)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(cfg.Logger)
	if *endpoints != "" {
		cfg.EtcdEndpoints = splitList(*endpoints)
	}
	if err := parseSegments(&cfg.Service.Segments, *tenantTypes, *vni, *vlans, *flats); err != nil {
		return err
	}
	mac, err := net.ParseMAC(*baseMAC)
	if err != nil || len(mac) != 6 {
		return fmt.Errorf("--base-mac %q is not a MAC address", *baseMAC)
	}
	copy(cfg.Service.MACBase[:], mac[:3])
	if *dnsDomain != "" {
		model.DNSDomain = strings.TrimSuffix(*dnsDomain, ".") + "."
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	if *urlFile != "" {
		// Written whole under a temporary name, so a reader never sees half.
		tmp := *urlFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(srv.URL+"\n"), 0o644); err != nil {
			srv.Close()
			return fmt.Errorf("--url-file: %w", err)
		}
		if err := os.Rename(tmp, *urlFile); err != nil {
			srv.Close()
			return fmt.Errorf("--url-file: %w", err)
		}
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return srv.Wait()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseSegments fills the ML2 type configuration from flags.
func parseSegments(c *segments.Config, types, vni, vlans, flats string) error {
	c.TenantTypes = splitList(types)
	c.VXLANRanges = nil
	for _, r := range splitList(vni) {
		rg, err := segments.ParseRange(r, segments.MaxVNI)
		if err != nil {
			return fmt.Errorf("--vxlan-vni-ranges: %w", err)
		}
		c.VXLANRanges = append(c.VXLANRanges, rg)
	}
	v, err := segments.ParseVLANRanges(splitList(vlans))
	if err != nil {
		return fmt.Errorf("--network-vlan-ranges: %w", err)
	}
	c.VLANRanges = v
	c.FlatNetworks = splitList(flats)
	return c.Validate()
}
