// Command vland is the whole of vland in one binary: the API server, the
// host agent, a development cloud, and client helpers, as subcommands.
package main

import (
	"fmt"
	"os"
)

// commands maps each subcommand to its entry point.
var commands = map[string]struct {
	run     func(args []string) error
	summary string
}{
	"server":  {runServer, "run the API server (OpenStack Networking API v2.0 + builtin identity)"},
	"agent":   {runAgent, "run the host agent: wire this host's ports (Linux bridge, VXLAN)"},
	"bench":   {runBench, "measure a server: API throughput and latency (see BENCHMARKS.md)"},
	"dev":     {runDev, "a whole cloud on one machine: vland dev up|down|status|vm|host|demo (root)"},
	"version": {runVersion, "print the version"},
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "vland: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := cmd.run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "vland %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: vland <command> [flags]\n\ncommands:\n")
	for _, name := range []string{"server", "agent", "dev", "bench", "version"} {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", name, commands[name].summary)
	}
}

func runVersion([]string) error {
	fmt.Println("vland", version)
	return nil
}
