package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/vland/vland/internal/namedns"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/dataplane/l2"
)

// ThroughputResult is the TCP throughput phase: iperf3, one stream, on
// each path, the paths interleaved and each repeated.
type ThroughputResult struct {
	Seconds int          `json:"seconds"`
	Repeats int          `json:"repeats"`
	VMMTU   int          `json:"vm_mtu"`
	Paths   []PathResult `json:"paths"`
	// VXLANRatio is the median over VXLAN divided by the median over the
	// plain veth pair at MTU 1500; VXLANRatioSameMTU divides by the veth
	// pair at the VMs' MTU (what is left once the MTU is accounted for).
	VXLANRatio        float64 `json:"vxlan_ratio"`
	VXLANRatioSameMTU float64 `json:"vxlan_ratio_same_mtu"`
	// Offloads are `ethtool -k` features of the links on the paths (when
	// ethtool is installed), by "<where>/<link>".
	Offloads map[string]map[string]string `json:"offloads,omitempty"`
}

// PathResult is one path's runs.
type PathResult struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	MTU         int       `json:"mtu"`
	Gbps        []float64 `json:"gbps"` // received, per run
	MedianGbps  float64   `json:"median_gbps"`
	Retransmits []int     `json:"retransmits"`
	// iperf3's CPU use of the sender and receiver, in percent of one CPU;
	// MachineBusy is how many CPUs the whole machine kept busy meanwhile.
	SenderCPU   []float64 `json:"sender_cpu_percent"`
	ReceiverCPU []float64 `json:"receiver_cpu_percent"`
	MachineBusy []float64 `json:"machine_busy_cpus"`
}

// Path names.
const (
	PathVXLAN   = "vxlan"
	PathBridge  = "bridge"
	PathVeth    = "veth"
	PathVethMTU = "veth-vm-mtu"
)

const iperfCIDR = "10.9.0.0/24"

// iperfPath is where one path's iperf3 client and server run.
type iperfPath struct {
	res              *PathResult
	clientNS, server string
	dst              netip.Addr
}

func (d *dataplane) throughput(ctx context.Context, e *env) (*ThroughputResult, error) {
	res := &ThroughputResult{Seconds: d.opts.IperfSeconds, Repeats: d.opts.IperfRepeats}
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		return res, errors.New("iperf3 is not installed (apt-get install iperf3)")
	}
	d.progress("throughput: iperf3 VM to VM over VXLAN (%s -> %s), on one host, and plain veth pairs; %d x %d s each",
		e.compute[0], e.compute[1], d.opts.IperfRepeats, d.opts.IperfSeconds)
	n, err := e.newNetwork(ctx, "bench-iperf", iperfCIDR)
	if err != nil {
		return res, err
	}
	res.VMMTU = n.MTU
	subnet := netip.MustParsePrefix(iperfCIDR)
	a, err := e.newVM(ctx, "ipa", e.compute[0], n, subnet)
	if err != nil {
		return res, err
	}
	b, err := e.newVM(ctx, "ipb", e.compute[1], n, subnet)
	if err != nil {
		return res, err
	}
	c, err := e.newVM(ctx, "ipc", e.compute[0], n, subnet)
	if err != nil {
		return res, err
	}
	pr, err := openProber(a.NS)
	if err != nil {
		return res, err
	}
	for _, v := range []*dpVM{b, c} {
		if _, err := pr.firstReply(ctx, v.Addr.Addr(), 20*time.Millisecond, vmTimeout); err != nil {
			pr.close()
			return res, fmt.Errorf("VM %s does not answer %s: %w", v.Name, a.Name, err)
		}
	}
	pr.close()
	blA, blB := e.prefix+"-vetha", e.prefix+"-vethb"
	vethIP, vethMTUIP, err := baselinePair(blA, blB, n.MTU)
	if err != nil {
		return res, err
	}
	res.Paths = []PathResult{
		{Name: PathVXLAN, MTU: n.MTU, Description: fmt.Sprintf("VM %s to VM %s: veth, bridge, vxlan, underlay (veth, fabric bridge, veth), vxlan, bridge, veth", e.compute[0], e.compute[1])},
		{Name: PathBridge, MTU: n.MTU, Description: "VM to VM on one host: veth, bridge, veth"},
		{Name: PathVeth, MTU: 1500, Description: "plain veth pair between two fresh namespaces"},
		{Name: PathVethMTU, MTU: n.MTU, Description: "plain veth pair at the VMs' MTU"},
	}
	paths := []iperfPath{
		{&res.Paths[0], a.NS, b.NS, b.Addr.Addr()},
		{&res.Paths[1], a.NS, c.NS, c.Addr.Addr()},
		{&res.Paths[2], blA, blB, vethIP},
		{&res.Paths[3], blA, blB, vethMTUIP},
	}
	res.Offloads = offloads(map[string][]string{
		"vm " + a.Name:         {vmIface},
		"host " + e.compute[0]: {l2.TapName(a.PortID), l2.BridgeName(n.ID), fmt.Sprintf("vxlan-%d", n.VNI), "eth1"},
		"baseline":             {"v1500"},
	}, map[string]string{"vm " + a.Name: a.NS, "host " + e.compute[0]: e.hostNS[e.compute[0]], "baseline": blA})
	for r := range d.opts.IperfRepeats {
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			out, err := runIperf(ctx, iperf, p.clientNS, p.server, p.dst, d.opts.IperfSeconds)
			if err != nil {
				return res, fmt.Errorf("iperf3 over %s: %w", p.res.Name, err)
			}
			p.res.Gbps = append(p.res.Gbps, out.gbps)
			p.res.Retransmits = append(p.res.Retransmits, out.retransmits)
			p.res.SenderCPU = append(p.res.SenderCPU, out.senderCPU)
			p.res.ReceiverCPU = append(p.res.ReceiverCPU, out.receiverCPU)
			p.res.MachineBusy = append(p.res.MachineBusy, out.machineBusy)
			d.progress("  run %d %-12s %6.2f Gbit/s (%d retransmits, machine busy %.2f CPUs)", r+1, p.res.Name, out.gbps, out.retransmits, out.machineBusy)
		}
	}
	for i := range res.Paths {
		res.Paths[i].MedianGbps = median(res.Paths[i].Gbps)
	}
	if v := res.Paths[2].MedianGbps; v > 0 {
		res.VXLANRatio = res.Paths[0].MedianGbps / v
	}
	if v := res.Paths[3].MedianGbps; v > 0 {
		res.VXLANRatioSameMTU = res.Paths[0].MedianGbps / v
	}
	d.progress("throughput: vxlan %.2f Gbit/s, veth %.2f Gbit/s: ratio %.2f", res.Paths[0].MedianGbps, res.Paths[2].MedianGbps, res.VXLANRatio)
	return res, nil
}

// baselinePair creates two namespaces joined by two veth pairs, v1500 (MTU
// 1500, 10.255.0.0/30) and vmtu (the VMs' MTU, 10.255.1.0/30), and returns
// the second namespace's addresses on them.
func baselinePair(nsA, nsB string, vmMTU int) (netip.Addr, netip.Addr, error) {
	var none netip.Addr
	for _, ns := range []string{nsA, nsB} {
		if err := namedns.Create(ns); err != nil {
			return none, none, err
		}
	}
	ha, err := namedns.Handle(nsA)
	if err != nil {
		return none, none, err
	}
	defer ha.Close()
	hb, err := namedns.Handle(nsB)
	if err != nil {
		return none, none, err
	}
	defer hb.Close()
	fdB, err := netns.GetFromName(nsB)
	if err != nil {
		return none, none, err
	}
	defer fdB.Close()
	for _, h := range []*netlink.Handle{ha, hb} {
		if err := linkUp(h, "lo"); err != nil {
			return none, none, err
		}
	}
	pairs := []struct {
		name string
		mtu  int
		net  byte
	}{{"v1500", 1500, 0}, {"vmtu", vmMTU, 1}}
	for _, p := range pairs {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU = p.name, p.mtu
		if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: p.name, PeerNamespace: netlink.NsFd(fdB)}); err != nil {
			return none, none, fmt.Errorf("baseline veth %s: %w", p.name, err)
		}
		for i, h := range []*netlink.Handle{ha, hb} {
			l, err := h.LinkByName(p.name)
			if err != nil {
				return none, none, err
			}
			if err := h.LinkSetMTU(l, p.mtu); err != nil {
				return none, none, err
			}
			ip := net.IPv4(10, 255, p.net, byte(1+i))
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(30, 32)}}); err != nil {
				return none, none, fmt.Errorf("baseline address %s: %w", ip, err)
			}
			if err := h.LinkSetUp(l); err != nil {
				return none, none, err
			}
		}
	}
	return netip.AddrFrom4([4]byte{10, 255, 0, 2}), netip.AddrFrom4([4]byte{10, 255, 1, 2}), nil
}

// iperfOut is what one iperf3 run measured.
type iperfOut struct {
	gbps                   float64
	retransmits            int
	senderCPU, receiverCPU float64
	machineBusy            float64
}

// iperfJSON is the part of iperf3 -J's report the benchmark reads.
type iperfJSON struct {
	Error string `json:"error"`
	End   struct {
		SumSent struct {
			Retransmits int `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		CPU struct {
			HostTotal   float64 `json:"host_total"`
			RemoteTotal float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
}

func parseIperf(b []byte) (iperfOut, error) {
	var j iperfJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return iperfOut{}, fmt.Errorf("iperf3 report: %w", err)
	}
	if j.Error != "" {
		return iperfOut{}, errors.New(j.Error)
	}
	if j.End.SumReceived.BitsPerSecond <= 0 {
		return iperfOut{}, errors.New("iperf3 report has no received throughput")
	}
	return iperfOut{gbps: j.End.SumReceived.BitsPerSecond / 1e9, retransmits: j.End.SumSent.Retransmits,
		senderCPU: j.End.CPU.HostTotal, receiverCPU: j.End.CPU.RemoteTotal}, nil
}

// offloadFeatures are the `ethtool -k` features the report keeps.
var offloadFeatures = []string{
	"tx-checksumming", "scatter-gather", "tcp-segmentation-offload", "generic-segmentation-offload",
	"generic-receive-offload", "rx-gro-list", "rx-udp-gro-forwarding", "tx-udp_tnl-segmentation",
	"tx-udp_tnl-csum-segmentation",
}

// offloads reads the offload features of links, by place, with ethtool run
// inside each place's namespace; without ethtool it returns nil.
func offloads(links map[string][]string, nss map[string]string) map[string]map[string]string {
	ethtool, err := exec.LookPath("ethtool")
	if err != nil {
		return nil
	}
	out := map[string]map[string]string{}
	for where, names := range links {
		for _, name := range names {
			var buf bytes.Buffer
			cmd := exec.Command(ethtool, "-k", name)
			cmd.Stdout = &buf
			if err := namedns.Do(nss[where], cmd.Start); err != nil {
				continue
			}
			if err := cmd.Wait(); err != nil {
				continue
			}
			feats := map[string]string{}
			for _, line := range strings.Split(buf.String(), "\n") {
				k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
				if ok && slices.Contains(offloadFeatures, k) {
					feats[k] = strings.TrimSpace(v)
				}
			}
			out[where+"/"+name] = feats
		}
	}
	return out
}

// median of values (mean of the middle two for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
