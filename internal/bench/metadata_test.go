package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestMetadataOptions(t *testing.T) {
	o := DefaultMetadataOptions()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*MetadataOptions){
		func(o *MetadataOptions) { o.VMs = 1 },
		func(o *MetadataOptions) { o.Rate = 0 },
		func(o *MetadataOptions) { o.Rate = 100*o.VMs + 1 },
		func(o *MetadataOptions) { o.Seconds = 0 },
		func(o *MetadataOptions) { o.QuietRate = 0 },
		func(o *MetadataOptions) { o.HammerRate = 0 },
	} {
		o := DefaultMetadataOptions()
		bad(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%+v validated", o)
		}
	}
}

func TestMetadataWriteText(t *testing.T) {
	r := &MetadataResult{VMs: 100,
		Throughput: []*MetadataLoad{{Mode: "paced at 5000 requests/s, new connection per request", TargetRate: 5000, Clients: 100, Seconds: 10,
			Requests: 50000, ReqPerSec: 5000, Latency: Dist{P50Ms: 1, P99Ms: 4}}},
		Fairness: &MetadataFairness{QuietRate: 50, HammerRate: 1000, Alone: Dist{N: 500, P50Ms: 1, P99Ms: 2},
			Hammered: &MetadataNeighbour{Quiet: Dist{N: 500, P50Ms: 1.2, P99Ms: 2.5}, P50Ratio: 1.2, P99Ratio: 1.25, SentPerSec: 1000, Limited: 9000}}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"5000 requests/s (50000 answered, 0 failed)", "default rate limit", "beside a VM sending 1000/s", "= 1.20x / 1.25x alone"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
