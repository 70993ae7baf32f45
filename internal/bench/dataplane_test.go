package bench

import (
	"bytes"
	"context"
	"github.com/vland/vland/internal/namedns"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseIperf(t *testing.T) {
	ok := []byte(`{"start":{},"intervals":[],"end":{"sum_sent":{"bits_per_second":2.51e10,"retransmits":12},
		"sum_received":{"bits_per_second":2.5e10},"cpu_utilization_percent":{"host_total":91.5,"remote_total":48.2}}}`)
	out, err := parseIperf(ok)
	if err != nil {
		t.Fatal(err)
	}
	if out.gbps != 25 || out.retransmits != 12 || out.senderCPU != 91.5 || out.receiverCPU != 48.2 {
		t.Errorf("parsed %+v", out)
	}
	if _, err := parseIperf([]byte(`{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`)); err == nil || !strings.Contains(err.Error(), "unable to connect") {
		t.Errorf("error report: %v", err)
	}
	if _, err := parseIperf([]byte(`{"end":{}}`)); err == nil {
		t.Error("a report without throughput is no result")
	}
}

func TestMedianAndDist(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	if m := median(nil); m != 0 {
		t.Errorf("median of nothing = %v", m)
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	d := distOf(ds)
	if d.N != 100 || d.P50Ms != 50 || d.P99Ms != 99 || d.MaxMs != 100 {
		t.Errorf("dist = %+v", d)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("distOf sorted its argument in place")
	}
}

func TestDataplaneOptions(t *testing.T) {
	o := DefaultDataplaneOptions()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*DataplaneOptions){
		func(o *DataplaneOptions) { o.Hosts = 1 },
		func(o *DataplaneOptions) { o.VMs = 0 },
		func(o *DataplaneOptions) { o.Ports, o.SyncNetworks = 9000, 2 },
		func(o *DataplaneOptions) { o.Phases = []string{"bringup", "nope"} },
		func(o *DataplaneOptions) { o.Runs = 0 },
	} {
		o := DefaultDataplaneOptions()
		bad(&o)
		if err := o.validate(); err == nil {
			t.Errorf("accepted %+v", o)
		}
	}
	if !clusterName.MatchString("bdp123-0a1b") || clusterName.MatchString("dev") {
		t.Error("cluster name pattern")
	}
}

func TestDataplaneWriteText(t *testing.T) {
	run := func(active, wired, ratio float64) *DataplaneRun {
		return &DataplaneRun{
			Cluster: "bdp1-0000", Prefix: "v0000",
			BringUp: &BringUpResult{CreateToActive: Dist{N: 100, P50Ms: 20, P99Ms: active}, CreateToPing: Dist{N: 100, P50Ms: 15, P99Ms: 40}},
			Sync:    &SyncResult{Cold: SyncMeasure{Wired: 1000, AllWiredSeconds: wired, AllActiveSeconds: 4}, Warm: SyncMeasure{Wired: 1}},
			Throughput: &ThroughputResult{VMMTU: 1450, VXLANRatio: ratio, Paths: []PathResult{
				{Name: PathVXLAN, MedianGbps: 20, Gbps: []float64{20}, Retransmits: []int{0}, SenderCPU: []float64{90}, ReceiverCPU: []float64{50}, MachineBusy: []float64{1.9}},
				{Name: PathVeth, MedianGbps: 25, Gbps: []float64{25}, Retransmits: []int{0}, SenderCPU: []float64{90}, ReceiverCPU: []float64{50}, MachineBusy: []float64{1.9}},
			}},
		}
	}
	r := &DataplaneResult{VMs: 100, Hosts: 2, Ports: 1000, SyncNetworks: 10, IperfSeconds: 10, IperfRepeats: 3,
		Runs: []*DataplaneRun{run(30, 1.5, 0.8), run(50, 2.5, 0.7), run(40, 2.0, 0.78)}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"40 [30, 50, 40]", "< 1000: met", // bring-up p99: median of the runs
		"2.00 [1.50, 2.50, 2.00]", "4.00", "< 3: missed", // cold sync
		"ratio 0.78 [0.80, 0.70, 0.78]", ">= 0.75 x veth: met",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestDataplaneSmall runs the whole benchmark at a tiny size on a real dev
// cluster (root, iperf3), and checks that it measured every figure and left
// nothing behind.
func TestDataplaneSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a dev cluster")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, veth, bridges, vxlan)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("needs iperf3")
	}
	bin := filepath.Join(t.TempDir(), "vland")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/vland/vland/cmd/vland").CombinedOutput(); err != nil {
		t.Fatalf("build vland: %v\n%s", err, out)
	}
	o := DefaultDataplaneOptions()
	o.VMs, o.Ports, o.SyncNetworks, o.IperfSeconds, o.IperfRepeats = 4, 40, 2, 1, 1
	o.Vland, o.Dir, o.Timeout, o.Progress = bin, t.TempDir(), 5*time.Minute, t.Output()
	res, err := RunDataplane(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 {
		t.Fatalf("%d runs", len(res.Runs))
	}
	run := res.Runs[0]
	if b := run.BringUp; b == nil || b.Failed != 0 || b.CreateToPing.N != 4 || b.CreateToActive.P50Ms <= 0 {
		t.Errorf("bring-up: %+v", b)
	}
	if s := run.Sync; s == nil || s.Cold.Wired != 40 || s.Cold.Active != 40 || s.Warm.Active != 1 || len(s.Warm.Recreated) != 0 {
		t.Errorf("sync: %+v", s)
	}
	if tp := run.Throughput; tp == nil || tp.VXLANRatio <= 0 || tp.VMMTU != 1450 {
		t.Errorf("throughput: %+v", tp)
	}
	entries, _ := os.ReadDir(namedns.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), run.Prefix+"-") {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
	var b bytes.Buffer
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
}
