package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Targets of issue 4 on the project's machine.
const (
	targetBringUpP99Ms  = 1000
	targetColdSyncSec   = 3
	targetVXLANVethRate = 0.75
)

// across collects a figure from every run that has it and returns its
// median and the values in run order.
func (r *DataplaneResult) across(f func(*DataplaneRun) (float64, bool)) (float64, []float64) {
	var vals []float64
	for _, run := range r.Runs {
		if v, ok := f(run); ok {
			vals = append(vals, v)
		}
	}
	return median(vals), vals
}

// fig formats a figure's median, with every run's value in brackets when
// there are several.
func fig(format string, med float64, vals []float64) string {
	if len(vals) == 0 {
		return "-"
	}
	s := fmt.Sprintf(format, med)
	if len(vals) > 1 {
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprintf(format, v)
		}
		s += " [" + strings.Join(parts, ", ") + "]"
	}
	return s
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// WriteText writes the result as one table per figure.
func (r *DataplaneResult) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "vland bench dataplane: %d run(s), each on a fresh dev cluster; %d CPUs; kernel %s; %s; %s; %.0f s in all\n",
		len(r.Runs), r.NumCPU, r.Kernel, r.GoVersion, r.Date, r.TotalSeconds)
	if len(r.Runs) > 1 {
		fmt.Fprintln(w, "values are medians of the runs, each run's in brackets")
	}
	for i, run := range r.Runs {
		fmt.Fprintf(w, "run %d: cluster %s (prefix %s) up in %.1f s, load average %.2f at its start, %.0f s in all\n",
			i+1, run.Cluster, run.Prefix, run.UpSeconds, run.LoadAvg, run.TotalSeconds)
		for _, e := range run.Errors {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	flush := func() {
		tw.Flush()
		fmt.Fprintln(w)
	}

	bu := func(f func(*BringUpResult) float64) (float64, []float64) {
		return r.across(func(run *DataplaneRun) (float64, bool) {
			if run.BringUp == nil || run.BringUp.CreateToPing.N == 0 {
				return 0, false
			}
			return f(run.BringUp), true
		})
	}
	if m, _ := bu(func(b *BringUpResult) float64 { return 1 }); m > 0 {
		fmt.Fprintf(w, "1. port bring-up: %d VMs one after another over %d hosts, a probe VM pinging each (static addresses, no DHCP; ARP retransmit %d ms in the VMs; API polled every %.0f ms, ping every %.0f ms)\n",
			r.VMs, r.Hosts, arpRetransMs, ms(statusPoll), ms(pingInterval))
		row("figure", "value (ms)", "baseline", "target")
		p99a, va := bu(func(b *BringUpResult) float64 { return b.CreateToActive.P99Ms })
		p50a, v50a := bu(func(b *BringUpResult) float64 { return b.CreateToActive.P50Ms })
		row("create+bind -> ACTIVE p50", fig("%.0f", p50a, v50a), "-", "-")
		row("create+bind -> ACTIVE p99", fig("%.0f", p99a, va), "-", fmt.Sprintf("< %d: %s", targetBringUpP99Ms, verdict(p99a < targetBringUpP99Ms)))
		p50p, v50p := bu(func(b *BringUpResult) float64 { return b.CreateToPing.P50Ms })
		p99p, v99p := bu(func(b *BringUpResult) float64 { return b.CreateToPing.P99Ms })
		row("create+bind -> first ping p50", fig("%.0f", p50p, v50p), "-", "-")
		row("create+bind -> first ping p99", fig("%.0f", p99p, v99p), "-", fmt.Sprintf("< %d: %s", targetBringUpP99Ms, verdict(p99p < targetBringUpP99Ms)))
		maxp, vmaxp := bu(func(b *BringUpResult) float64 { return b.CreateToPing.MaxMs })
		row("create+bind -> first ping max", fig("%.0f", maxp, vmaxp), "-", "-")
		for _, s := range []struct {
			name string
			f    func(*BringUpResult) Dist
		}{
			{"  same host as the probe (bridge)", func(b *BringUpResult) Dist { return b.CreateToPingSameHost }},
			{"  other host (VXLAN)", func(b *BringUpResult) Dist { return b.CreateToPingCrossHost }},
			{"steps: API port create (project)", func(b *BringUpResult) Dist { return b.APICreate }},
			{"steps: API bind (admin)", func(b *BringUpResult) Dist { return b.APIBind }},
			{"steps: plug (netns, veth, address)", func(b *BringUpResult) Dist { return b.Plug }},
			{"steps: tap created -> enslaved (agent)", func(b *BringUpResult) Dist { return b.TapToWired }},
			{"steps: enslaved -> ACTIVE (status)", func(b *BringUpResult) Dist { return b.WiredToActive }},
			{"create+bind -> tap enslaved", func(b *BringUpResult) Dist { return b.CreateToWired }},
		} {
			m50, v50 := bu(func(b *BringUpResult) float64 { return s.f(b).P50Ms })
			m99, v99 := bu(func(b *BringUpResult) float64 { return s.f(b).P99Ms })
			row(s.name+" p50 / p99", fig("%.1f", m50, v50)+" / "+fig("%.1f", m99, v99), "", "")
		}
		failed, vf := bu(func(b *BringUpResult) float64 { return float64(b.Failed) })
		row("VMs that did not come up", fig("%.0f", failed, vf), "", "0")
		flush()
	}

	sy := func(f func(*SyncResult) float64) (float64, []float64) {
		return r.across(func(run *DataplaneRun) (float64, bool) {
			if run.Sync == nil || run.Sync.Cold.Wired == 0 {
				return 0, false
			}
			return f(run.Sync), true
		})
	}
	if m, _ := sy(func(*SyncResult) float64 { return 1 }); m > 0 {
		fmt.Fprintf(w, "2. agent cold sync: %d ports on %d networks bound to one host (taps present, no bridge or vxlan device), a fresh agent started; then a warm restart (everything in place but one new port)\n",
			r.Ports, r.SyncNetworks)
		row("figure", "value (s)", "baseline in the same run: warm restart (s)", "target")
		cw, vcw := sy(func(s *SyncResult) float64 { return s.Cold.AllWiredSeconds })
		ca, vca := sy(func(s *SyncResult) float64 { return s.Cold.AllActiveSeconds })
		ww, vww := sy(func(s *SyncResult) float64 { return s.Warm.AllWiredSeconds })
		wa, vwa := sy(func(s *SyncResult) float64 { return s.Warm.AllActiveSeconds })
		row("start -> all taps enslaved", fig("%.2f", cw, vcw), "new port enslaved: "+fig("%.2f", ww, vww), fmt.Sprintf("< %d: %s", targetColdSyncSec, verdict(cw < targetColdSyncSec)))
		row("start -> all ports ACTIVE", fig("%.2f", ca, vca), "new port ACTIVE: "+fig("%.2f", wa, vwa), fmt.Sprintf("< %d: %s", targetColdSyncSec, verdict(ca < targetColdSyncSec)))
		for _, s := range []struct {
			name, format string
			cold, warm   func(*SyncResult) float64
		}{
			{"start -> agent alive (API, 200 ms polls)", "%.2f", func(s *SyncResult) float64 { return s.Cold.AliveSeconds }, func(s *SyncResult) float64 { return s.Warm.AliveSeconds }},
			{"start -> first tap enslaved", "%.2f", func(s *SyncResult) float64 { return s.Cold.FirstWiredSeconds }, func(s *SyncResult) float64 { return s.Warm.FirstWiredSeconds }},
			{"agent CPU until all ACTIVE", "%.2f", func(s *SyncResult) float64 { return s.Cold.AgentCPUSeconds }, func(s *SyncResult) float64 { return s.Warm.AgentCPUSeconds }},
			{"server CPU meanwhile", "%.2f", func(s *SyncResult) float64 { return s.Cold.ServerCPUSeconds }, func(s *SyncResult) float64 { return s.Warm.ServerCPUSeconds }},
		} {
			mc, vc := sy(s.cold)
			mw, vw := sy(s.warm)
			row(s.name, fig(s.format, mc, vc), fig(s.format, mw, vw), "")
		}
		oe, voe := sy(func(s *SyncResult) float64 { return float64(s.Warm.OtherLinkEvents) })
		pc, vpc := sy(func(s *SyncResult) float64 { return float64(s.Warm.VXLANEntryChanges) })
		pcc, vpcc := sy(func(s *SyncResult) float64 { return float64(s.Cold.VXLANEntryChanges) })
		rc, vrc := sy(func(s *SyncResult) float64 { return float64(len(s.Warm.Recreated)) })
		row("link events, other than the new port's", "", fig("%.0f", oe, voe), "warm: 0")
		row("FDB/neighbour changes on vxlan devices", fig("%.0f", pcc, vpcc)+" (created)", fig("%.0f", pc, vpc), "warm: 0")
		row("links recreated (ifindex changed)", "", fig("%.0f", rc, vrc), "warm: 0")
		pcs, vpcs := sy(func(s *SyncResult) float64 { return s.PortCreateSeconds })
		tcs, vtcs := sy(func(s *SyncResult) float64 { return s.TapCreateSeconds })
		row("set-up: ports created and bound (API)", fig("%.2f", pcs, vpcs), "", "")
		row("set-up: taps created (netlink veth pairs)", fig("%.2f", tcs, vtcs), "", "")
		flush()
	}

	tp := func(f func(*ThroughputResult) float64) (float64, []float64) {
		return r.across(func(run *DataplaneRun) (float64, bool) {
			if run.Throughput == nil || len(run.Throughput.Paths) == 0 || run.Throughput.Paths[0].MedianGbps == 0 {
				return 0, false
			}
			return f(run.Throughput), true
		})
	}
	if m, _ := tp(func(*ThroughputResult) float64 { return 1 }); m > 0 {
		mtu := 0
		for _, run := range r.Runs {
			if run.Throughput != nil {
				mtu = run.Throughput.VMMTU
			}
		}
		fmt.Fprintf(w, "3. TCP throughput: iperf3, one stream, %d s, median of %d runs per path (paths interleaved); VM MTU %d\n",
			r.IperfSeconds, r.IperfRepeats, mtu)
		row("figure", "value (Gbit/s)", "baseline in the same run", "target")
		path := func(name string) func(*ThroughputResult) float64 {
			return func(t *ThroughputResult) float64 {
				for _, p := range t.Paths {
					if p.Name == name {
						return p.MedianGbps
					}
				}
				return 0
			}
		}
		vx, vvx := tp(path(PathVXLAN))
		ve, vve := tp(path(PathVeth))
		vm, vvm := tp(path(PathVethMTU))
		br, vbr := tp(path(PathBridge))
		ratio, vratio := tp(func(t *ThroughputResult) float64 { return t.VXLANRatio })
		ratioMTU, vratioMTU := tp(func(t *ThroughputResult) float64 { return t.VXLANRatioSameMTU })
		row("VM to VM across hosts (VXLAN)", fig("%.2f", vx, vvx), "veth pair (MTU 1500): "+fig("%.2f", ve, vve)+"; ratio "+fig("%.2f", ratio, vratio),
			fmt.Sprintf(">= %.2f x veth: %s", targetVXLANVethRate, verdict(ratio >= targetVXLANVethRate)))
		row("", "", fmt.Sprintf("veth pair (MTU %d): ", mtu)+fig("%.2f", vm, vvm)+"; ratio "+fig("%.2f", ratioMTU, vratioMTU), "")
		row("VM to VM on one host (bridge)", fig("%.2f", br, vbr), "", "")
		flush()
		for i, run := range r.Runs {
			if run.Throughput == nil {
				continue
			}
			fmt.Fprintf(w, "run %d, each iperf3 run (Gbit/s; retransmits; sender/receiver CPU %%; machine busy CPUs):\n", i+1)
			for _, p := range run.Throughput.Paths {
				var parts []string
				for j := range p.Gbps {
					parts = append(parts, fmt.Sprintf("%.2f (%d; %.0f/%.0f; %.2f)", p.Gbps[j], p.Retransmits[j], p.SenderCPU[j], p.ReceiverCPU[j], p.MachineBusy[j]))
				}
				row("  "+p.Name, strings.Join(parts, "  "))
			}
			flush()
		}
	}
	return nil
}
