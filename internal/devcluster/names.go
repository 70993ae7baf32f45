package devcluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
)

// Roles a simulated host plays.
const (
	RoleCompute = "compute"
	RoleNetwork = "network"
)

// Limits on cluster shape: interface names (<p>-<host>) must fit in 15
// characters and host numbers in the last octet of the underlay.
const (
	maxComputeHosts = 50
	maxNetworkHosts = 20
)

// DefaultRoot is the parent of clusters' default directories.
const DefaultRoot = "/var/lib/vland/dev"

// registryDir records which cluster owns each prefix (tmpfs: it goes away
// at reboot with the namespaces it describes).
const registryDir = "/run/vland/dev"

var (
	clusterNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	vmNameRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$`)
)

// ValidName reports whether name can name a cluster: lower-case letters,
// digits and dashes, at most 32, as it becomes project and user names.
func ValidName(name string) error {
	if !clusterNameRE.MatchString(name) {
		return fmt.Errorf("cluster name %q: use 1-32 lower-case letters, digits and dashes, starting with a letter or digit", name)
	}
	return nil
}

func validVMName(name string) error {
	if !vmNameRE.MatchString(name) {
		return fmt.Errorf("VM name %q: use 1-40 letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

// Prefix is the short prefix of cluster name's namespaces and links: "v" and
// the first four hex digits of the SHA-256 of the name (five characters, so
// "<p>-compute12" still fits the kernel's 15-character interface names).
// Up refuses a name whose prefix another live cluster holds.
func Prefix(name string) string {
	sum := sha256.Sum256([]byte(name))
	return "v" + hex.EncodeToString(sum[:2])
}

// DefaultDir is a cluster's directory unless --dir says otherwise.
func DefaultDir(name string) string { return filepath.Join(DefaultRoot, name) }

// underlay is the cluster's data network, 10.250.X.0/24 with X from the
// name's hash, used only inside the cluster's namespaces.
func underlay(name string) netip.Prefix {
	sum := sha256.Sum256([]byte(name))
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, sum[2], 0}), 24)
}

// hostIP is the VXLAN endpoint of a host: .11… for compute hosts, .101… for
// network hosts.
func hostIP(u netip.Prefix, role string, n int) netip.Addr {
	b := u.Addr().As4()
	b[3] = byte(10 + n)
	if role == RoleNetwork {
		b[3] = byte(100 + n)
	}
	return netip.AddrFrom4(b)
}

// hostName is the name of the n-th host of a role: compute1, network2…
func hostName(role string, n int) string { return role + strconv.Itoa(n) }

// Names derived from the prefix.
func fabricNS(p string) string             { return p + "-fabric" }
func fabricBridge(p string) string         { return p + "-data" }
func hostNS(p, host string) string         { return p + "-" + host }
func hostFabricLink(p, host string) string { return p + "-" + host }
func vmNS(p, vm string) string             { return p + "-vm-" + vm }

// agentNSPrefix is the --namespace-prefix of a host's agent: the cluster's
// prefix and the host's name, so the DHCP (and later router) namespaces of
// each host are its own (<p>-network1-qdhcp-<netid>): an agent removes the
// namespaces of its prefix that it does not want, and two network hosts
// serve the same network side by side.
func agentNSPrefix(p, host string) string { return p + "-" + host + "-" }

// hostUplink is the host namespace's side of its fabric veth.
const hostUplink = "eth1"

// vmIface is a VM's interface.
const vmIface = "eth0"
