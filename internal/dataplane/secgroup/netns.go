package secgroup

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/vland/vland/internal/namedns"
)

// bridgeSysctls are the br_netfilter switches the firewall needs: bridged
// IPv4 and IPv6 packets pass the inet hooks, where conntrack and the
// security-group rules are. ARP is filtered in the bridge family and needs
// no arptables pass.
var bridgeSysctls = []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables"}

// EnableBridgeNetfilter makes bridged IPv4 and IPv6 traffic of network
// namespace ns ("" for the caller's, a name, or a path) traverse the inet
// netfilter hooks, which the firewall needs for conntrack: it loads
// br_netfilter when the kernel does not have it yet (modprobe, in the
// caller's namespace; modules are global) and sets the namespace's
// net.bridge.bridge-nf-call-iptables and -ip6tables to 1 (these are per
// namespace since Linux 5.3). The setting applies to every bridge of the
// namespace, not only vland's.
func EnableBridgeNetfilter(ns string) error {
	const dir = "/proc/sys/net/bridge"
	present := func() (ok bool) {
		_ = namedns.Do(ns, func() error {
			_, err := os.Stat(dir)
			ok = err == nil
			return nil
		})
		return ok
	}
	if !present() {
		out, err := exec.Command("modprobe", "br_netfilter").CombinedOutput()
		if err != nil {
			return fmt.Errorf("load br_netfilter: %w: %s", err, strings.TrimSpace(string(out)))
		}
		if !present() {
			return errors.New("br_netfilter loaded but " + dir + " is still missing")
		}
	}
	return namedns.Do(ns, func() error {
		for _, k := range bridgeSysctls {
			if err := os.WriteFile(filepath.Join(dir, k), []byte("1"), 0o644); err != nil {
				return fmt.Errorf("enable %s: %w", k, err)
			}
		}
		return nil
	})
}

// BridgeNetfilterEnabled reports whether bridged IPv4 and IPv6 traffic of
// namespace ns traverses the inet hooks.
func BridgeNetfilterEnabled(ns string) (bool, error) {
	on := true
	err := namedns.Do(ns, func() error {
		for _, k := range bridgeSysctls {
			b, err := os.ReadFile(filepath.Join("/proc/sys/net/bridge", k))
			if err != nil {
				return fmt.Errorf("read %s: %w", k, err)
			}
			on = on && strings.TrimSpace(string(b)) == "1"
		}
		return nil
	})
	return on && err == nil, err
}
