package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vland/vland/internal/bench"
)

// runBenchLists is `vland bench lists`: list latency over many ports and
// the server's memory at a large port count (issue 3).
func runBenchLists(args []string) error {
	var o bench.ListOptions
	fs := flag.NewFlagSet("bench lists", flag.ContinueOnError)
	fs.IntVar(&o.Ports, "ports", 10000, "ports the lists run over")
	fs.IntVar(&o.BigPorts, "big-ports", 100000, "ports for the memory figure (0: skip)")
	fs.IntVar(&o.Repeats, "repeats", 50, "lists per query")
	fs.IntVar(&o.PageSize, "page-size", 100, "limit of the paginated queries")
	fs.StringVar(&o.Vland, "vland", "", "vland binary to run as the server (default: this one)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.RunLists(ctx, o)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("%-62s %7s %6s %9s %9s %9s\n", "query (one client, sequential)", "count", "items", "p50 ms", "p99 ms", "max ms")
	for _, q := range res.Queries {
		fmt.Printf("%-62s %7d %6d %9.2f %9.2f %9.2f\n", q.Name, q.Count, q.Items, q.P50Ms, q.P99Ms, q.MaxMs)
	}
	fmt.Printf("server RSS with %d ports: %.1f MiB\n", res.Ports, float64(res.RSSBytes)/(1<<20))
	if res.BigPorts > 0 {
		fmt.Printf("server RSS with %d ports: %.1f MiB (peak %.1f MiB); fixed_ips= list there: %.2f ms\n",
			res.BigPorts, float64(res.BigRSSBytes)/(1<<20), float64(res.BigHWMBytes)/(1<<20), res.BigListMs)
	}
	return nil
}
