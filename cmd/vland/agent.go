package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vland/vland/internal/agent"
	"github.com/vland/vland/internal/dataplane/dns"
)

func runAgent(args []string) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	host, _ := os.Hostname()
	cfg := agent.Config{}
	fs.StringVar(&cfg.Host, "host", host, "this host's name (binding:host_id of its ports)")
	fs.StringVar(&cfg.Server, "server", "http://127.0.0.1:9696", "the vland server's URL")
	fs.StringVar(&cfg.Token, "token", os.Getenv("VLAND_AGENT_TOKEN"), "this host's agent token (env VLAND_AGENT_TOKEN)")
	tokenFile := fs.String("token-file", "", "file holding this host's agent token")
	fs.StringVar(&cfg.NetNS, "netns", "", "manage the data plane of this network namespace (unset: the agent's own)")
	localIP := fs.String("local-ip", "", "this host's VXLAN endpoint address on the data network")
	mappings := fs.String("physical-interface-mappings", "", "physnet:interface,... for flat and vlan networks")
	roles := fs.String("roles", "compute", "comma-separated roles: compute, network")
	fs.StringVar(&cfg.AvailabilityZone, "availability-zone", "nova", "availability zone reported for this host")
	fs.StringVar(&cfg.NamespacePrefix, "namespace-prefix", "", "prefix of the namespaces the agent creates (qdhcp-, qrouter-); empty in production")
	fs.DurationVar(&cfg.ReportInterval, "report-interval", 10*time.Second, "heartbeat interval")
	fs.DurationVar(&cfg.DHCPLeaseTime, "dhcp-lease-time", 24*time.Hour, "DHCP lease offered to VMs (Neutron's dhcp_lease_duration); negative: infinite")
	fs.StringVar(&cfg.DNSDomain, "dns-domain", agent.DefaultDNSDomain, "domain handed out by DHCP (option 15)")
	dnsUpstream := fs.String("dns-upstream", "", "comma-separated resolvers (ip or ip:port) that names outside the tenant networks are forwarded to; empty: refused")
	fs.BoolVar(&cfg.RouterMetadata, "router-metadata", true, "serve metadata to VMs behind routers (169.254.169.254 redirected in qrouter- namespaces)")
	fs.BoolVar(&cfg.IsolatedMetadata, "isolated-metadata", true, "serve metadata on networks without a router, from the DHCP namespace (Neutron's enable_isolated_metadata)")
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
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		cfg.Token = strings.TrimSpace(string(b))
	}
	if cfg.Token == "" {
		return errors.New("an agent token is needed (--token, --token-file or VLAND_AGENT_TOKEN); an admin gets it from GET /agent/v1/hosts/<host>/token")
	}
	ups, err := dns.ParseUpstreams(*dnsUpstream)
	if err != nil {
		return fmt.Errorf("--dns-upstream: %w", err)
	}
	cfg.DNSUpstreams = ups
	if *localIP != "" {
		ip, err := netip.ParseAddr(*localIP)
		if err != nil {
			return fmt.Errorf("--local-ip: %w", err)
		}
		cfg.LocalIP = ip
	}
	cfg.InterfaceMappings = map[string]string{}
	for _, m := range splitList(*mappings) {
		phys, dev, ok := strings.Cut(m, ":")
		if !ok || phys == "" || dev == "" {
			return fmt.Errorf("--physical-interface-mappings: %q is not physnet:interface", m)
		}
		cfg.InterfaceMappings[phys] = dev
	}
	cfg.Roles = splitList(*roles)
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
