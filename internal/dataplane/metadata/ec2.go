package metadata

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// EC2Versions are the EC2 metadata API versions Nova serves, oldest first;
// "latest" follows them in the root listing and means the newest.
var EC2Versions = []string{
	"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10",
	"2007-12-15", "2008-02-01", "2008-09-01", "2009-04-04",
}

// ec2Index is a version's position in EC2Versions, -1 if unknown; latest
// is the newest.
func ec2Index(v string) int {
	if v == "latest" {
		return len(EC2Versions) - 1
	}
	return slices.Index(EC2Versions, v)
}

// ec2Since reports whether version index i includes what version v added.
func ec2Since(i int, v string) bool { return i >= slices.Index(EC2Versions, v) }

// EC2InstanceID is the EC2 instance-id of an instance: Nova formats its
// integer database id as "i-%08x"; vland has no such id, so it takes the
// first 8 hex digits of the UUID (the same width, stable for the life of
// the instance, and readable next to the UUID).
func EC2InstanceID(uuid string) string { return "i-" + hex8(uuid) }

// ec2ReservationID stands in for the reservation-id Nova draws at boot: "r-"
// and 8 hex digits of a hash of the instance UUID, so it is stable.
func ec2ReservationID(uuid string) string {
	sum := sha256.Sum256([]byte("reservation:" + uuid))
	return "r-" + hex.EncodeToString(sum[:4])
}

// ec2ImageID is ami-id: like instance-id, from the image UUID.
func ec2ImageID(imageID string) string {
	if imageID == "" {
		return "ami-00000000"
	}
	return "ami-" + hex8(imageID)
}

// hex8 is the first 8 hex digits of a UUID, lower case, zero-padded.
func hex8(uuid string) string {
	var b []byte
	for i := 0; i < len(uuid) && len(b) < 8; i++ {
		c := uuid[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			b = append(b, c)
		case c >= 'A' && c <= 'F':
			b = append(b, c+'a'-'A')
		}
	}
	for len(b) < 8 {
		b = append(b, '0')
	}
	return string(b)
}

// defaultBlockDevices is Nova's block-device-mapping for an instance whose
// libvirt driver named its root disk /dev/vda and that has no other disks.
var defaultBlockDevices = map[string]string{"ami": "vda", "root": "/dev/vda"}

// localIPv4 is local-ipv4: Instance.LocalIPv4, else the request's IPv4
// source, else the first fixed IPv4 of the ports (Nova takes the first
// fixed IPv4, else the request's source).
func (in *Instance) localIPv4(src netip.Addr) netip.Addr {
	if in.LocalIPv4.IsValid() {
		return in.LocalIPv4
	}
	if src = src.Unmap(); src.Is4() {
		return src
	}
	for _, p := range in.Ports {
		for _, f := range p.FixedIPs {
			if f.Address.Is4() {
				return f.Address
			}
		}
	}
	return netip.Addr{}
}

// publicIPv4 is public-ipv4: Instance.PublicIPv4, else the first floating
// IP of the ports.
func (in *Instance) publicIPv4() netip.Addr {
	if in.PublicIPv4.IsValid() {
		return in.PublicIPv4
	}
	for _, p := range in.Ports {
		if p.FloatingIP.IsValid() {
			return p.FloatingIP
		}
	}
	return netip.Addr{}
}

// addrString is an address as text, "" for none (Nova prints ”).
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// keyNames are the instance's key names sorted: EC2 public-keys/<i> and the
// order of meta_data.json keys.
func (in *Instance) keyNames() []string { return slices.Sorted(maps.Keys(in.PublicKeys)) }

// ec2Tree is the EC2 metadata of one version (index into EC2Versions):
// {meta-data/, user-data}, as Nova's get_ec2_metadata builds it. The
// "latest" tree adds what later EC2 versions introduced and vland can
// answer truthfully: mac and network/interfaces/macs/.
func (in *Instance) ec2Tree(vi int, latest bool, src netip.Addr) *node {
	md := newDir()
	md.add("ami-id", leafOf(ec2ImageID(in.ImageID)))
	md.add("ami-launch-index", leafOf(strconv.Itoa(in.LaunchIndex)))
	md.add("ami-manifest-path", leafOf("FIXME")) // Nova's value, verbatim
	md.add("instance-id", leafOf(EC2InstanceID(in.ID)))
	md.add("hostname", leafOf(in.Hostname))
	md.add("local-ipv4", leafOf(addrString(in.localIPv4(src))))
	md.add("reservation-id", leafOf(ec2ReservationID(in.ID)))
	md.add("security-groups", lines(in.SecurityGroups))
	if names := in.keyNames(); len(names) > 0 {
		keys := newDir()
		for i, name := range names {
			k := newDir().add("openssh-key", leafOf(in.PublicKeys[name]))
			k.label = fmt.Sprintf("%d=%s", i, name)
			keys.add(strconv.Itoa(i), k)
		}
		md.add("public-keys", keys)
	}
	if ec2Since(vi, "2007-01-19") {
		md.add("local-hostname", leafOf(in.Hostname))
		md.add("public-hostname", leafOf(in.Hostname))
		md.add("public-ipv4", leafOf(addrString(in.publicIPv4())))
	}
	if ec2Since(vi, "2007-08-29") {
		md.add("instance-type", leafOf(in.InstanceType))
	}
	if ec2Since(vi, "2007-12-15") {
		bdm := in.BlockDevices
		if bdm == nil {
			bdm = defaultBlockDevices
		}
		d := newDir()
		for k, v := range bdm {
			d.add(k, leafOf(v))
		}
		md.add("block-device-mapping", d)
	}
	if ec2Since(vi, "2008-02-01") {
		md.add("placement", newDir().add("availability-zone", leafOf(in.AvailabilityZone)))
	}
	if ec2Since(vi, "2008-09-01") {
		md.add("instance-action", leafOf("none"))
	}
	if latest && len(in.Ports) > 0 && len(in.Ports[0].MAC) > 0 {
		md.add("mac", leafOf(in.Ports[0].MAC.String()))
		macs := newDir()
		for i, p := range in.Ports {
			if len(p.MAC) > 0 {
				macs.add(p.MAC.String(), in.ec2Interface(i, p))
			}
		}
		md.add("network", newDir().add("interfaces", newDir().add("macs", macs)))
	}
	root := newDir().add("meta-data", md)
	if in.UserData != nil {
		root.add("user-data", leafBytes(in.UserData))
	}
	return root
}

// ec2Interface is network/interfaces/macs/<mac>/ for one port, with the
// names AWS uses (a VPC is a network, an ENI a port).
func (in *Instance) ec2Interface(i int, p Port) *node {
	var v4, v6, v6nets []string
	var subnetID, v4net string
	for _, f := range p.FixedIPs {
		if f.Address.Is4() {
			v4 = append(v4, f.Address.String())
			if v4net == "" {
				v4net, subnetID = f.Subnet.CIDR.String(), f.Subnet.ID
			}
			continue
		}
		v6 = append(v6, f.Address.String())
		if c := f.Subnet.CIDR.String(); !slices.Contains(v6nets, c) {
			v6nets = append(v6nets, c)
		}
		if subnetID == "" {
			subnetID = f.Subnet.ID
		}
	}
	d := newDir()
	d.add("device-number", leafOf(strconv.Itoa(i)))
	d.add("interface-id", leafOf(p.ID))
	d.add("local-hostname", leafOf(in.Hostname))
	d.add("mac", leafOf(p.MAC.String()))
	d.add("owner-id", leafOf(in.ProjectID))
	d.add("security-groups", lines(in.SecurityGroups))
	d.add("vpc-id", leafOf(p.NetworkID))
	if subnetID != "" {
		d.add("subnet-id", leafOf(subnetID))
	}
	if len(v4) > 0 {
		d.add("local-ipv4s", lines(v4))
		d.add("subnet-ipv4-cidr-block", leafOf(v4net))
		if p.FloatingIP.IsValid() {
			d.add("public-ipv4s", leafOf(p.FloatingIP.String()))
			d.add("ipv4-associations", newDir().add(p.FloatingIP.String(), leafOf(v4[0])))
		}
	}
	if len(v6) > 0 {
		d.add("ipv6s", lines(v6))
		d.add("subnet-ipv6-cidr-blocks", lines(v6nets))
	}
	return d
}

// ec2Lookup answers an EC2 path below the version (tokens[0] is the
// version).
func (in *Instance) ec2Lookup(tokens []string, src netip.Addr) (answer, bool) {
	vi := ec2Index(tokens[0])
	if vi < 0 {
		return answer{}, false
	}
	n, ok := in.ec2Tree(vi, tokens[0] == "latest", src).find(tokens[1:])
	if !ok {
		return answer{}, false
	}
	return answer{Body: n.body(), ContentType: textPlain}, true
}

// ec2VersionList is the answer to "/": the EC2 versions and latest.
func ec2VersionList() []byte {
	return []byte(strings.Join(append(slices.Clone(EC2Versions), "latest"), "\n"))
}
