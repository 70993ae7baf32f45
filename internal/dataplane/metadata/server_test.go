package metadata

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Loopback sources standing for VMs: Linux answers all of 127.0.0.0/8.
const (
	srcVM1     = "127.0.0.11"
	srcVM2     = "127.0.0.12"
	srcUnknown = "127.0.0.99"
)

func twoVMs() instances {
	vm2 := bareInstance()
	vm2.ID, vm2.Name, vm2.Hostname = "22222222-2222-4222-8222-222222222222", "vm2", "vm2"
	return instances{key: "net1", by: map[netip.Addr]Instance{
		netip.MustParseAddr(srcVM1): fullInstance(),
		netip.MustParseAddr(srcVM2): vm2,
	}}
}

func TestHTTPAnswersEachCallerItsOwnData(t *testing.T) {
	_, addr := startServer(t, Options{Lookup: twoVMs()})
	code, h, body := rawGet(t, addr, srcVM1, "GET", "/openstack/latest/meta_data.json")
	if code != 200 || h.Get("Content-Type") != appJSON || !strings.Contains(body, `"uuid":"d8f4c0f4-2d3b-4a4c-9a7e-3f9a8c2b1e01"`) {
		t.Errorf("vm1: %d %q %s", code, h.Get("Content-Type"), body)
	}
	code, _, body = rawGet(t, addr, srcVM2, "GET", "/openstack/latest/meta_data.json")
	if code != 200 || !strings.Contains(body, `"uuid":"22222222-2222-4222-8222-222222222222"`) || !strings.Contains(body, `"name":"vm2"`) {
		t.Errorf("vm2: %d %s", code, body)
	}
	code, h, body = rawGet(t, addr, srcVM1, "GET", "/latest/user-data")
	if code != 200 || body != string(fullInstance().UserData) || h.Get("Content-Type") != textPlain {
		t.Errorf("user-data: %d %q %q", code, h.Get("Content-Type"), body)
	}
	if code, _, _ = rawGet(t, addr, srcVM2, "GET", "/openstack/latest/user_data"); code != 404 {
		t.Errorf("vm2 without user data: %d, want 404", code)
	}
	// The version list is for anyone, as Nova's; everything else needs a
	// known caller.
	if code, _, body = rawGet(t, addr, srcUnknown, "GET", "/"); code != 200 || body != string(ec2VersionList()) {
		t.Errorf("/ from unknown: %d %q", code, body)
	}
	for _, p := range []string{"/openstack", "/openstack/latest/meta_data.json", "/latest/meta-data/instance-id"} {
		if code, _, _ = rawGet(t, addr, srcUnknown, "GET", p); code != 404 {
			t.Errorf("%s from an unknown source: %d, want 404", p, code)
		}
	}
}

// TestHeadersDoNotIdentifyTheCaller: a guest that names another instance
// or another address in its headers still gets its own data, and a
// stranger gets nothing.
func TestHeadersDoNotIdentifyTheCaller(t *testing.T) {
	s, addr := startServer(t, Options{Lookup: twoVMs()})
	forged := []string{
		"X-Instance-ID: d8f4c0f4-2d3b-4a4c-9a7e-3f9a8c2b1e01\r\n",
		"X-Tenant-ID: 6d1f2a3b4c5d4e6f8a9b0c1d2e3f4a5b\r\n",
		"X-Instance-ID-Signature: 00\r\n",
		"X-Forwarded-For: " + srcVM1 + "\r\n",
		"X-Real-IP: " + srcVM1 + "\r\n",
		"Forwarded: for=" + srcVM1 + "\r\n",
	}
	code, _, body := rawGet(t, addr, srcVM2, "GET", "/latest/meta-data/instance-id", forged...)
	if code != 200 || body != "i-22222222" {
		t.Errorf("vm2 claiming vm1: %d %q, want its own i-22222222", code, body)
	}
	if code, _, body = rawGet(t, addr, srcUnknown, "GET", "/latest/meta-data/instance-id", forged...); code != 404 {
		t.Errorf("stranger claiming vm1: %d %q, want 404", code, body)
	}
	// An absolute-form target naming another host is still this service.
	if code, _, body = rawGet(t, addr, srcVM2, "GET", "http://10.0.0.1:8080/latest/meta-data/instance-id"); code != 200 || body != "i-22222222" {
		t.Errorf("absolute URI: %d %q", code, body)
	}
	if st := s.Stats(); st.UnknownCalls < 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestHTTPNormalisesPaths(t *testing.T) {
	_, addr := startServer(t, Options{Lookup: twoVMs()})
	want := "i-d8f4c0f4"
	for _, target := range []string{
		"/latest/meta-data/instance-id",
		"/latest/meta-data/instance-id/",
		"//latest//meta-data///instance-id",
		"/latest/./meta-data/instance-id",
		"/latest/meta-data/../meta-data/instance-id",
		"/../../../latest/meta-data/instance-id",
		"/%2e%2e/%2E%2E/latest/meta-data/instance-id",
		"/latest/meta-data/%2e%2e/meta-data/instance-id",
		"/latest%2fmeta-data%2finstance-id",
		"/ec2/latest/meta-data/instance-id",
		"/latest/meta-data/instance-id?x=../../etc",
	} {
		if code, _, body := rawGet(t, addr, srcVM1, "GET", target); code != 200 || body != want {
			t.Errorf("%s: %d %q", target, code, body)
		}
	}
	for _, target := range []string{
		"/latest/meta-data/../../../../etc/passwd",
		"/%2e%2e/%2e%2e/etc/passwd",
		"/openstack/latest/../../../proc/self/environ",
		"/latest/meta-data/instance-id%00",
		"/nope",
	} {
		if code, _, body := rawGet(t, addr, srcVM1, "GET", target); code != 404 {
			t.Errorf("%s: %d %q, want 404", target, code, body)
		}
	}
}

func TestMethods(t *testing.T) {
	s, addr := startServer(t, Options{Lookup: twoVMs()})
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"} {
		target := "/openstack/latest/password"
		if m == "CONNECT" {
			target = "10.0.0.1:22"
		}
		code, h, _ := rawGet(t, addr, srcVM1, m, target, "Content-Length: 0\r\n")
		if code != 405 || h.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d Allow %q, want 405 GET, HEAD", m, code, h.Get("Allow"))
		}
	}
	code, h, body := rawGet(t, addr, srcVM1, "HEAD", "/openstack/latest/meta_data.json")
	if code != 200 || body != "" || h.Get("Content-Length") == "" || h.Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d len %q body %q", code, h.Get("Content-Length"), body)
	}
	if st := s.Stats(); st.BadMethod != 8 {
		t.Errorf("BadMethod = %d, want 8", st.BadMethod)
	}
}

func TestOversizedHeaderRefused(t *testing.T) {
	_, addr := startServer(t, Options{Lookup: twoVMs(), MaxHeaderBytes: 1024})
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("a", 64<<10) + "\r\n\r\n"
	_, _ = io.WriteString(c, req) // the server may stop reading and reset
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	switch {
	case err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF):
		t.Errorf("64 KiB header: %v, want 431 or a reset", err)
	case err == nil && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge:
		t.Errorf("64 KiB header: %d, want 431", resp.StatusCode)
	}
}

// quietLatencies times n sequential requests from src on one kept-alive
// connection, failing the test on any non-200.
func quietLatencies(t *testing.T, addr, src string, n int) []time.Duration {
	t.Helper()
	c := clientFrom(src, true)
	defer c.CloseIdleConnections()
	var out []time.Duration
	for range n {
		t0 := time.Now()
		resp, err := c.Get("http://" + addr + "/openstack/latest/meta_data.json")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(t0))
		if resp.StatusCode != 200 {
			t.Fatalf("quiet caller got %d", resp.StatusCode)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestHammeringCallerIsLimitedOthersAreNot: one source sending 1,000
// requests/s gets 429s beyond its bucket, while another source's requests
// all succeed and stay fast.
func TestHammeringCallerIsLimitedOthersAreNot(t *testing.T) {
	s, addr := startServer(t, Options{Lookup: twoVMs()})
	before := median(quietLatencies(t, addr, srcVM2, 100))

	ctx, cancel := context.WithCancel(context.Background())
	var ok, limited, failed atomic.Int64
	var wg sync.WaitGroup
	for range 4 { // 4 x 250/s
		wg.Go(func() {
			c := clientFrom(srcVM1, true)
			defer c.CloseIdleConnections()
			tick := time.NewTicker(4 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/openstack/latest/meta_data.json", nil)
				resp, err := c.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case 429:
					limited.Add(1)
				default:
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // let the hammer empty its bucket
	during := median(quietLatencies(t, addr, srcVM2, 200))
	cancel()
	wg.Wait()
	t.Logf("quiet caller median: %v alone, %v while the other sends 1,000/s; hammer: %d ok, %d limited, %d failed",
		before, during, ok.Load(), limited.Load(), failed.Load())
	if limited.Load() == 0 || s.Stats().RateLimited < uint64(limited.Load()) {
		t.Errorf("hammer never limited: %d ok, %d 429, stats %+v", ok.Load(), limited.Load(), s.Stats())
	}
	// 200 burst + 100/s over about a second: well under what it sent.
	if ok.Load() > 600 {
		t.Errorf("hammer had %d requests answered in about a second, beyond its bucket", ok.Load())
	}
	// Generous for a shared CI machine and -race; the benchmark measures.
	if during > 4*before+5*time.Millisecond {
		t.Errorf("quiet caller slowed from %v to %v", before, during)
	}
}

func TestRateLimiterBucket(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(RateLimit{Rate: 10, Burst: 5}, func() time.Time { return now })
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for i := range 5 {
		if !l.allow("k", a) {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	if l.allow("k", a) {
		t.Error("6th request allowed")
	}
	if !l.allow("k", b) || !l.allow("other", a) {
		t.Error("another caller (address, or the same address on another network) was limited")
	}
	now = now.Add(100 * time.Millisecond) // one token
	if !l.allow("k", a) || l.allow("k", a) {
		t.Error("refill of one token")
	}
	now = now.Add(time.Hour)
	l.sweep(now)
	if len(l.buckets) != 0 {
		t.Errorf("%d buckets left after a sweep of full ones", len(l.buckets))
	}
	if off := newLimiter(RateLimit{Rate: -1}, time.Now); !off.allow("k", a) {
		t.Error("unlimited limiter refused")
	}
}

func TestRateLimiterMemoryBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(RateLimit{Rate: 1, Burst: 1}, func() time.Time { return now })
	base := netip.MustParseAddr("fd00::").As16()
	for i := range maxBuckets + 1000 {
		a := base
		a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		l.allow("k", netip.AddrFrom16(a))
	}
	if len(l.buckets) > maxBuckets {
		t.Errorf("%d buckets, more than %d", len(l.buckets), maxBuckets)
	}
}

// TestSlowAndSilentClientsTimeOut: a client that connects and sends
// nothing, one that sends half a header, and an idle keep-alive connection
// are all closed by the server.
func TestSlowAndSilentClientsTimeOut(t *testing.T) {
	_, addr := startServer(t, Options{Lookup: twoVMs(), ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 600 * time.Millisecond,
		IdleTimeout: 400 * time.Millisecond})
	closedWithin := func(name string, c net.Conn, limit time.Duration) {
		t.Helper()
		t0 := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s: still open after 5 s", name)
			return
		}
		if el := time.Since(t0); el > limit {
			t.Errorf("%s: closed after %v, want within %v", name, el, limit)
		}
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var wg sync.WaitGroup
	silent := dial()
	half := dial()
	if _, err := io.WriteString(half, "GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { closedWithin("silent client", silent, 2*time.Second) })
	wg.Go(func() { closedWithin("half a header", half, 2*time.Second) })

	idle := dial()
	if _, err := io.WriteString(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	wg.Go(func() { closedWithin("idle keep-alive", idle, 2*time.Second) })
	wg.Wait()
}

// TestConnectionsPerCallerBounded: a source holding the maximum of open
// connections has further ones closed at once; another source is served.
func TestConnectionsPerCallerBounded(t *testing.T) {
	s, addr := startServer(t, Options{Lookup: twoVMs(), MaxConnsPerCaller: 4})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(srcVM1)}}
	var held []net.Conn
	for range 4 {
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// The server accepts asynchronously: poll until a fifth is refused.
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().ConnsRefused == 0 {
		if time.Now().After(deadline) {
			t.Fatal("fifth connection never refused")
		}
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
	if code, _, _ := rawGet(t, addr, srcVM2, "GET", "/latest/meta-data/instance-id"); code != 200 {
		t.Errorf("another source: %d", code)
	}
	// Freed slots are reusable.
	for _, c := range held {
		c.Close()
	}
	held = nil
	deadline = time.Now().Add(5 * time.Second)
	for {
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, _ = io.WriteString(c, "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots never freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewServerValidates(t *testing.T) {
	if _, err := NewServer(Options{}); err == nil {
		t.Error("no Lookup accepted")
	}
	for _, c := range []NovaProxyConfig{
		{URL: "ftp://nova:8775", SharedSecret: "s"},
		{URL: "http://", SharedSecret: "s"},
		{URL: "http://nova:8775?x=1", SharedSecret: "s"},
		{URL: "http://nova:8775"},
	} {
		if _, err := NewServer(Options{Lookup: twoVMs(), NovaProxy: &c}); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestNovaProxyForwardsWithNeutronHeaders(t *testing.T) {
	const secret = "s3cret"
	type seen struct {
		method, path, query, body string
		h                         http.Header
	}
	got := make(chan seen, 10)
	nova := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, string(b), r.Header.Clone()}
		if r.URL.Path == "/openstack/latest/missing" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"from":"nova"}`)
	}))
	defer nova.Close()
	s, addr := startServer(t, Options{Lookup: twoVMs(), NovaProxy: &NovaProxyConfig{URL: nova.URL + "/", SharedSecret: secret}})

	code, h, body := rawGet(t, addr, srcVM1, "GET", "/openstack/../openstack/latest/meta_data.json?a=b",
		"X-Instance-ID: 22222222-2222-4222-8222-222222222222\r\n", "X-Forwarded-For: 10.9.9.9\r\n")
	if code != 200 || body != `{"from":"nova"}` || h.Get("Content-Type") != "application/json" {
		t.Errorf("proxied answer: %d %q %s", code, h.Get("Content-Type"), body)
	}
	r := <-got
	in := fullInstance()
	if r.path != "/openstack/latest/meta_data.json" || r.query != "a=b" || r.method != "GET" {
		t.Errorf("nova saw %s %s?%s", r.method, r.path, r.query)
	}
	for k, want := range map[string]string{
		"X-Instance-Id": in.ID, "X-Tenant-Id": in.ProjectID, "X-Forwarded-For": srcVM1,
		"X-Instance-Id-Signature": SignInstanceID(secret, in.ID),
	} {
		if v := r.h.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("nova saw %s: %q, want %q", k, v, want)
		}
	}
	// Nova's reference: hmac.new(secret, id, sha256).hexdigest().
	if sig := SignInstanceID("secret", "id"); sig != "0da5b4052abdeb0bbd119978c49479893059d51a19522a70e4672259a6d720b5" {
		// computed with Python's hmac module
		t.Errorf("signature %s", sig)
	}

	// POST (Nova's password) is forwarded in proxy mode; statuses relayed.
	code, _, _ = rawGet(t, addr, srcVM1, "POST", "/openstack/latest/password", "Content-Length: 3\r\n\r\nabc")
	if r = <-got; code != 200 || r.method != "POST" || r.body != "abc" {
		t.Errorf("POST: %d, nova saw %s %q", code, r.method, r.body)
	}
	if code, _, _ = rawGet(t, addr, srcVM1, "GET", "/openstack/latest/missing"); code != 404 {
		t.Errorf("nova's 404 relayed as %d", code)
	}
	<-got
	if code, _, _ = rawGet(t, addr, srcUnknown, "GET", "/openstack/latest/meta_data.json"); code != 404 {
		t.Errorf("unknown source proxied: %d", code)
	}
	select {
	case r := <-got:
		t.Errorf("an unknown source's request reached nova: %+v", r)
	default:
	}
	nova.Close()
	if code, _, _ = rawGet(t, addr, srcVM1, "GET", "/openstack/latest/meta_data.json"); code != 503 {
		t.Errorf("nova down: %d, want 503", code)
	}
	if st := s.Stats(); st.Proxied != 4 || st.ProxyErrors != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestListenFamily(t *testing.T) {
	for _, c := range []struct {
		addr, network string
		freebind      int
		bad           bool
	}{
		{"0.0.0.0:9697", "tcp4", 0, false},
		{"169.254.169.254:80", "tcp4", 4, false},
		{"[fe80::a9fe:a9fe%eth0]:80", "tcp6", 6, false},
		{"[::]:80", "tcp6", 0, false},
		{":80", "tcp", 0, false},
		{"metadata:80", "", 0, true},
		{"169.254.169.254", "", 0, true},
	} {
		n, fb, err := listenFamily(c.addr)
		if (err != nil) != c.bad || n != c.network || fb != c.freebind {
			t.Errorf("%s: %s %d %v", c.addr, n, fb, err)
		}
	}
}

func TestListenCurrentNamespaceAndClose(t *testing.T) {
	s, err := NewServer(Options{Lookup: twoVMs(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Listen("", "127.0.0.1:0", "net1")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if code, _, body := rawGet(t, addr, srcVM1, "GET", "/latest/meta-data/instance-id"); code != 200 || body != "i-d8f4c0f4" {
		t.Errorf("%d %q", code, body)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp4", addr, time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts after Close")
	}
	if _, err := s.Listen("no-such-namespace-xyz", "127.0.0.1:0", "k"); err == nil {
		t.Error("Listen in a missing namespace succeeded")
	}
}
