package bench

// `vland bench secgroup` measures the security-group data plane (package
// dataplane/secgroup) on one host namespace it builds itself: a bridge, 100
// ports (two of them VMs, the others veth pairs whose peers sit in a sink
// namespace) in groups totalling 10,000 rules, remote groups with
// thousands of members. It measures
//
//  1. cold programming: a fresh Manager applying the whole ruleset to an
//     empty namespace, and the rebuild of an agent restart (the tables
//     replaced whole in one transaction);
//  2. single changes at that size, each a whole Reconcile: a rule added to
//     (and removed from) a group, a member added to (and removed from) a
//     remote group; removals include the conntrack check;
//  3. the ruleset's size: rules, set elements, bytes of `nft list ruleset`
//     when nft is installed;
//  4. TCP throughput (iperf3, one stream) between the two VMs with the
//     ruleset, as a ratio of the same VMs with port security off, the two
//     interleaved in the same run; and with every group stateless, where
//     each packet walks the groups' rules.
//
// Everything lives in namespaces named vsgb<pid>-*, removed at the end, on
// error and on interrupt, and by the next run if this one was killed.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vland/vland/internal/dataplane/secgroup"
	"github.com/vland/vland/internal/namedns"
)

// SecgroupOptions configure `vland bench secgroup`.
type SecgroupOptions struct {
	Ports        int // ports with port security on the host
	Rules        int // rules in all groups together
	Groups       int // security groups (each port is in two)
	Members      int // addresses of each remote group, cloud-wide
	Trials       int // single changes of each kind
	ColdRuns     int // cold programmings
	IperfSeconds int // length of each iperf3 run (0: no throughput)
	IperfRepeats int // iperf3 runs of each mode
	Timeout      time.Duration
	Progress     io.Writer
}

// DefaultSecgroupOptions are the sizes the benchmark is documented with.
func DefaultSecgroupOptions() SecgroupOptions {
	return SecgroupOptions{Ports: 100, Rules: 10000, Groups: 20, Members: 500, Trials: 100, ColdRuns: 5,
		IperfSeconds: 10, IperfRepeats: 3, Timeout: 20 * time.Minute}
}

func (o *SecgroupOptions) validate() error {
	switch {
	case o.Ports < 2 || o.Ports > 4000:
		return errors.New("--ports must be between 2 and 4000")
	case o.Groups < 1 || o.Groups > 1000:
		return errors.New("--groups must be between 1 and 1000")
	case o.Rules < o.Groups || o.Rules > 200000:
		return errors.New("--rules must be between --groups and 200000")
	case o.Members < 0 || o.Members > 60000:
		return errors.New("--members must be between 0 and 60000")
	case o.Trials < 1 || o.Trials > 10000 || o.ColdRuns < 1 || o.ColdRuns > 100:
		return errors.New("--trials must be 1-10000 and --cold-runs 1-100")
	case o.IperfSeconds < 0 || o.IperfSeconds > 600 || o.IperfRepeats < 1 || o.IperfRepeats > 50:
		return errors.New("--iperf-seconds must be 0-600 and --iperf-repeats 1-50")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultSecgroupOptions().Timeout
	}
	return nil
}

// SecgroupResult is the outcome of `vland bench secgroup`.
type SecgroupResult struct {
	Machine
	LoadAvg float64 `json:"loadavg_1m"`
	Ports   int     `json:"ports"`
	Groups  int     `json:"groups"`
	// SGRules counts the security-group rules of Desired; Rules and
	// Elements what the kernel's tables hold (with the per-port chains).
	SGRules  int `json:"sg_rules"`
	Members  int `json:"remote_group_members"`
	Rules    int `json:"nft_rules"`
	Elements int `json:"nft_set_elements"`
	// ListingBytes is the size of `nft list ruleset` (0: nft not installed).
	ListingBytes int `json:"nft_listing_bytes,omitempty"`
	// Cold is a fresh Manager programming the empty namespace; Restart a
	// fresh Manager replacing the tables a previous one left.
	Cold    Dist `json:"cold"`
	Restart Dist `json:"restart"`
	// Single changes at full size, each one Reconcile, whole. A removal
	// also checks the tracked connections (a walk of the conntrack hash
	// table); the *Enforced figures stop when the kernel enforces the
	// change, before that check.
	RuleAdd              Dist `json:"rule_add"`
	RuleDelete           Dist `json:"rule_delete"`
	RuleDeleteEnforced   Dist `json:"rule_delete_enforced"`
	MemberAdd            Dist `json:"member_add"`
	MemberRemove         Dist `json:"member_remove"`
	MemberRemoveEnforced Dist `json:"member_remove_enforced"`
	// Throughput is VM to VM through the bridge, by mode.
	Throughput   *SecgroupThroughput `json:"throughput,omitempty"`
	Iptables     string              `json:"iptables"`
	Errors       []string            `json:"errors,omitempty"`
	TotalSeconds float64             `json:"total_seconds"`
}

// SecgroupThroughput is the iperf3 phase.
type SecgroupThroughput struct {
	Seconds int          `json:"seconds"`
	Repeats int          `json:"repeats"`
	Modes   []PathResult `json:"modes"`
	// Ratio is the median with the stateful ruleset over the median with
	// port security off; StatelessRatio the same for stateless groups.
	Ratio          float64 `json:"ratio"`
	StatelessRatio float64 `json:"stateless_ratio"`
}

// Throughput modes.
const (
	ModeRuleset   = "ruleset"
	ModeOff       = "port-security-off"
	ModeStateless = "stateless"
)

type sgBench struct {
	progressLog
	opts   SecgroupOptions
	prefix string
	host   string
	vms    [2]string
	d      secgroup.Desired
	vmIPs  [2]netip.Addr
}

var sgNamespace = regexp.MustCompile(`^vsgb([0-9]+)-`)

// RunSecgroup builds the host, runs every phase and removes the host,
// whatever happens.
func RunSecgroup(ctx context.Context, opts SecgroupOptions) (res *SecgroupResult, err error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("the security-group benchmark needs root: it builds network namespaces")
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	b := &sgBench{progressLog: progressLog{w: opts.Progress, label: "bench secgroup"}, opts: opts, prefix: fmt.Sprintf("vsgb%d-", os.Getpid())}
	sweepNamespaces("vsgb", sgNamespace, b.progress)
	res = &SecgroupResult{Machine: thisMachine(time.Now()), LoadAvg: loadAvg(), Ports: opts.Ports, Groups: opts.Groups}
	started := time.Now()
	defer func() {
		res.TotalSeconds = time.Since(started).Seconds()
		if rerr := deleteNamespaces(b.prefix); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	if err := b.build(); err != nil {
		return res, fmt.Errorf("build the host: %w", err)
	}
	b.d = b.desired(opts)
	res.Members = opts.Members
	for _, g := range b.d.Groups {
		res.SGRules += len(g.Rules)
	}
	b.progress("%d ports, %d groups, %d rules, %d members per remote group", opts.Ports, opts.Groups, res.SGRules, opts.Members)
	fail := func(phase string, err error) {
		res.Errors = append(res.Errors, phase+": "+err.Error())
		b.progress("%s failed: %v", phase, err)
	}
	m, err := b.cold(ctx, res)
	if err != nil {
		return res, err
	}
	defer m.Close()
	if err := b.changes(ctx, m, res); err != nil {
		fail("single changes", err)
	}
	res.ListingBytes = b.listing()
	res.Iptables = "not measured: iptables-restore is not installed"
	if _, err := exec.LookPath("iptables-restore"); err == nil {
		res.Iptables = "not measured: the comparison with Neutron's linear iptables rules is not implemented (this benchmark's machine has no iptables); the stateless mode shows per-packet linear evaluation instead"
	}
	if opts.IperfSeconds > 0 && ctx.Err() == nil {
		tp, err := b.throughput(ctx, m)
		res.Throughput = tp
		if err != nil {
			fail("throughput", err)
		}
	}
	return res, runError(ctx, res.Errors)
}

const (
	sgBridge = "brqbench"
	sgVMCIDR = "10.77.0.0/24"
)

// build creates the host namespace with its bridge, the two VMs and the
// sink namespace holding the peers of the other ports' taps.
func (b *sgBench) build() error {
	b.host = b.prefix + "host"
	sink := b.prefix + "sink"
	b.vms = [2]string{b.prefix + "vm0", b.prefix + "vm1"}
	for _, n := range []string{b.host, sink, b.vms[0], b.vms[1]} {
		if err := namedns.Create(n); err != nil {
			return err
		}
	}
	if err := secgroup.EnableBridgeNetfilter(b.host); err != nil {
		return err
	}
	h, err := namedns.Handle(b.host)
	if err != nil {
		return err
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: sgBridge}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if err := linkUp(h, sgBridge); err != nil {
		return err
	}
	b.d.Ports = nil
	for i := range b.opts.Ports {
		id := fmt.Sprintf("%08x-5eb0-4000-8000-%012x", i, os.Getpid())
		peerNS, peer := sink, fmt.Sprintf("p%d", i)
		if i < 2 {
			peerNS, peer = b.vms[i], "eth0"
		}
		mac, err := plugPort(h, "tap"+id[:11], peerNS, peer)
		if err != nil {
			return err
		}
		ip := netip.AddrFrom4([4]byte{10, 78, byte(i / 250), byte(1 + i%250)})
		if i < 2 {
			ip = netip.AddrFrom4([4]byte{10, 77, 0, byte(1 + i)})
			b.vmIPs[i] = ip
			if err := vmAddress(peerNS, ip); err != nil {
				return err
			}
		}
		b.d.Ports = append(b.d.Ports, secgroup.Port{ID: id, Device: "tap" + id[:11], Bridge: sgBridge, Zone: 1,
			MAC: mac, IPs: []netip.Addr{ip}, PortSecurity: true})
	}
	return nil
}

// plugPort creates a veth pair: tap in the host, enslaved and up; peer in
// peerNS, up. It returns the peer's MAC (the port's).
func plugPort(h *netlink.Handle, tap, peerNS, peer string) (net.HardwareAddr, error) {
	fd, err := netns.GetFromName(peerNS)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	la := netlink.NewLinkAttrs()
	la.Name = tap
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: peer, PeerNamespace: netlink.NsFd(fd)}); err != nil {
		return nil, fmt.Errorf("veth %s: %w", tap, err)
	}
	l, err := h.LinkByName(tap)
	if err != nil {
		return nil, err
	}
	br, err := h.LinkByName(sgBridge)
	if err != nil {
		return nil, err
	}
	if err := h.LinkSetMaster(l, br); err != nil {
		return nil, err
	}
	if err := h.LinkSetUp(l); err != nil {
		return nil, err
	}
	ph, err := namedns.Handle(peerNS)
	if err != nil {
		return nil, err
	}
	defer ph.Close()
	p, err := ph.LinkByName(peer)
	if err != nil {
		return nil, err
	}
	if err := ph.LinkSetUp(p); err != nil {
		return nil, err
	}
	return p.Attrs().HardwareAddr, nil
}

// vmAddress puts ip/24 on a VM's eth0 and sets lo up.
func vmAddress(ns string, ip netip.Addr) error {
	h, err := namedns.Handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := linkUp(h, "lo"); err != nil {
		return err
	}
	eth, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	return h.AddrAdd(eth, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(24, 32)}})
}

func intPtr(v int) *int { return &v }

// desired spreads the rules over the groups: per group a quarter each of
// plain ingress port rules, remote-group rules, remote-prefix rules and
// egress rules, one in ten of them IPv6; every port is in two groups, the
// VMs also in one that lets them reach each other (iperf3's port).
func (b *sgBench) desired(o SecgroupOptions) secgroup.Desired {
	d := secgroup.Desired{Ports: b.d.Ports, Groups: map[string]secgroup.Group{}, RemoteGroups: map[string][]netip.Prefix{}}
	for g := range o.Groups {
		id := fmt.Sprintf("bench-g%03d", g)
		grp := secgroup.Group{ID: id, Stateful: true}
		n := o.Rules / o.Groups
		if g < o.Rules%o.Groups {
			n++
		}
		for r := range n {
			rule := secgroup.Rule{ID: fmt.Sprintf("%s-r%d", id, r), Direction: secgroup.Ingress, Ethertype: secgroup.IPv4,
				Protocol: "tcp", PortMin: intPtr(1024 + r%60000), PortMax: intPtr(1024 + r%60000)}
			if r%10 == 9 {
				rule.Ethertype = secgroup.IPv6
			}
			switch r % 4 {
			case 1:
				rule.RemoteGroupID = id
			case 2:
				if rule.Ethertype == secgroup.IPv6 {
					rule.RemoteIPPrefix = netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, byte(g), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(r >> 8), byte(r)}), 128)
				} else {
					rule.RemoteIPPrefix = netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16 + byte(g%16), byte(r >> 8), byte(r)}), 32)
				}
			case 3:
				rule.Direction = secgroup.Egress
				rule.Protocol = "udp"
			}
			grp.Rules = append(grp.Rules, rule)
		}
		d.Groups[id] = grp
		for m := range o.Members {
			a := netip.AddrFrom4([4]byte{10, 128 + byte(g%64), byte(m >> 7), byte(m&127)*2 + 1})
			if m%10 == 9 {
				a = netip.AddrFrom16([16]byte{0xfd, 0xbe, 0, byte(g), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(m >> 8), byte(m)})
			}
			d.RemoteGroups[id] = append(d.RemoteGroups[id], netip.PrefixFrom(a, a.BitLen()))
		}
	}
	vmNet := netip.MustParsePrefix(sgVMCIDR)
	d.Groups["bench-iperf"] = secgroup.Group{ID: "bench-iperf", Stateful: true, Rules: []secgroup.Rule{
		{ID: "iperf-out", Direction: secgroup.Egress, Ethertype: secgroup.IPv4, Protocol: "tcp", RemoteIPPrefix: vmNet},
		{ID: "iperf-in", Direction: secgroup.Ingress, Ethertype: secgroup.IPv4, Protocol: "tcp", RemoteIPPrefix: vmNet},
	}}
	for i := range d.Ports {
		d.Ports[i].Groups = []string{fmt.Sprintf("bench-g%03d", i%o.Groups), fmt.Sprintf("bench-g%03d", (i+1)%o.Groups)}
		if i < 2 {
			d.Ports[i].Groups = append(d.Ports[i].Groups, "bench-iperf")
		}
		for _, gid := range d.Ports[i].Groups {
			d.RemoteGroups[gid] = append(d.RemoteGroups[gid], netip.PrefixFrom(d.Ports[i].IPs[0], 32))
		}
	}
	return d
}

// quiet is the logger of the benchmark's Managers: warnings only.
func (b *sgBench) quiet() *slog.Logger {
	if b.opts.Progress == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(b.opts.Progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// cold programs the ruleset ColdRuns times into an empty namespace, then
// times as many restarts; it returns the last Manager.
func (b *sgBench) cold(ctx context.Context, res *SecgroupResult) (*secgroup.Manager, error) {
	var colds, restarts []time.Duration
	var m *secgroup.Manager
	for i := range 2 * b.opts.ColdRuns {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		restart := i >= b.opts.ColdRuns
		if !restart {
			if err := secgroup.Cleanup(b.host); err != nil {
				return m, err
			}
		}
		if m != nil {
			m.Close()
		}
		var err error
		if m, err = secgroup.NewManager(secgroup.Options{NetNS: b.host, Logger: b.quiet()}); err != nil {
			return nil, err
		}
		t0 := time.Now()
		r, err := m.Reconcile(b.d)
		took := time.Since(t0)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("cold reconcile: %w", err)
		}
		res.Rules, res.Elements = r.Rules, r.Elements
		if restart {
			restarts = append(restarts, took)
		} else {
			colds = append(colds, took)
		}
	}
	res.Cold, res.Restart = distOf(colds), distOf(restarts)
	b.progress("cold: p50 %.0f ms (max %.0f); restart: p50 %.0f ms; %d rules, %d set elements in the kernel",
		res.Cold.P50Ms, res.Cold.MaxMs, res.Restart.P50Ms, res.Rules, res.Elements)
	return m, nil
}

// changes times single rule and membership changes, each kind Trials
// times, alternating add and remove so that the size stays the same.
func (b *sgBench) changes(ctx context.Context, m *secgroup.Manager, res *SecgroupResult) error {
	var add, del, delE, madd, mdel, mdelE []time.Duration
	timed := func(into, enforced *[]time.Duration, want int) error {
		t0 := time.Now()
		r, err := m.Reconcile(b.d)
		*into = append(*into, time.Since(t0))
		if enforced != nil {
			*enforced = append(*enforced, r.Took)
		}
		if err == nil && len(r.Changes) != want {
			err = fmt.Errorf("%d changes, want %d: %q", len(r.Changes), want, r.Changes)
		}
		return err
	}
	for i := range b.opts.Trials {
		if err := ctx.Err(); err != nil {
			return err
		}
		gid := fmt.Sprintf("bench-g%03d", i%b.opts.Groups)
		g := b.d.Groups[gid]
		orig := g.Rules
		g.Rules = append(slices.Clip(orig), secgroup.Rule{ID: fmt.Sprintf("trial-%d", i), Direction: secgroup.Ingress,
			Ethertype: secgroup.IPv4, Protocol: "tcp", PortMin: intPtr(61000 + i), PortMax: intPtr(61000 + i)})
		b.d.Groups[gid] = g
		if err := timed(&add, nil, 1); err != nil {
			return fmt.Errorf("rule add: %w", err)
		}
		g.Rules = orig
		b.d.Groups[gid] = g
		if err := timed(&del, &delE, 1); err != nil {
			return fmt.Errorf("rule delete: %w", err)
		}
		members := b.d.RemoteGroups[gid]
		b.d.RemoteGroups[gid] = append(slices.Clip(members), netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte(i >> 8), byte(i)*2 + 1}), 32))
		if err := timed(&madd, nil, 1); err != nil {
			return fmt.Errorf("member add: %w", err)
		}
		b.d.RemoteGroups[gid] = members
		if err := timed(&mdel, &mdelE, 1); err != nil {
			return fmt.Errorf("member remove: %w", err)
		}
	}
	res.RuleAdd, res.RuleDelete, res.MemberAdd, res.MemberRemove = distOf(add), distOf(del), distOf(madd), distOf(mdel)
	res.RuleDeleteEnforced, res.MemberRemoveEnforced = distOf(delE), distOf(mdelE)
	b.progress("rule add p50 %.1f ms p99 %.1f ms; rule delete p50 %.1f p99 %.1f; member add p50 %.1f p99 %.1f; member remove p50 %.1f p99 %.1f",
		res.RuleAdd.P50Ms, res.RuleAdd.P99Ms, res.RuleDelete.P50Ms, res.RuleDelete.P99Ms,
		res.MemberAdd.P50Ms, res.MemberAdd.P99Ms, res.MemberRemove.P50Ms, res.MemberRemove.P99Ms)
	return nil
}

// listing is the size of `nft list ruleset` in the host namespace, 0
// without nft.
func (b *sgBench) listing() int {
	nft, err := exec.LookPath("nft")
	if err != nil {
		return 0
	}
	var out strings.Builder
	cmd := exec.Command(nft, "list", "ruleset")
	cmd.Stdout = &out
	if err := namedns.Do(b.host, cmd.Start); err != nil {
		return 0
	}
	if err := cmd.Wait(); err != nil {
		return 0
	}
	return out.Len()
}

// throughput runs iperf3 from VM 0 to VM 1 in each mode, interleaved.
func (b *sgBench) throughput(ctx context.Context, m *secgroup.Manager) (*SecgroupThroughput, error) {
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		return nil, errors.New("iperf3 is not installed (apt-get install iperf3)")
	}
	tp := &SecgroupThroughput{Seconds: b.opts.IperfSeconds, Repeats: b.opts.IperfRepeats, Modes: []PathResult{
		{Name: ModeRuleset, Description: "both VMs with port security, in their groups (stateful)"},
		{Name: ModeOff, Description: "both VMs with port security off, the rest of the ruleset unchanged"},
		{Name: ModeStateless, Description: "the same groups made stateless: every packet walks the groups' rules"},
	}}
	off := b.d
	off.Ports = slices.Clone(b.d.Ports)
	off.Ports[0].PortSecurity, off.Ports[1].PortSecurity = false, false
	stateless := b.d
	stateless.Groups = map[string]secgroup.Group{}
	for id, g := range b.d.Groups {
		g.Stateful = false
		stateless.Groups[id] = g
	}
	modes := []secgroup.Desired{b.d, off, stateless}
	b.progress("throughput: iperf3 %s -> %s, %d x %d s per mode", b.vmIPs[0], b.vmIPs[1], b.opts.IperfRepeats, b.opts.IperfSeconds)
	for r := range b.opts.IperfRepeats {
		for i, d := range modes {
			if err := ctx.Err(); err != nil {
				return tp, err
			}
			if _, err := m.Reconcile(d); err != nil {
				return tp, fmt.Errorf("mode %s: %w", tp.Modes[i].Name, err)
			}
			out, err := runIperf(ctx, iperf, b.vms[0], b.vms[1], b.vmIPs[1], b.opts.IperfSeconds)
			if err != nil {
				return tp, fmt.Errorf("iperf3 in mode %s: %w", tp.Modes[i].Name, err)
			}
			p := &tp.Modes[i]
			p.Gbps = append(p.Gbps, out.gbps)
			p.Retransmits = append(p.Retransmits, out.retransmits)
			p.SenderCPU = append(p.SenderCPU, out.senderCPU)
			p.ReceiverCPU = append(p.ReceiverCPU, out.receiverCPU)
			p.MachineBusy = append(p.MachineBusy, out.machineBusy)
			b.progress("  run %d %-18s %6.2f Gbit/s", r+1, p.Name, out.gbps)
		}
	}
	if _, err := m.Reconcile(b.d); err != nil {
		return tp, err
	}
	for i := range tp.Modes {
		tp.Modes[i].MedianGbps = median(tp.Modes[i].Gbps)
	}
	if base := tp.Modes[1].MedianGbps; base > 0 {
		tp.Ratio = tp.Modes[0].MedianGbps / base
		tp.StatelessRatio = tp.Modes[2].MedianGbps / base
	}
	return tp, nil
}

// WriteJSON writes the result machine-readably.
func (r *SecgroupResult) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the result for people, with the targets.
func (r *SecgroupResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "vland bench secgroup  %s  %d CPUs  kernel %s  %s  load %.2f\n", r.Date, r.NumCPU, r.Kernel, r.GoVersion, r.LoadAvg)
	fmt.Fprintf(w, "\nruleset: %d ports, %d groups, %d security-group rules, %d members per remote group\n", r.Ports, r.Groups, r.SGRules, r.Members)
	fmt.Fprintf(w, "  in the kernel: %d rules, %d set elements", r.Rules, r.Elements)
	if r.ListingBytes > 0 {
		fmt.Fprintf(w, ", `nft list ruleset` %d bytes", r.ListingBytes)
	}
	fmt.Fprintln(w)
	line := func(name string, d Dist, target float64, which float64) {
		v := ""
		if target > 0 {
			v = fmt.Sprintf("  (target < %.0f ms: %s)", target, verdict(which < target))
		}
		fmt.Fprintf(w, "  %-28s n=%-4d p50 %8.1f ms  p90 %8.1f ms  p99 %8.1f ms  max %8.1f ms%s\n", name, d.N, d.P50Ms, d.P90Ms, d.P99Ms, d.MaxMs, v)
	}
	fmt.Fprintln(w, "\nprogramming (each a whole Reconcile):")
	line("cold (empty namespace)", r.Cold, 1000, r.Cold.P50Ms)
	line("restart (tables replaced)", r.Restart, 0, 0)
	line("rule add", r.RuleAdd, 20, r.RuleAdd.P99Ms)
	line("rule delete: enforced", r.RuleDeleteEnforced, 20, r.RuleDeleteEnforced.P99Ms)
	line("rule delete: +conntrack", r.RuleDelete, 20, r.RuleDelete.P99Ms)
	line("member add", r.MemberAdd, 20, r.MemberAdd.P99Ms)
	line("member remove: enforced", r.MemberRemoveEnforced, 20, r.MemberRemoveEnforced.P99Ms)
	line("member remove: +conntrack", r.MemberRemove, 20, r.MemberRemove.P99Ms)
	if tp := r.Throughput; tp != nil {
		fmt.Fprintf(w, "\nthroughput: iperf3, one TCP stream VM to VM through the bridge, %d x %d s per mode, interleaved\n", tp.Repeats, tp.Seconds)
		for _, p := range tp.Modes {
			fmt.Fprintf(w, "  %-18s median %6.2f Gbit/s  runs %v\n", p.Name, p.MedianGbps, fmtGbps(p.Gbps))
		}
		fmt.Fprintf(w, "  ratio ruleset / port security off: %.3f (target loss < 5%%: %s)\n", tp.Ratio, verdict(tp.Ratio > 0.95))
		fmt.Fprintf(w, "  ratio stateless / port security off: %.3f\n", tp.StatelessRatio)
	}
	fmt.Fprintf(w, "\niptables comparison: %s\n", r.Iptables)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "\nerror: %s\n", e)
	}
	fmt.Fprintf(w, "\ntotal %.1f s\n", r.TotalSeconds)
	return nil
}

func fmtGbps(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return "[" + strings.Join(s, " ") + "]"
}
