package segments

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in    string
		limit uint32
		want  Range
		ok    bool
	}{
		{"1:4094", 4094, Range{1, 4094}, true},
		{"100:200", 4094, Range{100, 200}, true},
		{"7:7", 4094, Range{7, 7}, true},
		{" 100:200 ", 4094, Range{100, 200}, true},
		{"1:16777215", MaxVNI, Range{1, MaxVNI}, true},
		{"1:65535", MaxVNI, Range{1, 65535}, true},

		{"", 4094, Range{}, false},
		{"100", 4094, Range{}, false},
		{"100-200", 4094, Range{}, false},
		{":200", 4094, Range{}, false},
		{"100:", 4094, Range{}, false},
		{"0:10", 4094, Range{}, false},         // 0 is not a valid tag
		{"1:4095", 4094, Range{}, false},       // beyond the limit
		{"200:100", 4094, Range{}, false},      // reversed
		{"-1:10", 4094, Range{}, false},        // negative
		{"+1:10", 4094, Range{}, false},        // sign
		{"a:b", 4094, Range{}, false},          // not numbers
		{"1:2:3", 4094, Range{}, false},        // too many parts
		{"1.5:10", 4094, Range{}, false},       // not an integer
		{"1:16777216", MaxVNI, Range{}, false}, // beyond 24 bits
		{"1:4294967296", 1<<32 - 1, Range{}, false},
		{"99999999999999999999:1", MaxVNI, Range{}, false},
	}
	for _, tc := range tests {
		got, err := ParseRange(tc.in, tc.limit)
		if tc.ok {
			if err != nil || got != tc.want {
				t.Errorf("ParseRange(%q, %d) = %v, %v; want %v", tc.in, tc.limit, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseRange(%q, %d) = %v, want an error", tc.in, tc.limit, got)
		}
	}
}

func TestParseVLANRanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		specs []string
		want  map[string][]Range
		ok    bool
	}{
		{"none", nil, map[string][]Range{}, true},
		{"physnet without range", []string{"physnet1"}, map[string][]Range{"physnet1": nil}, true},
		{"one range", []string{"physnet1:100:200"}, map[string][]Range{"physnet1": {{100, 200}}}, true},
		{"two ranges one physnet", []string{"physnet1:100:200", "physnet1:300:400"}, map[string][]Range{"physnet1": {{100, 200}, {300, 400}}}, true},
		{"bare then range", []string{"physnet1", "physnet1:10:20"}, map[string][]Range{"physnet1": {{10, 20}}}, true},
		{"two physnets", []string{"physnet1:1:10", "physnet2"}, map[string][]Range{"physnet1": {{1, 10}}, "physnet2": nil}, true},
		{"spaces", []string{" physnet1:1:10 "}, map[string][]Range{"physnet1": {{1, 10}}}, true},
		{"full range", []string{"p:1:4094"}, map[string][]Range{"p": {{1, 4094}}}, true},

		{"empty spec", []string{""}, nil, false},
		{"no physnet", []string{":100:200"}, nil, false},
		{"one number", []string{"physnet1:100"}, nil, false},
		{"trailing colon", []string{"physnet1:"}, nil, false},
		{"tag 0", []string{"physnet1:0:10"}, nil, false},
		{"tag 4095", []string{"physnet1:1:4095"}, nil, false},
		{"reversed", []string{"physnet1:200:100"}, nil, false},
		{"too many parts", []string{"physnet1:1:2:3"}, nil, false},
		{"bad after good", []string{"physnet1:1:10", "physnet2:x:y"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseVLANRanges(tc.specs)
			if !tc.ok {
				if err == nil {
					t.Fatalf("ParseVLANRanges(%q) = %v, want an error", tc.specs, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVLANRanges(%q): %v", tc.specs, err)
			}
			if !maps.EqualFunc(got, tc.want, func(a, b []Range) bool { return slices.Equal(a, b) }) {
				t.Fatalf("ParseVLANRanges(%q) = %v, want %v", tc.specs, got, tc.want)
			}
			// A physnet listed without a range must still be known, so
			// that provider VLAN networks may use it.
			for p := range tc.want {
				if _, ok := got[p]; !ok {
					t.Errorf("physnet %q missing", p)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v", err)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"all types", func(c *Config) { c.TenantTypes = []string{Local, Flat, VLAN, VXLAN} }, true},
		{"no types", func(c *Config) { c.TenantTypes = nil }, true},
		{"mtu 68", func(c *Config) { c.PhysicalMTU = 68 }, true},
		{"mtu 9000", func(c *Config) { c.PhysicalMTU = 9000 }, true},
		{"gre", func(c *Config) { c.TenantTypes = []string{VXLAN, "gre"} }, false},
		{"upper case", func(c *Config) { c.TenantTypes = []string{"VXLAN"} }, false},
		{"empty type", func(c *Config) { c.TenantTypes = []string{""} }, false},
		{"mtu 67", func(c *Config) { c.PhysicalMTU = 67 }, false},
		{"mtu 0", func(c *Config) { c.PhysicalMTU = 0 }, false},
		{"mtu negative", func(c *Config) { c.PhysicalMTU = -1500 }, false},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		tc.mod(&c)
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	if !slices.Equal(c.TenantTypes, []string{VXLAN}) || !slices.Equal(c.VXLANRanges, []Range{{1, 65535}}) || c.PhysicalMTU != 1500 {
		t.Errorf("DefaultConfig() = %+v", c)
	}
	// Two calls must not share mutable state.
	c.VLANRanges["x"] = []Range{{1, 2}}
	c.TenantTypes[0] = VLAN
	if d := DefaultConfig(); len(d.VLANRanges) != 0 || d.TenantTypes[0] != VXLAN {
		t.Errorf("DefaultConfig shares state between calls: %+v", d)
	}
}

func seg(typ string, physnet *string, id *uint32) Segment {
	return Segment{NetworkType: typ, PhysicalNetwork: physnet, SegmentationID: id}
}

func sp(s string) *string { return &s }
func up(u uint32) *uint32 { return &u }

func TestMTU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		physical int
		segs     []Segment
		want     int
	}{
		{"no segments", 1500, nil, 1500},
		{"vxlan", 1500, []Segment{seg(VXLAN, nil, up(10))}, 1450},
		{"vxlan jumbo", 9000, []Segment{seg(VXLAN, nil, up(10))}, 8950},
		{"vlan", 1500, []Segment{seg(VLAN, sp("physnet1"), up(10))}, 1500},
		{"flat", 1500, []Segment{seg(Flat, sp("physnet1"), nil)}, 1500},
		{"local", 1500, []Segment{seg(Local, nil, nil)}, 1500},
		{"vlan and vxlan", 1500, []Segment{seg(VLAN, sp("physnet1"), up(10)), seg(VXLAN, nil, up(10))}, 1450},
		{"two vxlan", 1500, []Segment{seg(VXLAN, nil, up(10)), seg(VXLAN, nil, up(11))}, 1450},
	}
	for _, tc := range tests {
		c := DefaultConfig()
		c.PhysicalMTU = tc.physical
		if got := c.MTU(tc.segs); got != tc.want {
			t.Errorf("%s: MTU = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestValidateProvider(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.FlatNetworks = []string{"flat1", "flat2"}
	c.VLANRanges = map[string][]Range{"physnet1": {{100, 200}}, "provider-only": nil}
	anyFlat := DefaultConfig() // FlatNetworks "*"
	noFlat := DefaultConfig()
	noFlat.FlatNetworks = nil

	tests := []struct {
		name string
		cfg  Config
		seg  Segment
		msg  string // "" for valid; else a fragment of the message
	}{
		{"local", c, seg(Local, nil, nil), ""},
		{"local with physnet", c, seg(Local, sp("physnet1"), nil), "prohibited for local provider network"},
		{"local with id", c, seg(Local, nil, up(5)), "prohibited for local provider network"},
		{"local with id 0", c, seg(Local, nil, up(0)), ""},
		{"local with empty physnet", c, seg(Local, sp(""), up(0)), ""},

		{"flat known", c, seg(Flat, sp("flat1"), nil), ""},
		{"flat any", anyFlat, seg(Flat, sp("whatever"), nil), ""},
		{"flat unknown", c, seg(Flat, sp("flat3"), nil), "physical_network 'flat3' unknown for flat provider network"},
		{"flat none allowed", noFlat, seg(Flat, sp("flat1"), nil), "physical_network 'flat1' unknown for flat provider network"},
		{"flat no physnet", c, seg(Flat, nil, nil), "provider:physical_network required for flat provider network"},
		{"flat empty physnet", c, seg(Flat, sp(""), nil), "provider:physical_network required for flat provider network"},
		{"flat with id", c, seg(Flat, sp("flat1"), up(5)), "provider:segmentation_id prohibited for flat provider network"},
		{"flat with id 0", c, seg(Flat, sp("flat1"), up(0)), ""},

		{"vlan with id", c, seg(VLAN, sp("physnet1"), up(150)), ""},
		{"vlan id outside tenant range", c, seg(VLAN, sp("physnet1"), up(3000)), ""},
		{"vlan without id", c, seg(VLAN, sp("physnet1"), nil), ""},
		{"vlan provider-only physnet", c, seg(VLAN, sp("provider-only"), up(7)), ""},
		{"vlan id 1", c, seg(VLAN, sp("physnet1"), up(1)), ""},
		{"vlan id 4094", c, seg(VLAN, sp("physnet1"), up(4094)), ""},
		{"vlan id 0", c, seg(VLAN, sp("physnet1"), up(0)), "provider:segmentation_id out of range (1 through 4094)"},
		{"vlan id 4095", c, seg(VLAN, sp("physnet1"), up(4095)), "provider:segmentation_id out of range (1 through 4094)"},
		{"vlan no physnet", c, seg(VLAN, nil, up(5)), "provider:physical_network required for VLAN provider network"},
		{"vlan empty physnet", c, seg(VLAN, sp(""), nil), "provider:physical_network required for VLAN provider network"},
		{"vlan unknown physnet", c, seg(VLAN, sp("physnet9"), up(5)), "physical_network 'physnet9' unknown for VLAN provider network"},

		{"vxlan", c, seg(VXLAN, nil, nil), ""},
		{"vxlan id", c, seg(VXLAN, nil, up(5000)), ""},
		{"vxlan id max", c, seg(VXLAN, nil, up(MaxVNI)), ""},
		{"vxlan id outside tenant range", c, seg(VXLAN, nil, up(100000)), ""},
		{"vxlan id 0", c, seg(VXLAN, nil, up(0)), "provider:segmentation_id out of range (1 through 16777215)"},
		{"vxlan id too large", c, seg(VXLAN, nil, up(MaxVNI+1)), "provider:segmentation_id out of range (1 through 16777215)"},
		{"vxlan physnet", c, seg(VXLAN, sp("physnet1"), nil), "provider:physical_network specified for vxlan network"},

		{"no type", c, seg("", nil, nil), "provider:network_type required"},
		{"gre", c, seg("gre", nil, nil), "network_type value 'gre' not supported"},
		{"upper case", c, seg("VLAN", sp("physnet1"), up(5)), "network_type value 'VLAN' not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := tc.seg
			err := tc.cfg.ValidateProvider(&s)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("ValidateProvider(%+v) = %v", tc.seg, err)
				}
				// Flat and local segments come out without an id, and
				// local ones without a physnet.
				if (s.NetworkType == Flat || s.NetworkType == Local) && s.SegmentationID != nil {
					t.Errorf("%s segment keeps segmentation id %d", s.NetworkType, *s.SegmentationID)
				}
				if s.NetworkType == Local && s.PhysicalNetwork != nil {
					t.Errorf("local segment keeps physnet %q", *s.PhysicalNetwork)
				}
				// Other ids are kept as given.
				if tc.seg.SegmentationID != nil && *tc.seg.SegmentationID != 0 &&
					(s.SegmentationID == nil || *s.SegmentationID != *tc.seg.SegmentationID) {
					t.Errorf("segmentation id changed to %v", s.SegmentationID)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("ValidateProvider(%+v) = %v, want *Error", tc.seg, err)
			}
			if e.Status != 400 || e.Type != "InvalidInput" {
				t.Errorf("error = %d %s, want 400 InvalidInput", e.Status, e.Type)
			}
			if !strings.HasPrefix(e.Message, "Invalid input for operation: ") || !strings.HasSuffix(e.Message, ".") {
				t.Errorf("message %q is not worded as Neutron's InvalidInput", e.Message)
			}
			if !strings.Contains(e.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", e.Message, tc.msg)
			}
			if e.Error() != e.Message {
				t.Errorf("Error() = %q", e.Error())
			}
		})
	}
}

func TestPhysnet(t *testing.T) {
	t.Parallel()
	if got := (Segment{}).Physnet(); got != "" {
		t.Errorf("Physnet() = %q", got)
	}
	if got := seg(VLAN, sp("p1"), nil).Physnet(); got != "p1" {
		t.Errorf("Physnet() = %q", got)
	}
}

func TestTenantRanges(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	c.VLANRanges = map[string][]Range{"p1": {{10, 20}}, "p2": nil}
	c.VXLANRanges = []Range{{1, 100}, {200, 300}}
	tests := []struct {
		typ, physnet string
		want         []Range
	}{
		{VXLAN, "", []Range{{1, 100}, {200, 300}}},
		{VXLAN, "p1", []Range{{1, 100}, {200, 300}}},
		{VLAN, "p1", []Range{{10, 20}}},
		{VLAN, "p2", nil},
		{VLAN, "p3", nil},
		{Flat, "p1", nil},
		{Local, "", nil},
	}
	for _, tc := range tests {
		if got := c.TenantRanges(tc.typ, tc.physnet); !slices.Equal(got, tc.want) {
			t.Errorf("TenantRanges(%s, %s) = %v, want %v", tc.typ, tc.physnet, got, tc.want)
		}
	}
}

func TestVLANPhysnets(t *testing.T) {
	t.Parallel()
	c := DefaultConfig()
	if got := c.VLANPhysnets(); len(got) != 0 {
		t.Errorf("VLANPhysnets() = %v", got)
	}
	c.VLANRanges = map[string][]Range{"zeta": {{1, 2}}, "alpha": {{5, 6}}, "bare": nil, "empty": {}, "mid": {{3, 3}}}
	for range 5 { // map order varies; the result must not
		if got := c.VLANPhysnets(); !slices.Equal(got, []string{"alpha", "mid", "zeta"}) {
			t.Fatalf("VLANPhysnets() = %v", got)
		}
	}
}

func TestInRanges(t *testing.T) {
	t.Parallel()
	r := []Range{{10, 20}, {30, 30}}
	for id, want := range map[uint32]bool{0: false, 9: false, 10: true, 15: true, 20: true, 21: false, 29: false, 30: true, 31: false} {
		if got := InRanges(r, id); got != want {
			t.Errorf("InRanges(%d) = %v, want %v", id, got, want)
		}
	}
	if InRanges(nil, 1) {
		t.Error("InRanges(nil) = true")
	}
}

func TestNth(t *testing.T) {
	t.Parallel()
	r := []Range{{10, 12}, {20, 20}, {30, 31}}
	want := []uint32{10, 11, 12, 20, 30, 31}
	for i, w := range want {
		if got := nth(r, uint64(i)); got != w {
			t.Errorf("nth(%d) = %d, want %d", i, got, w)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("nth beyond the ranges did not panic")
		}
	}()
	nth(r, uint64(len(want)))
}

func TestPickNeverReturnsUsed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ranges []Range
		free   []uint32
	}{
		{"one free", []Range{{1, 100}}, []uint32{57}},
		{"first free", []Range{{1, 100}}, []uint32{1}},
		{"last free", []Range{{1, 100}}, []uint32{100}},
		{"several ranges", []Range{{1, 10}, {100, 110}, {4000, 4094}}, []uint32{3, 105, 4094}},
		{"single id ranges", []Range{{5, 5}, {7, 7}, {9, 9}}, []uint32{7}},
		{"top of vni space", []Range{{MaxVNI - 3, MaxVNI}}, []uint32{MaxVNI}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			free := map[uint32]bool{}
			for _, id := range tc.free {
				free[id] = true
			}
			seen := map[uint32]bool{}
			for range 200 {
				id, ok := Pick(tc.ranges, func(id uint32) bool {
					if !InRanges(tc.ranges, id) {
						t.Fatalf("used(%d) asked about an id outside the ranges", id)
					}
					return !free[id]
				})
				if !ok {
					t.Fatal("Pick: ok = false with free ids left")
				}
				if !free[id] {
					t.Fatalf("Pick = %d, which is used", id)
				}
				seen[id] = true
			}
			if len(seen) != len(free) {
				t.Errorf("Pick chose %v over 200 tries, want every one of %v", seen, tc.free)
			}
		})
	}
}

func TestPickExhausted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ranges []Range
	}{
		{"no ranges", nil},
		{"empty list", []Range{}},
		{"one id", []Range{{4094, 4094}}},
		{"vlan", []Range{{1, 4094}}},
		{"several", []Range{{1, 10}, {20, 30}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			id, ok := Pick(tc.ranges, func(uint32) bool { calls++; return true })
			if ok {
				t.Fatalf("Pick = %d, true; want false", id)
			}
			var total int
			for _, r := range tc.ranges {
				total += int(r.Max-r.Min) + 1
			}
			if calls != total {
				t.Errorf("used called %d times, want each of the %d ids once", calls, total)
			}
		})
	}
}

func TestPickSpread(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		ranges []Range
		used   func(uint32) bool
	}{
		{"vlan", []Range{{1, 4094}}, func(uint32) bool { return false }},
		{"vni", []Range{{1, MaxVNI}}, func(uint32) bool { return false }},
		{"several ranges", []Range{{1, 100}, {1000, 1100}, {3000, 3100}}, func(uint32) bool { return false }},
		{"half used", []Range{{1, 1000}}, func(id uint32) bool { return id%2 == 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seen := map[uint32]bool{}
			inRange := map[int]bool{}
			const n = 200
			for range n {
				id, ok := Pick(tc.ranges, tc.used)
				if !ok || tc.used(id) || !InRanges(tc.ranges, id) {
					t.Fatalf("Pick = %d, %v", id, ok)
				}
				seen[id] = true
				for i, r := range tc.ranges {
					if r.Min <= id && id <= r.Max {
						inRange[i] = true
					}
				}
			}
			// Random choice among hundreds of ids: 200 picks repeat
			// a few ids at most, never collapse onto the first one.
			if len(seen) < n/2 {
				t.Errorf("Pick chose only %d distinct ids in %d tries", len(seen), n)
			}
			if len(inRange) != len(tc.ranges) {
				t.Errorf("Pick drew from ranges %v only, of %d", inRange, len(tc.ranges))
			}
		})
	}
}
