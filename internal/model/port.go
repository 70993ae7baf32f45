package model

import (
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// Port statuses.
const (
	StatusActive = "ACTIVE"
	StatusDown   = "DOWN"
	StatusBuild  = "BUILD"
	StatusError  = "ERROR"
)

// Binding VIF types.
const (
	VIFUnbound       = "unbound"
	VIFBindingFailed = "binding_failed"
)

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string     `json:"subnet_id"`
	IPAddress netip.Addr `json:"ip_address"`
}

// AddressPair is an extra address (or prefix) a port may send from.
type AddressPair struct {
	IPAddress  netip.Prefix `json:"ip_address"`
	MACAddress string       `json:"mac_address"`
}

// Port is a virtual switch port on a network.
type Port struct {
	Standard
	NetworkID           string         `json:"network_id"`
	AdminStateUp        bool           `json:"admin_state_up"`
	MACAddress          string         `json:"mac_address"`
	FixedIPs            []FixedIP      `json:"fixed_ips"`
	DeviceID            string         `json:"device_id"`
	DeviceOwner         string         `json:"device_owner"`
	Status              string         `json:"status"`
	HostID              string         `json:"binding:host_id"`
	VIFType             string         `json:"binding:vif_type"`
	VIFDetails          map[string]any `json:"binding:vif_details"`
	VNICType            string         `json:"binding:vnic_type"`
	Profile             map[string]any `json:"binding:profile"`
	PortSecurityEnabled bool           `json:"port_security_enabled"`
	AllowedAddressPairs []AddressPair  `json:"allowed_address_pairs"`
	SecurityGroups      []string       `json:"security_groups"`
	ExtraDHCPOpts       []ExtraDHCPOpt `json:"extra_dhcp_opts"`
	// InactiveBindings are bindings to other hosts made ahead of a live
	// migration (binding-extended); the active one is the binding:* fields.
	InactiveBindings []Binding `json:"inactive_bindings,omitempty"`
	// DNSName is the port's host name in its network's DNS (dns_name).
	DNSName string `json:"dns_name"`
}

// Binding is one of a port's bindings to a host.
type Binding struct {
	Host       string         `json:"host"`
	VIFType    string         `json:"vif_type"`
	VIFDetails map[string]any `json:"vif_details"`
	VNICType   string         `json:"vnic_type"`
	Profile    map[string]any `json:"profile"`
}

// BindingView renders a binding with its status, as binding-extended shows it.
func (p *Port) BindingView(b Binding, active bool) map[string]any {
	status := "INACTIVE"
	if active {
		status = "ACTIVE"
	}
	return map[string]any{
		"host": b.Host, "vif_type": b.VIFType, "vif_details": orEmpty(b.VIFDetails), "vnic_type": b.VNICType,
		"profile": orEmpty(b.Profile), "status": status, "project_id": p.ProjectID,
	}
}

// ActiveBinding returns the port's active binding as a Binding.
func (p *Port) ActiveBinding() Binding {
	return Binding{Host: p.HostID, VIFType: p.VIFType, VIFDetails: p.VIFDetails, VNICType: p.VNICType, Profile: p.Profile}
}

// ExtraDHCPOpt is a DHCP option a port's DHCP replies carry (extra_dhcp_opt).
type ExtraDHCPOpt struct {
	OptName   string `json:"opt_name"`
	OptValue  string `json:"opt_value"`
	IPVersion int    `json:"ip_version"`
	// Remove marks an update entry whose null value deletes the option.
	Remove bool `json:"-"`
}

// FixedIPRequest is one element of a request's fixed_ips: a subnet, an
// address, or both.
type FixedIPRequest struct {
	SubnetID  string
	IPAddress netip.Addr
}

// PortSpec is the attribute map of ports.
var PortSpec = &Spec{
	Singular: "port",
	Plural:   "ports",
	Attrs: append(standardAttrs(),
		&Attr{Name: "network_id", Post: true, Required: true, Parse: ParseUUID},
		&Attr{Name: "admin_state_up", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "mac_address", Post: true, Put: true, Parse: parseMACOrNull},
		&Attr{Name: "fixed_ips", Post: true, Put: true, Parse: parseFixedIPs},
		&Attr{Name: "device_id", Post: true, Put: true, Parse: ParseString(255)},
		&Attr{Name: "device_owner", Post: true, Put: true, Parse: ParseString(255)},
		&Attr{Name: "status"},
		&Attr{Name: "binding:host_id", Post: true, Put: true, AdminOnly: true, Parse: ParseString(255)},
		&Attr{Name: "binding:vif_type"},
		&Attr{Name: "binding:vif_details"},
		&Attr{Name: "binding:vnic_type", Post: true, Put: true, Parse: ParseOneOf("normal", "direct", "macvtap", "baremetal", "direct-physical", "virtio-forwarder", "smart-nic", "remote-managed", "vdpa", "accelerator-direct", "accelerator-direct-physical")},
		&Attr{Name: "binding:profile", Post: true, Put: true, AdminOnly: true, Parse: ParseDict},
		&Attr{Name: "port_security_enabled", Post: true, Put: true, Parse: ParseBool},
		&Attr{Name: "allowed_address_pairs", Post: true, Put: true, Parse: parseAddressPairs},
		&Attr{Name: "security_groups", Post: true, Put: true, Parse: parseSecurityGroups},
		&Attr{Name: "extra_dhcp_opts", Post: true, Put: true, Parse: parseExtraDHCPOpts},
		&Attr{Name: "dns_name", Post: true, Put: true, Parse: parseDNSName},
		&Attr{Name: "dns_assignment"},
	),
}

func parseFixedIPs(v any) (any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, reason("Invalid data format for fixed IP: '%s'", show(v))
	}
	out := make([]FixedIPRequest, 0, len(list))
	seen := map[netip.Addr]bool{}
	for _, it := range list {
		m, err := dictWith(it, nil, "subnet_id", "ip_address")
		if err != nil || len(m) == 0 {
			return nil, reason("Invalid data format for fixed IP: '%s'", show(it))
		}
		var r FixedIPRequest
		if s, ok := m["subnet_id"]; ok {
			id, err := ParseUUID(s)
			if err != nil {
				return nil, err
			}
			r.SubnetID = id.(string)
		}
		if a, ok := m["ip_address"]; ok {
			ip, err := ParseIP(a)
			if err != nil {
				return nil, err
			}
			r.IPAddress = ip.(netip.Addr)
			// As neutron-lib's validate_fixed_ips: one address, once.
			if seen[r.IPAddress] {
				return nil, reason("Duplicate IP address '%s'", show(a))
			}
			seen[r.IPAddress] = true
		}
		out = append(out, r)
	}
	return out, nil
}

func parseAddressPairs(v any) (any, error) {
	if v == nil {
		return []AddressPair{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reason("Allowed address pairs must be a list")
	}
	out := make([]AddressPair, 0, len(list))
	seen := map[AddressPair]bool{}
	for _, it := range list {
		m, err := dictWith(it, []string{"ip_address"}, "mac_address")
		if err != nil {
			return nil, err
		}
		p, err := ParseIPOrCIDR(m["ip_address"])
		if err != nil {
			return nil, err
		}
		pair := AddressPair{IPAddress: p.(netip.Prefix)}
		if mac, ok := m["mac_address"]; ok && mac != nil {
			mv, err := ParseMAC(mac)
			if err != nil {
				return nil, err
			}
			pair.MACAddress = mv.(string)
		}
		if seen[pair] {
			return nil, reason("Duplicate address detected")
		}
		seen[pair] = true
		out = append(out, pair)
	}
	return out, nil
}

func parseSecurityGroups(v any) (any, error) {
	if v == nil {
		return []string{}, nil
	}
	return ParseUUIDList(v)
}

// View implements Object.
func (p *Port) View() map[string]any {
	m := make(map[string]any, 28)
	p.Standard.view(m)
	m["network_id"] = p.NetworkID
	m["admin_state_up"] = p.AdminStateUp
	m["mac_address"] = p.MACAddress
	ips := make([]any, len(p.FixedIPs))
	for i, f := range p.FixedIPs {
		ips[i] = map[string]any{"subnet_id": f.SubnetID, "ip_address": f.IPAddress.String()}
	}
	m["fixed_ips"] = ips
	m["device_id"] = p.DeviceID
	m["device_owner"] = p.DeviceOwner
	m["status"] = p.Status
	m["binding:host_id"] = p.HostID
	m["binding:vif_type"] = p.VIFType
	m["binding:vif_details"] = orEmpty(p.VIFDetails)
	m["binding:vnic_type"] = p.VNICType
	m["binding:profile"] = orEmpty(p.Profile)
	m["port_security_enabled"] = p.PortSecurityEnabled
	pairs := make([]any, len(p.AllowedAddressPairs))
	for i, a := range p.AllowedAddressPairs {
		ip := a.IPAddress.String()
		if a.IPAddress.IsSingleIP() {
			ip = a.IPAddress.Addr().String()
		}
		mac := a.MACAddress
		if mac == "" {
			mac = p.MACAddress
		}
		pairs[i] = map[string]any{"ip_address": ip, "mac_address": mac}
	}
	m["allowed_address_pairs"] = pairs
	sgs := p.SecurityGroups
	if sgs == nil {
		sgs = []string{}
	}
	m["security_groups"] = sgs
	opts := make([]any, len(p.ExtraDHCPOpts))
	for i, o := range p.ExtraDHCPOpts {
		opts[i] = map[string]any{"opt_name": o.OptName, "opt_value": o.OptValue, "ip_version": o.IPVersion}
	}
	m["extra_dhcp_opts"] = opts
	m["dns_name"] = p.DNSName
	assign := make([]any, len(p.FixedIPs))
	for i, f := range p.FixedIPs {
		host := HostName(p.DNSName, f.IPAddress)
		assign[i] = map[string]any{"hostname": host, "ip_address": f.IPAddress.String(), "fqdn": host + "." + DNSDomain}
	}
	m["dns_assignment"] = assign
	return m
}

// PortAdminOnlyViews are rendered attributes only admins (and, for some,
// owners) see.
var PortAdminOnlyViews = []string{"binding:host_id", "binding:vif_type", "binding:vif_details", "binding:profile"}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// parseMACOrNull is ParseMAC where null asks for a new generated MAC
// (port-mac-address-regenerate); it returns "" then.
func parseMACOrNull(v any) (any, error) {
	if v == nil {
		return "", nil
	}
	return ParseMAC(v)
}

// blankDHCPOpts may have an empty value (Neutron's VALID_BLANK_EXTRA_DHCP_OPTS).
var blankDHCPOpts = []string{"router", "classless-static-route"}

func parseExtraDHCPOpts(v any) (any, error) {
	if v == nil {
		return []ExtraDHCPOpt{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, reason("'%s' is not a list", show(v))
	}
	out := make([]ExtraDHCPOpt, 0, len(list))
	for _, it := range list {
		m, err := dictWith(it, []string{"opt_name", "opt_value"}, "ip_version")
		if err != nil {
			return nil, err
		}
		name, ok := m["opt_name"].(string)
		if !ok || strings.TrimSpace(name) == "" || len(name) > 64 || strings.ContainsAny(name, "\r\n") {
			return nil, reason("'%s' is not a valid DHCP option name", show(m["opt_name"]))
		}
		o := ExtraDHCPOpt{OptName: name, IPVersion: 4}
		switch val := m["opt_value"].(type) {
		case nil:
			o.Remove = true
		case string:
			if (val == "" && !contains(blankDHCPOpts, name)) || len(val) > 255 || strings.ContainsAny(val, "\r\n") {
				return nil, reason("'%s' is not a valid value for DHCP option %s", val, name)
			}
			o.OptValue = val
		default:
			return nil, reason("'%s' is not a valid string", show(val))
		}
		if iv, ok := m["ip_version"]; ok {
			n, err := parseIPVersion(iv)
			if err != nil {
				return nil, err
			}
			o.IPVersion = n.(int)
		}
		out = append(out, o)
	}
	return out, nil
}

// MergeDHCPOpts applies update entries to a port's options: an entry
// replaces the option of the same name and IP version, a null value
// removes it.
func MergeDHCPOpts(have, upd []ExtraDHCPOpt) []ExtraDHCPOpt {
	out := append([]ExtraDHCPOpt{}, have...)
	for _, u := range upd {
		i := slices.IndexFunc(out, func(o ExtraDHCPOpt) bool { return o.OptName == u.OptName && o.IPVersion == u.IPVersion })
		switch {
		case u.Remove && i >= 0:
			out = slices.Delete(out, i, i+1)
		case u.Remove:
		case i >= 0:
			out[i] = u
		default:
			out = append(out, u)
		}
	}
	return out
}

// DNSDomain is the domain ports' names live under (Neutron's dns_domain
// option, with its trailing dot); the server sets it from its configuration.
var DNSDomain = "openstacklocal."

// HostName is a port's host name for an address: its dns_name, else
// Neutron's "host-10-0-0-5" form of the address.
func HostName(dnsName string, ip netip.Addr) string {
	if dnsName != "" {
		return strings.TrimSuffix(strings.SplitN(dnsName, ".", 2)[0], ".")
	}
	return "host-" + strings.NewReplacer(".", "-", ":", "-").Replace(ip.String())
}

var (
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	allDigits = regexp.MustCompile(`^[0-9]+$`)
)

// parseDNSName accepts a host name (PQDN) or an FQDN, as neutron-lib's
// dns_host_name validator, lower-cased.
func parseDNSName(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, reason("'%s' is not a valid string", show(v))
	}
	s = strings.ToLower(s)
	if s == "" {
		return s, nil
	}
	trimmed := strings.TrimSuffix(s, ".")
	if len(trimmed) > 255 {
		return nil, reason("'%s' not a valid PQDN or FQDN. Reason: '%s' exceeds the 255 character FQDN limit", s, trimmed)
	}
	labels := strings.Split(trimmed, ".")
	for _, l := range labels {
		if !dnsLabel.MatchString(l) {
			return nil, reason("'%s' not a valid PQDN or FQDN. Reason: Name '%s' must be 1-63 characters long, each of which can only be alphanumeric or a hyphen", s, l)
		}
	}
	if strings.HasSuffix(s, ".") && DNSDomain != "" && (!strings.HasSuffix(s, "."+DNSDomain) || len(s) <= len(DNSDomain)+1) {
		return nil, reason("The dns_name passed is a FQDN. Its higher level labels must be equal to the dns_domain option in neutron.conf, that has been set to '%s'. It must also include one or more valid DNS labels to the left of '%s'", DNSDomain, DNSDomain)
	}
	if len(labels) > 1 && allDigits.MatchString(labels[len(labels)-1]) {
		return nil, reason("'%s' not a valid PQDN or FQDN. Reason: TLD '%s' must not be all numeric", s, labels[len(labels)-1])
	}
	return s, nil
}
