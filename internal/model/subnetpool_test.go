package model

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestCompactPrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want []netip.Prefix
	}{
		{nil, nil},
		{prefixes("10.0.0.0/24"), prefixes("10.0.0.0/24")},
		{prefixes("10.0.1.0/24", "10.0.0.0/24"), prefixes("10.0.0.0/23")},
		{prefixes("10.0.0.0/24", "10.0.0.128/25"), prefixes("10.0.0.0/24")},
		{prefixes("10.0.1.0/24", "10.0.2.0/24"), prefixes("10.0.1.0/24", "10.0.2.0/24")},
		{prefixes("10.0.0.0/25", "10.0.0.128/26", "10.0.0.192/26"), prefixes("10.0.0.0/24")},
		{prefixes("0.0.0.0/1", "128.0.0.0/1"), prefixes("0.0.0.0/0")},
		{prefixes("255.255.255.255/32", "255.255.255.254/32"), prefixes("255.255.255.254/31")},
		{prefixes("2001:db8::/33", "2001:db8:8000::/33", "10.0.0.0/8"), prefixes("10.0.0.0/8", "2001:db8::/32")},
		{prefixes("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "::/1", "8000::/1"), prefixes("::/0")},
		{prefixes("2001:db8::/64", "2001:db8:0:1::/64", "2001:db8:0:2::/64"), prefixes("2001:db8::/63", "2001:db8:0:2::/64")},
	}
	for _, tc := range tests {
		if got := CompactPrefixes(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("CompactPrefixes(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSubtractPrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b, want []netip.Prefix
	}{
		{prefixes("10.0.0.0/24"), nil, prefixes("10.0.0.0/24")},
		{prefixes("10.0.0.0/24"), prefixes("10.0.0.0/24"), nil},
		{prefixes("10.0.0.0/24"), prefixes("10.0.0.0/8"), nil},
		{prefixes("10.0.0.0/24"), prefixes("10.0.0.0/28"), prefixes("10.0.0.16/28", "10.0.0.32/27", "10.0.0.64/26", "10.0.0.128/25")},
		{prefixes("10.0.0.0/24"), prefixes("10.0.0.128/25", "10.0.0.0/26"), prefixes("10.0.0.64/26")},
		{prefixes("10.0.0.0/24"), prefixes("2001:db8::/32"), prefixes("10.0.0.0/24")},
		{prefixes("2001:db8::/32"), prefixes("2001:db8::/48"), prefixes(
			"2001:db8:1::/48", "2001:db8:2::/47", "2001:db8:4::/46", "2001:db8:8::/45", "2001:db8:10::/44",
			"2001:db8:20::/43", "2001:db8:40::/42", "2001:db8:80::/41", "2001:db8:100::/40", "2001:db8:200::/39",
			"2001:db8:400::/38", "2001:db8:800::/37", "2001:db8:1000::/36", "2001:db8:2000::/35", "2001:db8:4000::/34",
			"2001:db8:8000::/33")},
		{prefixes("0.0.0.0/0"), prefixes("0.0.0.0/1"), prefixes("128.0.0.0/1")},
		{prefixes("::/0"), prefixes("8000::/1"), prefixes("::/1")},
	}
	for _, tc := range tests {
		if got := SubtractPrefixes(tc.a, tc.b); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SubtractPrefixes(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestPrefixSetsAgainstBruteForce checks compaction and subtraction on
// random sets inside 10.0.0.0/24 address by address.
func TestPrefixSetsAgainstBruteForce(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	random := func() []netip.Prefix {
		var out []netip.Prefix
		for range r.IntN(6) {
			bits := 24 + r.IntN(9)
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(r.IntN(256))})
			p, _ := a.Prefix(bits)
			out = append(out, p)
		}
		return out
	}
	members := func(ps []netip.Prefix) [256]bool {
		var m [256]bool
		for i := range 256 {
			a := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			for _, p := range ps {
				if p.Contains(a) {
					m[i] = true
				}
			}
		}
		return m
	}
	for range 2000 {
		a, b := random(), random()
		ma, mb := members(a), members(b)
		c := CompactPrefixes(a)
		if members(c) != ma {
			t.Fatalf("CompactPrefixes(%v) = %v changes the set", a, c)
		}
		for i, p := range c {
			for _, q := range c[i+1:] {
				siblings := false
				if p.Bits() == q.Bits() && p.Bits() > 0 {
					parent, _ := p.Addr().Prefix(p.Bits() - 1)
					siblings = parent.Contains(q.Addr())
				}
				if p.Overlaps(q) || siblings {
					t.Fatalf("CompactPrefixes(%v) = %v is not minimal", a, c)
				}
			}
		}
		d := SubtractPrefixes(a, b)
		var want [256]bool
		for i := range 256 {
			want[i] = ma[i] && !mb[i]
		}
		if members(d) != want {
			t.Fatalf("SubtractPrefixes(%v, %v) = %v", a, b, d)
		}
		overlap := false
		for i := range 256 {
			overlap = overlap || ma[i] && mb[i]
		}
		if PrefixesOverlap(a, b) != overlap {
			t.Fatalf("PrefixesOverlap(%v, %v) = %v", a, b, !overlap)
		}
	}
}

func TestAvailableBlocksSmallestFirst(t *testing.T) {
	t.Parallel()
	got := AvailableBlocks(prefixes("10.0.0.0/24", "10.1.0.0/28"), prefixes("10.0.0.0/26"))
	want := prefixes("10.1.0.0/28", "10.0.0.64/26", "10.0.0.128/25")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AvailableBlocks = %v, want %v", got, want)
	}
}

func TestSubnetPoolApply(t *testing.T) {
	t.Parallel()
	create := func(body string) (*SubnetPool, error) {
		items, _, err := decode(SubnetPoolSpec, body, Create)
		if err != nil {
			return nil, err
		}
		p := &SubnetPool{}
		return p, p.Apply(items[0], true)
	}
	p, err := create(`{"subnetpool": {"name": "p", "prefixes": ["10.0.1.0/24", "10.0.0.0/24", "10.0.0.0/25"]}}`)
	if err != nil {
		t.Fatal(err)
	}
	if p.IPVersion != 4 || !reflect.DeepEqual(p.Prefixes, prefixes("10.0.0.0/23")) ||
		p.MinPrefixLen != 8 || p.MaxPrefixLen != 32 || p.DefaultPrefixLen != 8 || p.DefaultQuota != nil {
		t.Errorf("IPv4 defaults: %+v", p)
	}
	p, err = create(`{"subnetpool": {"name": "p", "prefixes": ["2001:db8::/48"], "min_prefixlen": "56", "default_quota": 4}}`)
	if err != nil {
		t.Fatal(err)
	}
	if p.IPVersion != 6 || p.MinPrefixLen != 56 || p.MaxPrefixLen != 128 || p.DefaultPrefixLen != 56 || *p.DefaultQuota != 4 {
		t.Errorf("IPv6 defaults: %+v", p)
	}
	for body, msg := range map[string]string{
		`{"subnetpool": {"name": "p", "prefixes": []}}`:                                                           "Empty subnet pool prefix list.",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8", "2001:db8::/32"]}}`:                              "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8"], "min_prefixlen": 30, "max_prefixlen": 24}}`:     "Illegal prefix bounds: min_prefixlen=30, max_prefixlen=24.",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8"], "max_prefixlen": 33}}`:                          "Illegal prefix bounds: max_prefixlen=33, ip_version_max=32.",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8"], "default_prefixlen": 4}}`:                       "Illegal prefix bounds: default_prefixlen=4, min_prefixlen=8.",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8"], "max_prefixlen": 24, "default_prefixlen": 28}}`: "Illegal prefix bounds: default_prefixlen=28, max_prefixlen=24.",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8"], "min_prefixlen": -1}}`:                          "Invalid input for min_prefixlen. Reason: '-1' should be non-negative.",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8", "10.0.0.0/8"]}}`:                                 "Invalid input for prefixes. Reason: Duplicate items in the list: '10.0.0.0/8'.",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.1/8"]}}`:                                               "Invalid input for prefixes. Reason: '10.0.0.1/8' isn't a recognized IP subnet cidr, '10.0.0.0/8' is recommended.",
		`{"subnetpool": {"name": " ", "prefixes": ["10.0.0.0/8"]}}`:                                               "Invalid input for name. Reason: ' ' Blank strings are not permitted.",
		`{"subnetpool": {"prefixes": ["10.0.0.0/8"]}}`:                                                            "Failed to parse request. Required attribute 'name' not specified",
		`{"subnetpool": {"name": "p"}}`:                                                                           "Failed to parse request. Required attribute 'prefixes' not specified",
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8"], "ip_version": 4}}`:                              "Attribute 'ip_version' not allowed in POST",
	} {
		_, err := create(body)
		wantAPIErr(t, err, 400, msg)
	}

	// Updates: existing prefixes must stay; bounds are kept unless changed.
	p, _ = create(`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/24"], "min_prefixlen": 24, "max_prefixlen": 28}}`)
	update := func(body string) error {
		return p.Apply(decodeOne(t, SubnetPoolSpec, body, Update), false)
	}
	wantAPIErr(t, update(`{"subnetpool": {"prefixes": ["10.0.1.0/24"]}}`), 400, "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.")
	if err := update(`{"subnetpool": {"prefixes": ["10.0.0.0/24", "10.0.1.0/24"], "default_prefixlen": 26}}`); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p.Prefixes, prefixes("10.0.0.0/23")) || p.MinPrefixLen != 24 || p.DefaultPrefixLen != 26 {
		t.Errorf("after update: %+v", p)
	}
	wantAPIErr(t, update(`{"subnetpool": {"min_prefixlen": 27}}`), 400, "Illegal prefix bounds: default_prefixlen=26, min_prefixlen=27.")
	_, _, err = decode(SubnetPoolSpec, `{"subnetpool": {"shared": true}}`, Update)
	wantAPIErr(t, err, 400, "Cannot update read-only attribute shared")
}

func TestSubnetPoolView(t *testing.T) {
	t.Parallel()
	q := 1024
	p := &SubnetPool{
		Standard:  Standard{ID: subID, ProjectID: "proj", Name: "p", CreatedAt: "2024-01-02T03:04:05Z", UpdatedAt: "2024-01-02T03:04:05Z", RevisionNumber: 2},
		IPVersion: 4, Prefixes: prefixes("10.0.0.0/16", "10.2.0.0/16"), DefaultPrefixLen: 24, MinPrefixLen: 8, MaxPrefixLen: 32,
		DefaultQuota: &q, IsDefault: true,
	}
	jsonEqual(t, p.View(), `{"id": "`+subID+`", "project_id": "proj", "tenant_id": "proj", "name": "p", "description": "", "tags": [],
		"created_at": "2024-01-02T03:04:05Z", "updated_at": "2024-01-02T03:04:05Z", "revision_number": 2,
		"prefixes": ["10.0.0.0/16", "10.2.0.0/16"], "default_quota": 1024, "ip_version": 4,
		"default_prefixlen": "24", "min_prefixlen": "8", "max_prefixlen": "32",
		"is_default": true, "shared": false, "address_scope_id": null}`)
	p.DefaultQuota, p.AddressScopeID, p.Shared = nil, netID, true
	v := p.View()
	if v["default_quota"] != nil || v["address_scope_id"] != netID || v["shared"] != true {
		t.Errorf("view: %v", v)
	}
	if !slices.Contains(RBACObjectTypes, "subnetpool") || !slices.Contains(RBACObjectTypes, "address_scope") {
		t.Errorf("RBAC object types: %v", RBACObjectTypes)
	}
}

func TestAddressScopeSpecAndView(t *testing.T) {
	t.Parallel()
	f := decodeOne(t, AddressScopeSpec, `{"address_scope": {"name": "s", "ip_version": "6", "shared": "true"}}`, Create)
	if f["ip_version"] != 6 || f["shared"] != true || f["name"] != "s" {
		t.Errorf("fields: %v", f)
	}
	for body, msg := range map[string]string{
		`{"address_scope": {"name": "s"}}`:                            "Failed to parse request. Required attribute 'ip_version' not specified",
		`{"address_scope": {"ip_version": 5}}`:                        "Invalid input for ip_version. Reason: 5 is not in [4, 6].",
		`{"address_scope": {"ip_version": 4, "description": "x"}}`:    "Unrecognized attribute(s) 'description'",
		`{"address_scope": {"ip_version": 4, "shared": "sometimes"}}`: "Invalid input for shared. Reason: 'sometimes' cannot be converted to boolean.",
	} {
		_, _, err := decode(AddressScopeSpec, body, Create)
		wantAPIErr(t, err, 400, msg)
	}
	_, _, err := decode(AddressScopeSpec, `{"address_scope": {"ip_version": 4}}`, Update)
	wantAPIErr(t, err, 400, "Cannot update read-only attribute ip_version")
	a := &AddressScope{Standard: Standard{ID: subID, ProjectID: "proj", Name: "s"}, IPVersion: 4, Shared: true}
	jsonEqual(t, a.View(), `{"id": "`+subID+`", "project_id": "proj", "tenant_id": "proj", "name": "s", "shared": true, "ip_version": 4}`)
}

func TestDecodeSubnetFromPool(t *testing.T) {
	t.Parallel()
	f := decodeOne(t, SubnetSpec, `{"subnet": {"network_id": "`+netID+`", "ip_version": 4, "subnetpool_id": "`+subID+`", "prefixlen": "26", "use_default_subnetpool": false}}`, Create)
	if f["subnetpool_id"] != subID || f["prefixlen"] != 26 || f["use_default_subnetpool"] != false || f.Has("cidr") {
		t.Errorf("fields: %v", f)
	}
	f = decodeOne(t, SubnetSpec, `{"subnet": {"network_id": "`+netID+`", "ip_version": 4, "cidr": null, "subnetpool_id": null}}`, Create)
	if f["cidr"] != (netip.Prefix{}) || f["subnetpool_id"] != "" {
		t.Errorf("nulls: %v", f)
	}
	_, _, err := decode(SubnetSpec, `{"subnet": {"network_id": "`+netID+`", "ip_version": 4, "prefixlen": -8}}`, Create)
	wantAPIErr(t, err, 400, "Invalid input for prefixlen. Reason: '-8' should be non-negative.")
	_, _, err = decode(SubnetSpec, `{"subnet": {"prefixlen": 24}}`, Update)
	wantAPIErr(t, err, 400, "Cannot update read-only attribute prefixlen")
	s := testSubnet()
	s.SubnetPoolID = subID2
	if v := s.View(); v["subnetpool_id"] != subID2 || v["prefixlen"] != nil {
		t.Errorf("view: %v", v)
	}
}

func FuzzDecodeSubnetPool(f *testing.F) {
	addSeeds(f,
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8", "10.1.0.0/16"], "default_prefixlen": 24, "min_prefixlen": "16", "max_prefixlen": 28}}`,
		`{"subnetpool": {"name": "p", "prefixes": ["2001:db8::/32"], "default_quota": 10, "is_default": true, "shared": "1", "address_scope_id": null}}`,
		`{"subnetpool": {"name": "p", "prefixes": ["10.0.0.0/8", "2001:db8::/32"]}}`,
		`{"subnetpool": {"name": "p", "prefixes": []}}`,
		`{"subnetpool": {"prefixes": ["0.0.0.0/0"], "max_prefixlen": 40}}`,
		`{"subnetpools": [{"name": "a", "prefixes": ["10.0.0.0/8"]}, {"subnetpool": {"name": "b", "prefixes": ["::/0"]}}]}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzDecode(t, SubnetPoolSpec, data)
		// What the service does with decoded fields: Apply, then render.
		body, err := DecodeJSON(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, op := range []Op{Create, Update} {
			items, _, err := SubnetPoolSpec.DecodeBody(body, op)
			if err != nil {
				continue
			}
			for _, it := range items {
				p := &SubnetPool{IPVersion: 4, Prefixes: prefixes("10.0.0.0/16"), MinPrefixLen: 8, MaxPrefixLen: 32, DefaultPrefixLen: 24}
				if op == Create {
					p = &SubnetPool{}
				}
				if err := p.Apply(it, op == Create); err != nil {
					checkAPIErr(t, data, err)
					continue
				}
				if !slices.Equal(p.Prefixes, CompactPrefixes(p.Prefixes)) {
					t.Fatalf("input %q: prefixes %v not compact", data, p.Prefixes)
				}
				if _, err := json.Marshal(p.View()); err != nil {
					t.Fatalf("input %q: view does not marshal: %v", data, err)
				}
			}
		}
	})
}

func FuzzDecodeAddressScope(f *testing.F) {
	addSeeds(f,
		`{"address_scope": {"name": "s", "ip_version": 4, "shared": true}}`,
		`{"address_scope": {"ip_version": "6", "project_id": "p"}}`,
		`{"address_scopes": [{"ip_version": 4}, {"address_scope": {"ip_version": 7}}]}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, AddressScopeSpec, data) })
}
