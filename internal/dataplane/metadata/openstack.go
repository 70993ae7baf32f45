package metadata

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// OpenStackVersions are the OpenStack metadata API versions Nova serves,
// oldest first (each named after a release's date); "latest" follows them
// in the /openstack listing and means the newest.
var OpenStackVersions = []string{
	osFolsom, osGrizzly, osHavana, osLiberty, osNewtonOne, osNewtonTwo,
	osOcata, osRocky, osVictoria, osEpoxy,
}

// The versions that changed what the service answers (Nova's names).
const (
	osFolsom    = "2012-08-10"
	osGrizzly   = "2013-04-04" // random_seed, password
	osHavana    = "2013-10-17" // vendor_data.json
	osLiberty   = "2015-10-15" // project_id, network_data.json listed
	osNewtonOne = "2016-06-30" // devices
	osNewtonTwo = "2016-10-06" // vendor_data2.json
	osOcata     = "2017-02-22"
	osRocky     = "2018-08-27"
	osVictoria  = "2020-10-14" // dedicated_cpus
	osEpoxy     = "2025-04-04"
)

// The files of an OpenStack version directory.
const (
	mdJSON   = "meta_data.json"
	udName   = "user_data"
	passName = "password"
	vdJSON   = "vendor_data.json"
	nwJSON   = "network_data.json"
	vd2JSON  = "vendor_data2.json"
)

// Content types of the answers, as Nova's webob sets them.
const (
	textPlain = "text/plain; charset=utf-8"
	appJSON   = "application/json"
)

// randomSeedBytes is the length of meta_data.json's random_seed before
// base64, as Nova draws it.
const randomSeedBytes = 512

// osIndex is a version's position in OpenStackVersions, -1 if unknown.
func osIndex(v string) int {
	if v == "latest" {
		return len(OpenStackVersions) - 1
	}
	return slices.Index(OpenStackVersions, v)
}

// osSince reports whether version index i includes what version v added.
func osSince(i int, v string) bool { return i >= slices.Index(OpenStackVersions, v) }

// osVersionList is the answer to /openstack. Nova hides versions dated in
// the future; every version here is in the past.
func osVersionList() []byte {
	return []byte(strings.Join(append(slices.Clone(OpenStackVersions), "latest"), "\n"))
}

// osLookup answers a path under /openstack (tokens[0] is the version), as
// Nova's RouteConfiguration does: the version directory lists its files,
// and each file has its handler. Like Nova, network_data.json is answered
// at every version although it is listed from Liberty on.
func (in *Instance) osLookup(tokens []string, seed func([]byte)) (answer, bool) {
	vi := osIndex(tokens[0])
	if vi < 0 {
		return answer{}, false
	}
	if len(tokens) == 1 {
		return answer{Body: []byte(strings.Join(in.osFiles(vi), "\n")), ContentType: textPlain}, true
	}
	switch strings.Join(tokens[1:], "/") {
	case mdJSON:
		return jsonAnswer(in.metaData(vi, seed)), true
	case udName:
		if in.UserData == nil {
			return answer{}, false
		}
		return answer{Body: in.UserData, ContentType: textPlain}, true
	case passName:
		if !osSince(vi, osGrizzly) {
			return answer{}, false
		}
		// vland keeps no instance password: Nova answers "" until the guest
		// posts one, which this read-only service does not accept.
		return answer{Body: []byte{}, ContentType: textPlain}, true
	case vdJSON:
		if !osSince(vi, osHavana) {
			return answer{}, false
		}
		return answer{Body: []byte("{}"), ContentType: appJSON}, true
	case vd2JSON:
		if !osSince(vi, osNewtonTwo) {
			return answer{}, false
		}
		// Nova's default provider list is StaticJSON, with no file: {}.
		return answer{Body: []byte(`{"static": {}}`), ContentType: appJSON}, true
	case nwJSON:
		return jsonAnswer(in.networkData()), true
	}
	return answer{}, false
}

// osFiles is the listing of a version directory, in Nova's order.
func (in *Instance) osFiles(vi int) []string {
	files := []string{mdJSON}
	if in.UserData != nil {
		files = append(files, udName)
	}
	if osSince(vi, osGrizzly) {
		files = append(files, passName)
	}
	if osSince(vi, osHavana) {
		files = append(files, vdJSON)
	}
	if osSince(vi, osLiberty) {
		files = append(files, nwJSON)
	}
	if osSince(vi, osNewtonTwo) {
		files = append(files, vd2JSON)
	}
	return files
}

// metaData is meta_data.json, its keys in Nova's order.
type metaData struct {
	UUID             string            `json:"uuid"`
	Meta             map[string]string `json:"meta,omitempty"`
	PublicKeys       map[string]string `json:"public_keys,omitempty"`
	Keys             []keyPair         `json:"keys,omitempty"`
	Hostname         string            `json:"hostname"`
	Name             string            `json:"name"`
	LaunchIndex      int               `json:"launch_index"`
	AvailabilityZone *string           `json:"availability_zone"`
	RandomSeed       string            `json:"random_seed,omitempty"`
	ProjectID        *string           `json:"project_id,omitempty"`
	Devices          *[]struct{}       `json:"devices,omitempty"`
	DedicatedCPUs    *[]int            `json:"dedicated_cpus,omitempty"`
}

// keyPair is one entry of meta_data.json's keys.
type keyPair struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Data string `json:"data"`
}

func (in *Instance) metaData(vi int, seed func([]byte)) *metaData {
	md := &metaData{UUID: in.ID, Hostname: in.Hostname, Name: in.Name, LaunchIndex: in.LaunchIndex}
	if len(in.Meta) > 0 {
		md.Meta = in.Meta
	}
	if len(in.PublicKeys) > 0 {
		md.PublicKeys = in.PublicKeys
		for _, name := range in.keyNames() {
			md.Keys = append(md.Keys, keyPair{Name: name, Type: "ssh", Data: in.PublicKeys[name]})
		}
	}
	if in.AvailabilityZone != "" {
		md.AvailabilityZone = &in.AvailabilityZone
	}
	if osSince(vi, osGrizzly) {
		b := make([]byte, randomSeedBytes)
		seed(b)
		md.RandomSeed = base64.StdEncoding.EncodeToString(b)
	}
	if osSince(vi, osLiberty) {
		md.ProjectID = &in.ProjectID
	}
	if osSince(vi, osNewtonOne) {
		md.Devices = &[]struct{}{} // vland knows no tagged devices
	}
	if osSince(vi, osVictoria) {
		md.DedicatedCPUs = &[]int{}
	}
	return md
}

// networkData is network_data.json.
type networkData struct {
	Links    []link    `json:"links"`
	Networks []network `json:"networks"`
	Services []service `json:"services"`
}

type link struct {
	ID    string `json:"id"`
	VIFID string `json:"vif_id"`
	Type  string `json:"type"`
	MTU   *int   `json:"mtu"`
	MAC   string `json:"ethernet_mac_address"`
}

type network struct {
	ID        string     `json:"id"`
	Type      string     `json:"type"`
	Link      string     `json:"link"`
	IPAddress string     `json:"ip_address,omitempty"`
	Netmask   string     `json:"netmask,omitempty"`
	Routes    *[]route   `json:"routes,omitempty"`
	NetworkID string     `json:"network_id"`
	Services  *[]service `json:"services,omitempty"`
}

type route struct {
	Network string `json:"network"`
	Netmask string `json:"netmask"`
	Gateway string `json:"gateway"`
}

type service struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// legacyVIFTypes are the binding:vif_type values Nova exposes as a link's
// type; any other becomes "phy".
var legacyVIFTypes = []string{"bridge", "dvs", "hw_veb", "hyperv", "ovs", "tap", "vhostuser", "vif"}

// nicNameLen is Nova's limit on a VIF's device name: tap + 11 characters
// of the port id, the same tap<id11> name vland's hosts give it.
const nicNameLen = 14

// networkData renders network_data.json the way Nova's
// netutils.get_network_metadata does: one link per port that has subnets,
// one network for the port's first IPv4 subnet and one for its first IPv6
// subnet (a limitation Nova has too), and the DNS servers, deduplicated,
// as services.
func (in *Instance) networkData() any {
	if len(in.Ports) == 0 {
		return struct{}{} // Nova: no network info at all gives {}
	}
	nd := &networkData{Links: []link{}, Networks: []network{}, Services: []service{}}
	for _, p := range in.Ports {
		subnets := portSubnets(p)
		if len(subnets) == 0 {
			continue
		}
		l := portLink(p, len(nd.Links), subnets)
		nd.Links = append(nd.Links, l)
		for _, v6 := range []bool{false, true} {
			i := slices.IndexFunc(subnets, func(s Subnet) bool { return s.CIDR.Addr().Is6() == v6 })
			if i < 0 {
				continue
			}
			s := subnets[i]
			nd.Networks = append(nd.Networks, subnetNetwork(p, s, len(nd.Networks), l.ID))
			for _, d := range dnsServices(s) {
				if !slices.Contains(nd.Services, d) {
					nd.Services = append(nd.Services, d)
				}
			}
		}
	}
	return nd
}

// portSubnets are the distinct subnets of a port's fixed IPs, in order.
func portSubnets(p Port) []Subnet {
	var out []Subnet
	for _, f := range p.FixedIPs {
		if !f.Subnet.CIDR.IsValid() {
			continue
		}
		if !slices.ContainsFunc(out, func(s Subnet) bool { return s.CIDR == f.Subnet.CIDR && s.ID == f.Subnet.ID }) {
			out = append(out, f.Subnet)
		}
	}
	return out
}

// portLink is the link of a port: named as the host names its tap device;
// its MTU is left to DHCP when a subnet has DHCP, as Nova does.
func portLink(p Port, n int, subnets []Subnet) link {
	id := "tap" + p.ID
	if len(id) > nicNameLen {
		id = id[:nicNameLen]
	}
	if p.ID == "" {
		id = "interface" + strconv.Itoa(n)
	}
	typ := p.VIFType
	if typ == "" {
		typ = "bridge"
	}
	if !slices.Contains(legacyVIFTypes, typ) {
		typ = "phy"
	}
	l := link{ID: id, VIFID: p.ID, Type: typ, MAC: p.MAC.String()}
	dhcp := slices.ContainsFunc(subnets, func(s Subnet) bool { return s.DHCP })
	if !dhcp && p.MTU > 0 {
		mtu := p.MTU
		l.MTU = &mtu
	}
	return l
}

// subnetNetwork is the networks entry of a port's subnet: DHCP's bare entry
// when the subnet has DHCP and no IPv6 address mode, else the address,
// netmask, routes (the default route through the gateway, then the host
// routes) and DNS services.
func subnetNetwork(p Port, s Subnet, n int, linkID string) network {
	ver := "4"
	if s.CIDR.Addr().Is6() {
		ver = "6"
	}
	nw := network{ID: "network" + strconv.Itoa(n), Link: linkID, NetworkID: p.NetworkID}
	switch {
	case s.IPv6AddressMode != "":
		nw.Type = "ipv" + ver + "_" + s.IPv6AddressMode
	case s.DHCP:
		nw.Type = "ipv" + ver + "_dhcp"
		return nw
	default:
		nw.Type = "ipv" + ver
	}
	var ip netip.Addr
	for _, f := range p.FixedIPs {
		if f.Subnet.CIDR == s.CIDR && f.Subnet.ID == s.ID {
			ip = f.Address
			break
		}
	}
	nw.IPAddress = ip.String()
	nw.Netmask = netmask(s.CIDR.Bits(), s.CIDR.Addr().Is6())
	routes := []route{}
	if s.Gateway.IsValid() {
		all := "0.0.0.0"
		if s.CIDR.Addr().Is6() {
			all = "::"
		}
		routes = append(routes, route{Network: all, Netmask: all, Gateway: s.Gateway.String()})
	}
	for _, r := range s.HostRoutes {
		d := r.Destination.Masked()
		routes = append(routes, route{Network: d.Addr().String(), Netmask: netmask(d.Bits(), d.Addr().Is6()), Gateway: r.NextHop.String()})
	}
	nw.Routes = &routes
	svcs := dnsServices(s)
	nw.Services = &svcs
	return nw
}

// dnsServices are a subnet's DNS servers as services.
func dnsServices(s Subnet) []service {
	out := []service{}
	for _, a := range s.DNS {
		out = append(out, service{Type: "dns", Address: a.String()})
	}
	return out
}

// netmask renders a prefix length as a mask: dotted for IPv4, an IPv6
// address for IPv6 ("ffff:ffff:ffff:ffff::"), as netaddr prints them.
func netmask(bits int, v6 bool) string {
	n := 4
	if v6 {
		n = 16
	}
	b := make([]byte, n)
	for i := range b {
		switch {
		case bits >= 8:
			b[i] = 0xff
			bits -= 8
		case bits > 0:
			b[i] = byte(0xff << (8 - bits))
			bits = 0
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a.String()
}

// jsonAnswer encodes v as Nova does, without escaping HTML characters
// (Python's json module does not).
func jsonAnswer(v any) answer {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only maps of strings and plain structs are encoded: cannot fail.
		panic("metadata: encode JSON: " + err.Error())
	}
	return answer{Body: bytes.TrimSuffix(buf.Bytes(), []byte("\n")), ContentType: appJSON}
}
