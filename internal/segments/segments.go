// Package segments holds ML2's type drivers: which network types exist, the
// ranges tenant networks draw segmentation ids from, and validation of the
// provider segments an admin asks for. The service layer reserves ids with
// etcd transactions on the keys store.Keys.SegmentAlloc names.
package segments

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Network types.
const (
	Local = "local"
	Flat  = "flat"
	VLAN  = "vlan"
	VXLAN = "vxlan"
)

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// VXLANOverhead is what VXLAN encapsulation costs of the physical MTU.
const VXLANOverhead = 50

// Range is an inclusive range of segmentation ids.
type Range struct{ Min, Max uint32 }

// Segment is one L2 segment of a network, in the provider extension's terms.
type Segment struct {
	NetworkType     string  `json:"provider:network_type"`
	PhysicalNetwork *string `json:"provider:physical_network"`
	SegmentationID  *uint32 `json:"provider:segmentation_id"`
}

// Physnet returns the physical network or "".
func (s Segment) Physnet() string {
	if s.PhysicalNetwork == nil {
		return ""
	}
	return *s.PhysicalNetwork
}

// Config is the ML2 type configuration of a deployment.
type Config struct {
	// TenantTypes in order of preference (ml2 tenant_network_types).
	TenantTypes []string
	// FlatNetworks are the physnets flat networks may use; "*" allows any.
	FlatNetworks []string
	// VLANRanges maps each known VLAN physnet to its tenant ranges (may be empty).
	VLANRanges map[string][]Range
	// VXLANRanges are the tenant VNI ranges.
	VXLANRanges []Range
	// PhysicalMTU is the underlay MTU (global_physnet_mtu).
	PhysicalMTU int
}

// DefaultConfig works on a fresh server: vxlan tenant networks over 1:65535.
func DefaultConfig() Config {
	return Config{
		TenantTypes:  []string{VXLAN},
		FlatNetworks: []string{"*"},
		VLANRanges:   map[string][]Range{},
		VXLANRanges:  []Range{{1, 65535}},
		PhysicalMTU:  1500,
	}
}

// ParseRange parses "min:max".
func ParseRange(s string, limit uint32) (Range, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return Range{}, fmt.Errorf("range %q is not min:max", s)
	}
	a, err1 := strconv.ParseUint(lo, 10, 32)
	b, err2 := strconv.ParseUint(hi, 10, 32)
	if err1 != nil || err2 != nil || a < 1 || b > uint64(limit) || a > b {
		return Range{}, fmt.Errorf("range %q is not within 1:%d", s, limit)
	}
	return Range{uint32(a), uint32(b)}, nil
}

// ParseVLANRanges parses ml2 network_vlan_ranges: "physnet" or "physnet:min:max".
func ParseVLANRanges(specs []string) (map[string][]Range, error) {
	out := map[string][]Range{}
	for _, s := range specs {
		phys, rng, hasRange := strings.Cut(strings.TrimSpace(s), ":")
		if phys == "" {
			return nil, fmt.Errorf("vlan range %q has no physical network", s)
		}
		if !hasRange {
			out[phys] = append(out[phys], []Range{}...)
			continue
		}
		r, err := ParseRange(rng, 4094)
		if err != nil {
			return nil, fmt.Errorf("vlan range %q: %w", s, err)
		}
		out[phys] = append(out[phys], r)
	}
	return out, nil
}

// Validate checks a type list and the ranges.
func (c Config) Validate() error {
	for _, t := range c.TenantTypes {
		if !slices.Contains([]string{Local, Flat, VLAN, VXLAN}, t) {
			return fmt.Errorf("unknown tenant network type %q", t)
		}
	}
	if c.PhysicalMTU < 68 {
		return fmt.Errorf("physical MTU %d is too small", c.PhysicalMTU)
	}
	return nil
}

// MTU is the MTU a network of the given segments gets: the smallest any of
// its segments can carry.
func (c Config) MTU(segs []Segment) int {
	mtu := c.PhysicalMTU
	for _, s := range segs {
		if s.NetworkType == VXLAN && c.PhysicalMTU-VXLANOverhead < mtu {
			mtu = c.PhysicalMTU - VXLANOverhead
		}
	}
	return mtu
}

// Error is a segment request the type drivers refuse, with Neutron's type.
type Error struct {
	Status  int
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Message }

func invalid(format string, args ...any) *Error {
	return &Error{400, "InvalidInput", "Invalid input for operation: " + fmt.Sprintf(format, args...) + "."}
}

// ValidateProvider checks a segment an admin asked for, as the type drivers'
// validate_provider_segment, and fills what may be left out.
func (c Config) ValidateProvider(s *Segment) error {
	switch s.NetworkType {
	case Local, Flat:
		// The flat and local drivers refuse only attributes with a true
		// value: a segmentation id of 0 (as clients such as gophercloud
		// send for every segment) or an empty physnet is no value.
		if s.SegmentationID != nil && *s.SegmentationID == 0 {
			s.SegmentationID = nil
		}
		if s.NetworkType == Local && s.PhysicalNetwork != nil && *s.PhysicalNetwork == "" {
			s.PhysicalNetwork = nil
		}
	}
	switch s.NetworkType {
	case Local:
		if s.PhysicalNetwork != nil || s.SegmentationID != nil {
			return invalid("provider:physical_network and provider:segmentation_id prohibited for local provider network")
		}
	case Flat:
		if s.SegmentationID != nil {
			return invalid("provider:segmentation_id prohibited for flat provider network")
		}
		if s.Physnet() == "" {
			return invalid("provider:physical_network required for flat provider network")
		}
		if !slices.Contains(c.FlatNetworks, "*") && !slices.Contains(c.FlatNetworks, s.Physnet()) {
			return invalid("physical_network '%s' unknown for flat provider network", s.Physnet())
		}
	case VLAN:
		if s.Physnet() == "" {
			return invalid("provider:physical_network required for VLAN provider network")
		}
		if _, ok := c.VLANRanges[s.Physnet()]; !ok {
			return invalid("physical_network '%s' unknown for VLAN provider network", s.Physnet())
		}
		if s.SegmentationID != nil && (*s.SegmentationID < 1 || *s.SegmentationID > 4094) {
			return invalid("provider:segmentation_id out of range (1 through 4094)")
		}
	case VXLAN:
		if s.PhysicalNetwork != nil {
			return invalid("provider:physical_network specified for vxlan network")
		}
		if s.SegmentationID != nil && (*s.SegmentationID < 1 || *s.SegmentationID > MaxVNI) {
			return invalid("provider:segmentation_id out of range (1 through %d)", MaxVNI)
		}
	case "":
		return invalid("provider:network_type required")
	default:
		return invalid("network_type value '%s' not supported", s.NetworkType)
	}
	return nil
}

// TenantRanges returns the ranges a tenant network of type t on physnet
// draws from (physnet is ignored for vxlan).
func (c Config) TenantRanges(t, physnet string) []Range {
	switch t {
	case VXLAN:
		return c.VXLANRanges
	case VLAN:
		return c.VLANRanges[physnet]
	}
	return nil
}

// VLANPhysnets lists the physnets that have tenant VLAN ranges, sorted.
func (c Config) VLANPhysnets() []string {
	var out []string
	for p, r := range c.VLANRanges {
		if len(r) > 0 {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// Pick chooses a free id from ranges at random among the free ones, as ML2
// does so that concurrent allocators rarely collide; ok is false when none
// is free. used reports ids already reserved.
func Pick(ranges []Range, used func(uint32) bool) (uint32, bool) {
	var total uint64
	for _, r := range ranges {
		total += uint64(r.Max-r.Min) + 1
	}
	if total == 0 {
		return 0, false
	}
	start := rand.Uint64N(total)
	for i := uint64(0); i < total; i++ {
		id := nth(ranges, (start+i)%total)
		if !used(id) {
			return id, true
		}
	}
	return 0, false
}

func nth(ranges []Range, n uint64) uint32 {
	for _, r := range ranges {
		size := uint64(r.Max-r.Min) + 1
		if n < size {
			return r.Min + uint32(n)
		}
		n -= size
	}
	panic("segments: index beyond ranges")
}

// InRanges reports whether id lies in one of ranges.
func InRanges(ranges []Range, id uint32) bool {
	for _, r := range ranges {
		if r.Min <= id && id <= r.Max {
			return true
		}
	}
	return false
}
