package metadata

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

var (
	subnetDHCP4 = Subnet{ID: "5a0e4b8e-6c1f-4d22-9d1b-3b6b0a4f1c01", CIDR: netip.MustParsePrefix("10.0.0.0/24"),
		Gateway: netip.MustParseAddr("10.0.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.0.0.2")},
		HostRoutes: []Route{{Destination: netip.MustParsePrefix("172.16.0.0/16"), NextHop: netip.MustParseAddr("10.0.0.254")}},
		DHCP:       true}
	subnetSLAAC = Subnet{ID: "5a0e4b8e-6c1f-4d22-9d1b-3b6b0a4f1c02", CIDR: netip.MustParsePrefix("fd00:1::/64"),
		Gateway: netip.MustParseAddr("fd00:1::1"), DNS: []netip.Addr{netip.MustParseAddr("fd00:1::53")},
		DHCP: true, IPv6AddressMode: "slaac"}
	subnetStatic4 = Subnet{ID: "5a0e4b8e-6c1f-4d22-9d1b-3b6b0a4f1c03", CIDR: netip.MustParsePrefix("10.1.0.0/20"),
		Gateway: netip.MustParseAddr("10.1.0.1"), DNS: []netip.Addr{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("10.0.0.2")},
		HostRoutes: []Route{{Destination: netip.MustParsePrefix("172.17.0.0/16"), NextHop: netip.MustParseAddr("10.1.0.254")}}}
	subnetStatic6 = Subnet{ID: "5a0e4b8e-6c1f-4d22-9d1b-3b6b0a4f1c04", CIDR: netip.MustParsePrefix("fd00:2::/64"),
		HostRoutes: []Route{{Destination: netip.MustParsePrefix("fd00:99::/48"), NextHop: netip.MustParseAddr("fd00:2::fe")}}}
)

// fullInstance has everything: two ports, one with DHCP IPv4, SLAAC IPv6 and
// a floating IP, one static, keys, user data, metadata.
func fullInstance() Instance {
	return Instance{
		ID: "d8f4c0f4-2d3b-4a4c-9a7e-3f9a8c2b1e01", Name: "web-1", Hostname: "web-1", AvailabilityZone: "nova",
		ProjectID: "6d1f2a3b4c5d4e6f8a9b0c1d2e3f4a5b",
		UserData:  []byte("#cloud-config\nruncmd:\n - echo <hello & bye>\n\x00\xff binary tail"),
		Meta:      map[string]string{"role": "web", "note": "a <b> & c"},
		PublicKeys: map[string]string{
			"bob":   "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob@example",
			"alice": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5hbWU alice@example",
		},
		LaunchIndex:    0,
		SecurityGroups: []string{"default", "web"},
		Ports: []Port{{
			ID: "0b5c3e9a-1f2d-4c6b-8a7e-9d0c1b2a3f4e", MAC: mustMAC("fa:16:3e:00:00:01"), NetworkID: "net-aaaa", MTU: 1450,
			FixedIPs: []FixedIP{
				{Address: netip.MustParseAddr("10.0.0.10"), Subnet: subnetDHCP4},
				{Address: netip.MustParseAddr("fd00:1::f816:3eff:fe00:1"), Subnet: subnetSLAAC},
			},
			FloatingIP: netip.MustParseAddr("203.0.113.10"),
		}, {
			ID: "7e6d5c4b-3a29-4180-9f8e-7d6c5b4a3928", MAC: mustMAC("fa:16:3e:00:00:02"), NetworkID: "net-bbbb", MTU: 1500,
			FixedIPs: []FixedIP{
				{Address: netip.MustParseAddr("10.1.0.5"), Subnet: subnetStatic4},
				{Address: netip.MustParseAddr("10.1.0.6"), Subnet: subnetStatic4},
				{Address: netip.MustParseAddr("fd00:2::5"), Subnet: subnetStatic6},
			},
		}},
	}
}

// bareInstance has nothing optional: no user data, keys, metadata, ports.
func bareInstance() Instance {
	return Instance{ID: "0f0e0d0c-0b0a-4998-8776-655443322110", Name: "bare", Hostname: "bare", ProjectID: "p1"}
}

// zeroSeed makes random_seed predictable in golden files.
func zeroSeed(b []byte) { clear(b) }

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// instances is a Lookup from source addresses for one key.
type instances struct {
	key string
	by  map[netip.Addr]Instance
}

func (m instances) Instance(key string, src netip.Addr) (Instance, bool) {
	if key != m.key {
		return Instance{}, false
	}
	in, ok := m.by[src]
	return in, ok
}

// testLogger writes the server's log into the test's output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startServer serves a Server with opts on 127.0.0.1:0 for key "net1" and
// returns it and its address.
func startServer(t testing.TB, opts Options) (*Server, string) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.seed = zeroSeed
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := s.Serve(ln, "net1")
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, ln.Addr().String()
}

// clientFrom is an HTTP client whose connections come from src (any
// 127.0.0.0/8 address is local on Linux's loopback).
func clientFrom(src string, keepAlive bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: d.DialContext, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 64,
	}}
}

// rawGet sends a request line verbatim (paths that an HTTP client would
// tidy) from src and returns the status code, headers and body.
func rawGet(t testing.TB, addr, src, method, target string, extra ...string) (int, http.Header, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.DialContext(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n%s\r\n", method, target, strings.Join(extra, ""))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}
