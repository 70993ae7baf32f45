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
	fs.StringVar(&o.Server, "server", "", "URL of a running server on loopback (default: start one)")
	fs.StringVar(&o.AdminPassword, "admin-password", os.Getenv("VLAND_ADMIN_PASSWORD"), "admin password of --server (env VLAND_ADMIN_PASSWORD)")
	fs.IntVar(&o.ServerPID, "server-pid", 0, "pid of --server, to report its memory and CPU")
	fs.StringVar(&o.Vland, "vland", "", "vland binary to run as the server (default: this one)")
	fs.BoolVar(&o.InProcess, "inprocess", false, "run the server inside this process (for --cpuprofile and etcd counters)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of this process during --profile-phase")
	fs.StringVar(&o.ProfilePhase, "profile-phase", o.ProfilePhase, "phase to profile, or all")
	fs.BoolVar(&o.Baseline, "baseline", o.Baseline, "first measure the bare embedded etcd at the same concurrency")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole run")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	jsonFile := fs.String("json-file", "", "also write the result as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
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
	if res != nil {
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
