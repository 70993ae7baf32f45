package dhcp

import (
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// BenchmarkReply measures the pure path: parse a DISCOVER or REQUEST, look
// the MAC up among 1,000 reservations, build and serialize the answer.
func BenchmarkReply(b *testing.B) {
	rs := make([]Reservation, 0, 1000)
	for i := range 1000 {
		r := portA()
		r.MAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0, byte(i >> 8), byte(i)}
		rs = append(rs, r)
	}
	tbl := testTable(rs...)
	for _, c := range []struct {
		name string
		mt   dhcpv4.MessageType
		mods []dhcpv4.Modifier
	}{
		{"discover", dhcpv4.MessageTypeDiscover, nil},
		{"request", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{withServerID("10.20.0.2"), withRequested("10.20.0.10")}},
	} {
		b.Run(c.name, func(b *testing.B) {
			req := wire(b, "fa:16:3e:00:01:f4", c.mt, c.mods...).ToBytes()
			b.ReportAllocs()
			for b.Loop() {
				_, resp, _, err := handle(req, tbl)
				if err != nil || resp == nil {
					b.Fatal("no reply", err)
				}
				_ = resp.ToBytes()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "replies/s")
		})
	}
}

// BenchmarkServe measures transactions per second over real sockets: Go
// clients (insomniacslk nclient4) in a load-generator namespace run complete
// DISCOVER-OFFER-REQUEST-ACK exchanges against Servers in their qdhcp-
// namespaces, on 1 network and spread over 50. A lease is two transactions.
// Client and server share the machine's CPUs, so the figure is a floor for
// the server alone.
func BenchmarkServe(b *testing.B) {
	requireRoot(b)
	for _, c := range []struct{ networks, clientsPerNet int }{{1, 8}, {50, 4}} {
		nets := buildNetworks(b, c.networks, c.clientsPerNet)
		b.Run(fmt.Sprintf("networks=%d", c.networks), func(b *testing.B) {
			var clients []network
			var which []int
			for _, n := range nets {
				for i := range n.clients {
					clients, which = append(clients, n), append(which, i)
				}
			}
			var next atomic.Int64
			var failed atomic.Int64
			b.SetParallelism(max(1, len(clients)/max(1, runtimeProcs())))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				k := int(next.Add(1)-1) % len(clients)
				n, i := clients[k], which[k]
				for pb.Next() {
					lease, err := n.clients[i].Request(b.Context())
					if err != nil || !lease.ACK.YourIPAddr.Equal(n.ip(i).AsSlice()) {
						failed.Add(1)
					}
				}
			})
			b.ReportMetric(2*float64(b.N)/b.Elapsed().Seconds(), "tx/s")
			if f := failed.Load(); f > 0 {
				b.Errorf("%d of %d exchanges failed", f, b.N)
			}
		})
	}
}

// runtimeProcs is GOMAXPROCS, which RunParallel multiplies its parallelism by.
func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
