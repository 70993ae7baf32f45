package l2

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/<name>.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// renderCases are the Desired states whose plans are kept as golden files.
var renderCases = map[string]Desired{
	"vxlan": {LocalIP: addr("10.99.0.1"), Networks: []Network{
		vxlanNet(netA, 1001, 1450, []string{TapName(port2), TapName(port1)},
			Remote{MAC: mac("fa:16:3e:00:00:03"), IPs: []netip.Addr{addr("10.10.0.3"), addr("fd00::3")}, VTEP: addr("10.99.0.3")},
			Remote{MAC: mac("fa:16:3e:00:00:02"), IPs: []netip.Addr{addr("10.10.0.2")}, VTEP: addr("10.99.0.2")},
			Remote{MAC: mac("fa:16:3e:00:00:04"), IPs: []netip.Addr{addr("10.10.0.4")}, VTEP: addr("10.99.0.2")},
		),
	}},
	"vxlan-ipv6-underlay-port": {LocalIP: addr("fd99::1"), VXLANPort: 8472, Networks: []Network{
		vxlanNet(netA, 16777215, 1430, []string{TapName(port1)},
			Remote{MAC: mac("fa:16:3e:00:00:02"), IPs: []netip.Addr{addr("10.10.0.2")}, VTEP: addr("fd99::2")},
		),
	}},
	"flat": {Networks: []Network{
		{ID: netA, Type: TypeFlat, PhysicalInterface: "eth1", MTU: 1500, Taps: []string{TapName(port1)}},
	}},
	"vlan": {Networks: []Network{
		{ID: netA, Type: TypeVLAN, PhysicalInterface: "eth1", SegmentationID: 101, MTU: 1500, Taps: []string{TapName(port1)}},
		{ID: netB, Type: TypeVLAN, PhysicalInterface: "bond0", SegmentationID: 4094, MTU: 9000, Taps: []string{TapName(port2)}},
	}},
	"local-no-mtu": {Networks: []Network{
		{ID: netA, Type: TypeLocal, Taps: []string{TapName(port1)}},
	}},
	"errors": {Networks: []Network{
		{ID: netA, Type: TypeVXLAN, SegmentationID: 5},                              // no local VTEP
		{ID: netB, Type: TypeVLAN, PhysicalInterface: "eth1", SegmentationID: 4095}, // bad VLAN id
		{ID: "short", Type: TypeLocal},                                              // id too short
		{ID: "c0ffee01-0000-4000-8000-000000000000", Type: TypeFlat, PhysicalInterface: "eth1"},
		{ID: "c0ffee02-0000-4000-8000-000000000000", Type: TypeFlat, PhysicalInterface: "eth1"}, // eth1 taken
		{ID: "c0ffee03-0000-4000-8000-000000000000", Type: TypeFlat, PhysicalInterface: "vxlan-9"},
		{ID: "c0ffee04-0000-4000-8000-000000000000", Type: TypeVLAN, PhysicalInterface: "enp129s0f1np1", SegmentationID: 100}, // name too long,
		{ID: "c0ffee05-0000-4000-8000-000000000000", Type: "gre", SegmentationID: 1},
		{ID: "c0ffee06-0000-4000-8000-000000000000", Type: TypeLocal, MTU: 40},
		{ID: "c0ffee07-0000-4000-8000-000000000000", Type: TypeLocal, Taps: []string{"eth0", TapName(port1)}},
		{ID: "c0ffee08-0000-4000-8000-000000000000", Type: TypeLocal, Taps: []string{TapName(port1)}}, // tap in two networks
	}},
}

func TestRenderMatchesGoldenFiles(t *testing.T) {
	t.Parallel()
	for name, d := range renderCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			golden(t, "render/"+name, Render(d).String())
		})
	}
}

func TestRenderIgnoresInputOrder(t *testing.T) {
	t.Parallel()
	d := renderCases["vlan"]
	rev := d
	rev.Networks = slices.Clone(d.Networks)
	slices.Reverse(rev.Networks)
	if a, b := Render(d).String(), Render(rev).String(); a != b {
		t.Fatalf("order matters:\n%s\nvs\n%s", a, b)
	}
}

func TestRenderRefusesContradictoryRemotes(t *testing.T) {
	t.Parallel()
	base := Remote{MAC: mac("fa:16:3e:00:00:02"), IPs: []netip.Addr{addr("10.10.0.2")}, VTEP: addr("10.99.0.2")}
	tests := map[string]Remote{
		"same mac, other vtep": {MAC: base.MAC, VTEP: addr("10.99.0.3")},
		"same ip, other mac":   {MAC: mac("fa:16:3e:00:00:05"), IPs: base.IPs, VTEP: addr("10.99.0.2")},
		"multicast mac":        {MAC: mac("01:00:5e:00:00:01"), VTEP: addr("10.99.0.2")},
		"vtep is this host":    {MAC: mac("fa:16:3e:00:00:06"), VTEP: addr("10.99.0.1")},
		"vtep family differs":  {MAC: mac("fa:16:3e:00:00:07"), VTEP: addr("fd99::2")},
	}
	for name, r := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := Render(Desired{LocalIP: addr("10.99.0.1"), Networks: []Network{vxlanNet(netA, 1, 0, nil, base, r)}})
			if err := p.Networks[0].Err; err == nil {
				t.Fatalf("rendered %s", p)
			} else if strings.Contains(err.Error(), "%!") {
				t.Fatalf("badly formatted error: %v", err)
			}
		})
	}
}

func TestNamesFollowNeutron(t *testing.T) {
	t.Parallel()
	for got, want := range map[string]string{
		BridgeName(netA):       "brq5e2c8a41-7d",
		TapName(port1):         "tap11111111-aa",
		VXLANName(16777215):    "vxlan-16777215",
		VLANName("eth1", 4094): "eth1.4094",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if err := validLinkName(got); err != nil {
			t.Error(err)
		}
	}
}
