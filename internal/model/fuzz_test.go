package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/vland/vland/internal/apierr"
	"github.com/vland/vland/internal/ipam"
)

// fieldTypes is the Go type each spec's Parse functions return, which the
// service layer relies on in its type assertions.
var fieldTypes = map[*Spec]map[string]reflect.Type{
	NetworkSpec: {
		"name": tString, "description": tString, "project_id": tString,
		"admin_state_up": tBool, "shared": tBool, "router:external": tBool, "port_security_enabled": tBool,
		"mtu":                   tInt64,
		"provider:network_type": tString, "provider:physical_network": tString, "provider:segmentation_id": tInt64,
		"segments": reflect.TypeFor[[]SegmentRequest](),
	},
	SubnetSpec: {
		"name": tString, "description": tString, "project_id": tString,
		"network_id": tString, "ip_version": reflect.TypeFor[int](), "cidr": reflect.TypeFor[netip.Prefix](),
		"gateway_ip": tAddr, "allocation_pools": reflect.TypeFor[[]ipam.Pool](), "enable_dhcp": tBool,
		"dns_nameservers": reflect.TypeFor[[]netip.Addr](), "host_routes": reflect.TypeFor[[]HostRoute](),
		"ipv6_ra_mode": tString, "ipv6_address_mode": tString,
		"subnetpool_id": tString, "prefixlen": tInt, "use_default_subnetpool": tBool,
	},
	SubnetPoolSpec: {
		"name": tString, "description": tString, "project_id": tString, "tags": reflect.TypeFor[[]string](),
		"prefixes": reflect.TypeFor[[]netip.Prefix](), "default_quota": tInt, "default_prefixlen": tInt,
		"min_prefixlen": tInt, "max_prefixlen": tInt, "is_default": tBool, "shared": tBool, "address_scope_id": tString,
	},
	AddressScopeSpec: {
		"name": tString, "project_id": tString, "shared": tBool, "ip_version": tInt,
	},
	PortSpec: {
		"name": tString, "description": tString, "project_id": tString,
		"network_id": tString, "admin_state_up": tBool, "mac_address": tString,
		"fixed_ips": reflect.TypeFor[[]FixedIPRequest](), "device_id": tString, "device_owner": tString,
		"binding:host_id": tString, "binding:vnic_type": tString, "binding:profile": reflect.TypeFor[map[string]any](),
		"port_security_enabled": tBool, "allowed_address_pairs": reflect.TypeFor[[]AddressPair](),
		"security_groups": reflect.TypeFor[[]string](),
	},
}

var (
	tString = reflect.TypeFor[string]()
	tBool   = reflect.TypeFor[bool]()
	tInt64  = reflect.TypeFor[int64]()
	tInt    = reflect.TypeFor[int]()
	tAddr   = reflect.TypeFor[netip.Addr]()
)

// checkAPIErr fails unless err is a client error: an *apierr.Error with
// status 400 or 413.
func checkAPIErr(t *testing.T, data []byte, err error) {
	t.Helper()
	var e *apierr.Error
	if !errors.As(err, &e) {
		t.Fatalf("input %q: error %T %v is not an *apierr.Error", data, err, err)
	}
	if e.Status != 400 && e.Status != 413 {
		t.Fatalf("input %q: status %d (%v), want 400 or 413", data, e.Status, e)
	}
	if e.Message == "" || e.Type == "" {
		t.Fatalf("input %q: error without type or message: %#v", data, e)
	}
}

// fuzzDecode feeds data through DecodeJSON and spec.DecodeBody for both
// operations and checks errors are client errors and fields well typed.
func fuzzDecode(t *testing.T, spec *Spec, data []byte) {
	body, err := DecodeJSON(bytes.NewReader(data))
	if err != nil {
		checkAPIErr(t, data, err)
		return
	}
	types := fieldTypes[spec]
	for _, op := range []Op{Create, Update} {
		items, bulk, err := spec.DecodeBody(body, op)
		if err != nil {
			checkAPIErr(t, data, err)
			if items != nil {
				t.Fatalf("input %q: items returned with an error", data)
			}
			continue
		}
		if len(items) == 0 || (!bulk && len(items) != 1) || (bulk && op != Create) {
			t.Fatalf("input %q op %d: %d items, bulk=%v", data, op, len(items), bulk)
		}
		for _, f := range items {
			if f.Has("tenant_id") {
				t.Fatalf("input %q: tenant_id left in fields", data)
			}
			for k, v := range f {
				a, ok := spec.Lookup(k)
				if !ok {
					t.Fatalf("input %q: unknown attribute %q decoded", data, k)
				}
				if op == Create && !a.Post || op == Update && !a.Put {
					t.Fatalf("input %q: attribute %q not writable for op %d", data, k, op)
				}
				if want, ok := types[k]; !ok {
					t.Fatalf("input %q: no type recorded for %q", data, k)
				} else if got := reflect.TypeOf(v); got != want {
					t.Fatalf("input %q: %s decoded as %v, want %v", data, k, got, want)
				}
			}
			for _, a := range spec.Attrs {
				if op == Create && a.Required && !f.Has(a.Name) {
					t.Fatalf("input %q: required %s missing", data, a.Name)
				}
			}
			if spec == NetworkSpec {
				// What the service does with decoded network fields.
				var n Network
				n.Apply(f)
				if _, err := json.Marshal(n.View()); err != nil {
					t.Fatalf("input %q: view does not marshal: %v", data, err)
				}
				if _, err := SegmentFromFields(f); err != nil {
					t.Fatalf("input %q: decoded provider fields refused: %v", data, err)
				}
			}
		}
	}
}

// commonSeeds are bodies every fuzzer starts from.
var commonSeeds = []string{
	``,
	`{}`,
	`null`,
	`[]`,
	`{"x": 1}`,
	`{} }`,
	`{"a": 1}]`,
	`{"a": "\ud800"}`,
	`{"a": 1e999}`,
	`{"a": -0}`,
	`{"a": 123456789012345678901234567890}`,
	"{\"a\": \"\xff\xfe\"}",
	`{"tenant_id": "a", "project_id": "b"}`,
}

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range commonSeeds {
		f.Add([]byte(s))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

func FuzzDecodeNetwork(f *testing.F) {
	addSeeds(f,
		`{"network": {}}`,
		`{"network": null}`,
		`{"network": {"name": "n", "admin_state_up": "yes", "shared": 0, "mtu": "1450", "tenant_id": "p", "project_id": "p"}}`,
		`{"network": {"router:external": true, "port_security_enabled": "off", "description": ""}}`,
		`{"network": {"provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 100}}`,
		`{"network": {"provider:network_type": "vxlan", "provider:physical_network": null, "provider:segmentation_id": null}}`,
		`{"network": {"provider:segmentation_id": "16777215"}}`,
		`{"network": {"provider:segmentation_id": 1.5}}`,
		`{"network": {"segments": [{"provider:network_type": "vlan", "provider:physical_network": "p", "provider:segmentation_id": 5}, {}]}}`,
		`{"network": {"segments": [{"mtu": 1}]}}`,
		`{"network": {"segments": [null]}}`,
		`{"network": {"segments": {}}}`,
		`{"network": {"id": "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f", "status": "ACTIVE"}}`,
		`{"network": {"tags": ["a"], "subnets": []}}`,
		`{"network": {"mtu": 99999999999999999999}}`,
		`{"networks": [{"name": "a"}, {"network": {"name": "b"}}]}`,
		`{"networks": [{"network": 1}]}`,
		`{"networks": []}`,
		`{"networks": [1]}`,
		`{"networks": {"name": "a"}, "network": {"name": "b"}}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, NetworkSpec, data) })
}

func FuzzDecodeSubnet(f *testing.F) {
	addSeeds(f,
		`{"subnet": {"network_id": "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f", "ip_version": 4, "cidr": "10.0.0.0/24"}}`,
		`{"subnet": {"network_id": "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f", "ip_version": "6", "cidr": "2001:db8::/64", "gateway_ip": null, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "slaac"}}`,
		`{"subnet": {"network_id": "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f", "ip_version": 4, "cidr": "10.0.0.1/24"}}`,
		`{"subnet": {"ip_version": 5}}`,
		`{"subnet": {"ip_version": 4.0}}`,
		`{"subnet": {"gateway_ip": "10.0.0.1", "enable_dhcp": "f", "name": "x"}}`,
		`{"subnet": {"allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.9"}, {"start": "10.0.0.20"}]}}`,
		`{"subnet": {"allocation_pools": [{"start": "::ffff:10.0.0.2", "end": "fe80::1%eth0"}]}}`,
		`{"subnet": {"allocation_pools": null}}`,
		`{"subnet": {"dns_nameservers": ["8.8.8.8", "8.8.8.8"]}}`,
		`{"subnet": {"dns_nameservers": null, "host_routes": null}}`,
		`{"subnet": {"host_routes": [{"destination": "0.0.0.0/0", "nexthop": "10.0.0.1"}, {"destination": "0.0.0.0/0", "nexthop": "10.0.0.1"}]}}`,
		`{"subnet": {"host_routes": [{"destination": "0.0.0.0/0"}]}}`,
		`{"subnets": [{"network_id": "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f", "ip_version": 4, "cidr": "10.0.0.0/24"}, {"subnet": {}}]}`,
		`{"subnet": {"subnetpool_id": null, "prefixlen": 24}}`,
		`{"subnet": {"network_id": "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f", "ip_version": 4, "cidr": null, "subnetpool_id": "9b7d2c1e-3f4a-4b5c-8d6e-7f8091a2b3c4", "prefixlen": "26", "use_default_subnetpool": "true"}}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, SubnetSpec, data) })
}

func FuzzDecodePort(f *testing.F) {
	addSeeds(f,
		`{"port": {"network_id": "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f"}}`,
		`{"port": {"network_id": "4E9C1C4A-0B6E-4E8B-9D1B-1A2B3C4D5E6F", "mac_address": "FA-16-3E-11-22-33", "admin_state_up": "1"}}`,
		`{"port": {"mac_address": "01:00:5e:00:00:01"}}`,
		`{"port": {"mac_address": "00:00:00:00:00:00"}}`,
		`{"port": {"fixed_ips": [{"subnet_id": "9b7d2c1e-3f4a-4b5c-8d6e-7f8091a2b3c4", "ip_address": "10.0.0.5"}, {"ip_address": "10.0.0.5"}]}}`,
		`{"port": {"fixed_ips": [{}]}}`,
		`{"port": {"fixed_ips": [{"subnet_id": null}]}}`,
		`{"port": {"fixed_ips": null}}`,
		`{"port": {"allowed_address_pairs": [{"ip_address": "10.0.0.0/24", "mac_address": null}, {"ip_address": "10.0.0.1"}]}}`,
		`{"port": {"allowed_address_pairs": null, "security_groups": null}}`,
		`{"port": {"allowed_address_pairs": [{"mac_address": "fa:16:3e:00:00:01"}]}}`,
		`{"port": {"security_groups": ["5a6b7c8d-9e0f-4a1b-9c2d-3e4f5a6b7c8d", "5A6B7C8D-9E0F-4A1B-9C2D-3E4F5A6B7C8D"]}}`,
		`{"port": {"binding:host_id": "h", "binding:vnic_type": "direct", "binding:profile": {"a": [1, {"b": null}]}}}`,
		`{"port": {"binding:profile": null, "binding:vif_type": "ovs"}}`,
		`{"port": {"device_id": "d", "device_owner": "network:dhcp", "port_security_enabled": "no"}}`,
		`{"ports": [{"network_id": "4e9c1c4a-0b6e-4e8b-9d1b-1a2b3c4d5e6f"}, {"port": {"name": 1}}]}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) { fuzzDecode(t, PortSpec, data) })
}
