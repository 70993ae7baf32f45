package dns

import (
	"testing"

	mdns "github.com/miekg/dns"
)

// FuzzHandleWire feeds arbitrary datagrams through the server's path
// (without upstreams): nothing may panic, a datagram that is not a query
// gets no reply, and every reply parses again, carries the query's ID and
// fits a plain UDP client's buffer.
func FuzzHandleWire(f *testing.F) {
	for _, q := range []*mdns.Msg{
		query("web.openstacklocal.", mdns.TypeA),
		query("web.openstacklocal.", mdns.TypeANY),
		query("5.0.0.10.in-addr.arpa.", mdns.TypePTR),
		query("nope.openstacklocal.", mdns.TypeAAAA),
		query("example.com.", mdns.TypeA),
	} {
		b, err := q.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:12])
		q.SetEdns0(4096, true)
		if b, err = q.Pack(); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0})                // a response header
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1}) // compression loop
	srv := NewServer(testTable(), ServerOptions{})
	f.Fuzz(func(t *testing.T, b []byte) {
		out := srv.handleWire(b)
		if out == nil {
			return
		}
		if len(out) > mdns.MinMsgSize {
			t.Fatalf("reply of %d bytes", len(out))
		}
		req, resp := new(mdns.Msg), new(mdns.Msg)
		if err := req.Unpack(b); err != nil {
			t.Fatalf("a datagram that does not parse was answered: %v", err)
		}
		if req.Response {
			t.Fatal("a response was answered")
		}
		if err := resp.Unpack(out); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if resp.Id != req.Id || !resp.Response {
			t.Fatalf("reply id %d response %v for query %d", resp.Id, resp.Response, req.Id)
		}
	})
}
