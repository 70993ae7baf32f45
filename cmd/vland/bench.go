package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vland/vland/internal/bench"
)

// runBench is `vland bench <kind> [flags]`; see BENCHMARKS.md.
func runBench(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, "usage: vland bench api [flags]   (vland bench api -h lists the flags)")
		if len(args) == 0 {
			return errors.New("which benchmark? (api)")
		}
		return nil
	}
	switch args[0] {
	case "api":
		return runBenchAPI(args[1:])
	default:
		return fmt.Errorf("unknown benchmark %q (api)", args[0])
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
