package bench

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestDHCPOptions(t *testing.T) {
	o := DefaultDHCPOptions()
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []func(*DHCPOptions){
		func(o *DHCPOptions) { o.VMs = -1 },
		func(o *DHCPOptions) { o.Networks = 201 },
		func(o *DHCPOptions) { o.ClientsPerNet = 0 },
		func(o *DHCPOptions) { o.Seconds = 0 },
	} {
		o := DefaultDHCPOptions()
		bad(&o)
		if err := o.validate(); err == nil {
			t.Errorf("%+v validated", o)
		}
	}
}

func TestAgentCPUSeconds(t *testing.T) {
	if s := agentCPUSeconds(os.Getpid()); s < 0 {
		t.Errorf("own CPU time = %v", s)
	}
	if s := agentCPUSeconds(0); s != -1 {
		t.Errorf("no pid: %v", s)
	}
}

func TestDHCPWriteText(t *testing.T) {
	r := &DHCPResult{VMs: 2, Lease: &DHCPLeaseResult{CreateToLease: Dist{N: 2, P99Ms: 300}},
		Load: &DHCPLoadResult{Networks: 50, Clients: 200, Seconds: 10, Exchanges: 20000, ExchangesPerSec: 2000, TxPerSec: 4000}}
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"create -> lease", "2000 DORA exchanges/s = 4000 tx/s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}
