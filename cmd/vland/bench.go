package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vland/vland/internal/bench"
)

// runBench is `vland bench <kind> [flags]`; see BENCHMARKS.md.
func runBench(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, "usage: vland bench api|dataplane|dhcp|lists|metadata|router|secgroup [flags]   (vland bench <kind> -h lists the flags)")
		if len(args) == 0 {
			return errors.New("which benchmark? (api, dataplane, dhcp, lists, metadata, router, secgroup)")
		}
		return nil
	}
	switch args[0] {
	case "api":
		return runBenchAPI(args[1:])
	case "dataplane":
		return runBenchDataplane(args[1:])
	case "dhcp":
		return runBenchDHCP(args[1:])
	case "lists":
		return runBenchLists(args[1:])
	case "metadata":
		return runBenchMetadata(args[1:])
	case "router":
		return runBenchRouter(args[1:])
	case "secgroup":
		return runBenchSecgroup(args[1:])
	default:
		return fmt.Errorf("unknown benchmark %q (api, dataplane, dhcp, lists, metadata, router, secgroup)", args[0])
	}
}

func runBenchAPI(args []string) error {
	o := bench.DefaultOptions()
	fs := flag.NewFlagSet("bench api", flag.ContinueOnError)
	fs.IntVar(&o.Clients, "clients", o.Clients, "concurrent clients, each in its own project")
	fs.IntVar(&o.Ports, "ports", o.Ports, "ports to create in total")
	fs.IntVar(&o.NetworksPerClient, "networks", o.NetworksPerClient, "networks (each with a /20 subnet) per client")
	fs.IntVar(&o.Lists, "lists", o.Lists, "filtered port lists per client, for each filter")
	fs.IntVar(&o.PortQuota, "port-quota", 0, "port quota set on each project: 0 = max(500, 2 x its ports), -1 = unlimited")
	fs.StringVar(&o.Server, "server", "", "URL of a running server on loopback (default: start one)")
	fs.StringVar(&o.AdminPassword, "admin-password", os.Getenv("VLAND_ADMIN_PASSWORD"), "admin password of --server (env VLAND_ADMIN_PASSWORD)")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "pid of --server, to report its memory and CPU")
	fs.StringVar(&o.Vland, "vland", "", "vland binary to run as the server (default: this one)")
	fs.BoolVar(&o.InProcess, "inprocess", false, "run the server inside this process (so that --cpuprofile and --memprofile see it)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of this process (with --inprocess, the server's too) during --profile-phase")
	fs.StringVar(&o.ProfilePhase, "profile-phase", o.ProfilePhase, "phase to profile (CPU: during it, or all; heap: at its end)")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile of this process at the end of --profile-phase")
	fs.BoolVar(&o.Baseline, "baseline", o.Baseline, "first measure the bare embedded etcd at the same concurrency")
	fs.BoolVar(&o.API, "api", o.API, "run the API phases (false: baselines only)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole run")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	jsonFile := fs.String("json-file", "", "also write the result as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !*quiet {
		o.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, o)
	if res != nil && len(res.Phases)+len(res.Baselines) > 0 {
		if *asJSON {
			if werr := res.WriteJSON(os.Stdout); werr != nil && err == nil {
				err = werr
			}
		} else {
			_ = res.WriteText(os.Stdout)
		}
	}
	if res != nil && *jsonFile != "" {
		if werr := writeJSONFile(*jsonFile, res); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if res.Errors > 0 {
		return fmt.Errorf("%d requests failed (the first are listed above)", res.Errors)
	}
	return nil
}

func writeJSONFile(path string, res *bench.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := res.WriteJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runBenchDataplane is `vland bench dataplane`: port bring-up, agent cold
// sync and VXLAN throughput on a dev cluster it builds and removes itself.
func runBenchDataplane(args []string) error {
	o := bench.DefaultDataplaneOptions()
	fs := flag.NewFlagSet("bench dataplane", flag.ContinueOnError)
	fs.IntVar(&o.VMs, "vms", o.VMs, "bring-up: VMs created one after another")
	fs.IntVar(&o.Hosts, "hosts", o.Hosts, "compute hosts for the VMs (the cold sync uses one more)")
	fs.IntVar(&o.Ports, "ports", o.Ports, "cold sync: ports bound to one host")
	fs.IntVar(&o.SyncNetworks, "sync-networks", o.SyncNetworks, "cold sync: networks the ports are spread over")
	fs.IntVar(&o.IperfSeconds, "iperf-seconds", o.IperfSeconds, "length of each iperf3 run")
	fs.IntVar(&o.IperfRepeats, "iperf-repeats", o.IperfRepeats, "iperf3 runs per path")
	fs.IntVar(&o.Runs, "runs", o.Runs, "runs of the whole benchmark, each on a fresh cluster (medians reported)")
	phases := fs.String("phases", strings.Join(bench.DataplanePhases, ","), "phases to run: "+strings.Join(bench.DataplanePhases, ", "))
	fs.StringVar(&o.Vland, "vland", "", "vland binary the cluster runs (default: this one)")
	fs.StringVar(&o.Dir, "dir", o.Dir, "parent directory of the clusters' directories")
	fs.StringVar(&o.Logs, "logs", "", "copy each cluster's server and agent logs into DIR/<cluster>/ before removing it")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole benchmark")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	jsonFile := fs.String("json-file", "", "also write the result as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.Phases = splitList(*phases)
	if !*quiet {
		o.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.RunDataplane(ctx, o)
	if res != nil && len(res.Runs) > 0 {
		if *asJSON {
			if werr := res.WriteJSON(os.Stdout); werr != nil && err == nil {
				err = werr
			}
		} else {
			_ = res.WriteText(os.Stdout)
		}
		if *jsonFile != "" {
			f, ferr := os.Create(*jsonFile)
			if ferr == nil {
				ferr = res.WriteJSON(f)
				if cerr := f.Close(); ferr == nil {
					ferr = cerr
				}
			}
			if ferr != nil && err == nil {
				err = ferr
			}
		}
	}
	return err
}

// runBenchDHCP is `vland bench dhcp`: lease latency and DHCP transactions
// per second of one network host agent, on a dev cluster it builds and
// removes itself.
func runBenchDHCP(args []string) error {
	o := bench.DefaultDHCPOptions()
	fs := flag.NewFlagSet("bench dhcp", flag.ContinueOnError)
	fs.IntVar(&o.VMs, "vms", o.VMs, "lease: VMs created one after another on one DHCP network (0: skip)")
	fs.IntVar(&o.Networks, "networks", o.Networks, "throughput: DHCP networks, one load-generator VM each (0: skip)")
	fs.IntVar(&o.ClientsPerNet, "clients-per-net", o.ClientsPerNet, "throughput: ports with known MACs, one Go DHCP client each, per network")
	fs.IntVar(&o.Seconds, "seconds", o.Seconds, "throughput: length of the load")
	fs.IntVar(&o.BaselineSecond, "baseline-seconds", o.BaselineSecond, "throughput: length of the one-network baseline load (0: none)")
	fs.StringVar(&o.Vland, "vland", "", "vland binary the cluster runs (default: this one)")
	fs.StringVar(&o.Dir, "dir", o.Dir, "parent directory of the cluster's directory")
	fs.StringVar(&o.Logs, "logs", "", "copy the cluster's server and agent logs into DIR/<cluster>/ before removing it")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole benchmark")
	return runBenchWith(fs, args, &o.Progress, func(ctx context.Context) (*bench.DHCPResult, error) {
		return bench.RunDHCP(ctx, o)
	})
}

// runBenchMetadata is `vland bench metadata`: requests per second and
// latency of the agent's metadata service across many VMs, and a quiet VM's
// latency beside a hammering one, in namespaces it builds and removes.
func runBenchMetadata(args []string) error {
	o := bench.DefaultMetadataOptions()
	fs := flag.NewFlagSet("bench metadata", flag.ContinueOnError)
	fs.IntVar(&o.VMs, "vms", o.VMs, "VMs (source addresses, one instance each)")
	fs.IntVar(&o.Rate, "rate", o.Rate, "paced throughput: requests/s offered by all VMs together")
	fs.IntVar(&o.Seconds, "seconds", o.Seconds, "throughput: length of each load")
	fs.IntVar(&o.FairSeconds, "fair-seconds", o.FairSeconds, "fairness: length of each load")
	fs.IntVar(&o.QuietRate, "quiet-rate", o.QuietRate, "fairness: requests/s of the quiet VM")
	fs.IntVar(&o.HammerRate, "hammer-rate", o.HammerRate, "fairness: requests/s of the hammering VM")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole benchmark")
	return runBenchWith(fs, args, &o.Progress, func(ctx context.Context) (*bench.MetadataResult, error) {
		return bench.RunMetadata(ctx, o)
	})
}

// runBenchRouter is `vland bench router`: programming time of many routers
// from nothing, floating IP association to first connection, and NAT
// throughput against a veth pair, in namespaces it builds and removes.
func runBenchRouter(args []string) error {
	o := bench.DefaultRouterOptions()
	fs := flag.NewFlagSet("bench router", flag.ContinueOnError)
	fs.IntVar(&o.Routers, "routers", o.Routers, "cold: routers programmed at once (also the associate phase's other routers)")
	fs.IntVar(&o.FloatingIPs, "floating-ips", o.FloatingIPs, "cold: floating IPs per router")
	fs.IntVar(&o.ColdRuns, "cold-runs", o.ColdRuns, "cold: programs from nothing (median reported)")
	fs.IntVar(&o.Trials, "trials", o.Trials, "associate: floating IP associations timed")
	fs.IntVar(&o.IperfSeconds, "iperf-seconds", o.IperfSeconds, "throughput: length of each iperf3 run")
	fs.IntVar(&o.IperfRepeats, "iperf-repeats", o.IperfRepeats, "throughput: iperf3 runs per path")
	phases := fs.String("phases", strings.Join(bench.RouterPhases, ","), "phases to run: "+strings.Join(bench.RouterPhases, ", "))
	fs.BoolVar(&o.LogChanges, "log-changes", false, "log every kernel change the router manager makes")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole benchmark")
	return runBenchWith(fs, args, &o.Progress, func(ctx context.Context) (*bench.RouterResult, error) {
		o.Phases = splitList(*phases)
		return bench.RunRouter(ctx, o)
	})
}

// runBenchSecgroup is `vland bench secgroup`: security-group programming
// times and throughput at 10,000 rules, on a host namespace it builds and
// removes itself.
func runBenchSecgroup(args []string) error {
	o := bench.DefaultSecgroupOptions()
	fs := flag.NewFlagSet("bench secgroup", flag.ContinueOnError)
	fs.IntVar(&o.Ports, "ports", o.Ports, "ports with port security on the host (two of them VMs)")
	fs.IntVar(&o.Rules, "rules", o.Rules, "security-group rules in all groups together")
	fs.IntVar(&o.Groups, "groups", o.Groups, "security groups (each port is in two)")
	fs.IntVar(&o.Members, "members", o.Members, "addresses of each remote group, cloud-wide")
	fs.IntVar(&o.Trials, "trials", o.Trials, "single changes of each kind")
	fs.IntVar(&o.ColdRuns, "cold-runs", o.ColdRuns, "cold programmings (and as many restarts)")
	fs.IntVar(&o.IperfSeconds, "iperf-seconds", o.IperfSeconds, "length of each iperf3 run (0: no throughput phase)")
	fs.IntVar(&o.IperfRepeats, "iperf-repeats", o.IperfRepeats, "iperf3 runs per mode")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole benchmark")
	return runBenchWith(fs, args, &o.Progress, func(ctx context.Context) (*bench.SecgroupResult, error) {
		return bench.RunSecgroup(ctx, o)
	})
}

// benchResult is what a benchmark prints.
type benchResult interface {
	WriteJSON(io.Writer) error
	WriteText(io.Writer) error
}

// runBenchWith adds -json and -quiet to a benchmark's flags, parses args,
// runs the benchmark with its progress on stderr (unless -quiet) until
// Ctrl-C or SIGTERM, and prints what it measured even when it failed part
// way.
func runBenchWith[T any, R interface {
	*T
	benchResult
}](fs *flag.FlagSet, args []string, progress *io.Writer, run func(context.Context) (R, error)) error {
	asJSON := fs.Bool("json", false, "print the result as JSON")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if !*quiet {
		*progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx)
	if res != nil {
		if *asJSON {
			if werr := res.WriteJSON(os.Stdout); werr != nil && err == nil {
				err = werr
			}
		} else {
			_ = res.WriteText(os.Stdout)
		}
	}
	return err
}
