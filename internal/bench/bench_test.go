package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    int
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%d = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("p99 of one value = %v", got)
	}
}

func TestShareAndCIDRs(t *testing.T) {
	total := 0
	for c := 0; c < 16; c++ {
		total += share(10000, 16, c)
	}
	if total != 10000 || share(10, 3, 0) != 4 || share(10, 3, 2) != 3 {
		t.Errorf("shares do not add up: %d", total)
	}
	seen := map[string]bool{}
	for g := 0; g < maxNetworks; g++ {
		c := subnetCIDR(g)
		if seen[c] {
			t.Fatalf("CIDR %s handed out twice", c)
		}
		seen[c] = true
	}
	if subnetCIDR(0) != "10.0.0.0/20" || subnetCIDR(17) != "10.1.16.0/20" {
		t.Errorf("unexpected CIDRs %s %s", subnetCIDR(0), subnetCIDR(17))
	}
}

func TestValidate(t *testing.T) {
	o := DefaultOptions()
	if err := o.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := []func(*Options){
		func(o *Options) { o.Clients = 0 },
		func(o *Options) { o.Clients, o.NetworksPerClient, o.Ports = 1, 1, 5000 }, // > a /20
		func(o *Options) { o.CPUProfile, o.ProfilePhase = "x", "no-such-phase" },
		func(o *Options) { o.PortQuota = -2 },
	}
	for i, f := range bad {
		o := DefaultOptions()
		f(&o)
		if err := o.validate(); err == nil {
			t.Errorf("case %d: accepted", i)
		}
	}
	if err := checkLoopbackURL("http://192.0.2.1:9696"); err == nil {
		t.Error("non-loopback server accepted")
	}
	if err := checkLoopbackURL("http://127.0.0.1:9696"); err != nil {
		t.Error(err)
	}
}

// TestRunInProcess drives a tiny run end to end against an in-process
// server, with the baselines.
func TestRunInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	o := DefaultOptions()
	o.Clients, o.Ports, o.NetworksPerClient, o.Lists = 2, 20, 2, 2
	o.InProcess, o.Timeout = true, 3*time.Minute
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 {
		t.Fatalf("%d errors: %v", res.Errors, res.FirstErrors)
	}
	if len(res.Phases) != len(phaseNames) || len(res.Baselines) != 4 {
		t.Fatalf("%d phases, %d baselines", len(res.Phases), len(res.Baselines))
	}
	for _, want := range []struct {
		name  string
		count int
	}{{phaseNetworkCreate, 4}, {phaseSubnetCreate, 4}, {phasePortCreate, 20}, {phaseListByNetwork, 4}, {phaseListByIP, 4}, {phasePortGet, 20}, {phasePortDelete, 20}, {phaseNetworkDelete, 4}} {
		p, ok := res.Phase(want.name)
		if !ok || p.Count != want.count || p.Errors != 0 {
			t.Errorf("%s: %+v", want.name, p)
		}
	}
	if pc, _ := res.Phase(phasePortCreate); pc.Etcd == nil || pc.Etcd.TxnsPerOp < 1 {
		t.Errorf("no etcd counters for port create: %+v", pc.Etcd)
	}
	var text, js bytes.Buffer
	if err := res.WriteText(&text); err != nil || !strings.Contains(text.String(), "port-create") {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
	if err := res.WriteJSON(&js); err != nil || !json.Valid(js.Bytes()) {
		t.Errorf("JSON report: %v", err)
	}
}
