package metadata

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// Defaults of Options. The timeouts are generous for a guest on the same
// host yet short enough that a silent or half-open client holds its
// connection for seconds, not minutes (Neutron's haproxy: 30 s).
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultIdleTimeout       = 30 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxConnsPerCaller = 64
)

// Bounds on what the Nova proxy carries: a guest's POST (Nova takes a
// 256-byte password) and Nova's answer (user data is at most 64 KiB).
const (
	maxProxyRequestBodyBytes  = 64 << 10
	maxProxyResponseBodyBytes = 4 << 20
)

// Options configure a Server.
type Options struct {
	// Lookup identifies callers; required.
	Lookup Lookup
	// Logger receives the server's events; nil means slog.Default().
	// Requests are logged at Debug level.
	Logger *slog.Logger
	// RateLimit applies to each caller (listener key and source address);
	// the zero value means DefaultRateLimit.
	RateLimit RateLimit
	// Timeouts and limits of every listener's http.Server; zero means the
	// Default above.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	// MaxConnsPerCaller bounds the connections one source address may hold
	// open on one listener; more are closed as soon as they are accepted.
	MaxConnsPerCaller int
	// NovaProxy, if set, sends identified requests to a Nova metadata API
	// instead of answering them here.
	NovaProxy *NovaProxyConfig
}

// Stats counts what a Server has done since it was made.
type Stats struct {
	Requests     uint64 // requests received, whatever became of them
	Answered     uint64 // 200s served from the Instance
	NotFound     uint64 // 404s for a known caller
	UnknownCalls uint64 // requests from a source Lookup did not know (404)
	RateLimited  uint64 // 429s
	BadMethod    uint64 // 405s
	Proxied      uint64 // requests sent to Nova
	ProxyErrors  uint64 // requests Nova could not be asked (503)
	ConnsRefused uint64 // connections closed at once: too many from one source
}

// Server is the metadata service of one agent: it answers, for every
// listener (a router or DHCP namespace), the instance behind the request's
// source address. One Server serves any number of listeners; its methods
// are safe for concurrent use.
type Server struct {
	opts  Options
	log   *slog.Logger
	lim   *limiter
	proxy *novaProxy
	seed  func([]byte) // random_seed's source; tests make it predictable

	requests, answered, notFound, unknown, limited, badMethod atomic.Uint64
	proxied, proxyErrs, connsRefused                          atomic.Uint64
}

// NewServer returns a Server; it listens nowhere until Listen or Serve.
func NewServer(opts Options) (*Server, error) {
	if opts.Lookup == nil {
		return nil, errors.New("metadata server: no Lookup")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.RateLimit == (RateLimit{}) {
		opts.RateLimit = DefaultRateLimit
	}
	setDefault(&opts.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setDefault(&opts.ReadTimeout, DefaultReadTimeout)
	setDefault(&opts.WriteTimeout, DefaultWriteTimeout)
	setDefault(&opts.IdleTimeout, DefaultIdleTimeout)
	setDefault(&opts.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&opts.MaxConnsPerCaller, DefaultMaxConnsPerCaller)
	s := &Server{opts: opts, log: opts.Logger, lim: newLimiter(opts.RateLimit, time.Now), seed: randomSeed}
	if opts.NovaProxy != nil {
		p, err := newNovaProxy(*opts.NovaProxy)
		if err != nil {
			return nil, fmt.Errorf("metadata server: %w", err)
		}
		s.proxy = p
	}
	return s, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Stats returns the Server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Requests: s.requests.Load(), Answered: s.answered.Load(), NotFound: s.notFound.Load(),
		UnknownCalls: s.unknown.Load(), RateLimited: s.limited.Load(), BadMethod: s.badMethod.Load(),
		Proxied: s.proxied.Load(), ProxyErrors: s.proxyErrs.Load(), ConnsRefused: s.connsRefused.Load(),
	}
}

// Handler is the HTTP handler of one listener: key is the context the
// Lookup needs besides the source address (the router or network the
// listener serves). The caller is the request's TCP peer (RemoteAddr, set
// by net/http from the socket); nothing the request carries (Host,
// X-Forwarded-For, X-Instance-ID…) takes part in identifying it, and the
// handler reaches nothing but the Lookup (and the Nova API when so
// configured).
func (s *Server) Handler(key string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, key) })
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, key string) {
	s.requests.Add(1)
	src, err := sourceAddr(r.RemoteAddr)
	if err != nil {
		// Only a misused Handler (not behind a TCP listener) gets here.
		s.log.Warn("metadata request without a usable peer address", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "Bad Request", http.StatusBadRequest)
		return
	}
	if !s.lim.allow(key, src) {
		s.limited.Add(1)
		s.log.Debug("metadata request rate-limited", "key", key, "src", src)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Too Many Requests", http.StatusTooManyRequests)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && (s.proxy == nil || r.Method != http.MethodPost) {
		s.badMethod.Add(1)
		allow := "GET, HEAD"
		if s.proxy != nil {
			allow += ", POST"
		}
		w.Header().Set("Allow", allow)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	p := CleanPath(r.URL.Path)
	if p == "/" && s.proxy == nil {
		// Nova answers the version list before it looks the caller up.
		s.answered.Add(1)
		write(w, Answer{Body: ec2VersionList(), ContentType: textPlain})
		return
	}
	inst, ok := s.opts.Lookup.Instance(key, src)
	if !ok {
		s.unknown.Add(1)
		s.log.Debug("metadata request from an unknown source", "key", key, "src", src, "path", p)
		http.NotFound(w, r)
		return
	}
	if s.proxy != nil {
		s.forward(w, r, p, &inst, src)
		return
	}
	a, ok := inst.answer(p, src, s.seed)
	if !ok {
		s.notFound.Add(1)
		s.log.Debug("metadata path not found", "key", key, "src", src, "instance", inst.ID, "path", p)
		http.NotFound(w, r)
		return
	}
	s.answered.Add(1)
	s.log.Debug("metadata answered", "key", key, "src", src, "instance", inst.ID, "path", p)
	write(w, a)
}

// write sends a 200 with the answer; net/http drops the body of a HEAD.
func write(w http.ResponseWriter, a Answer) {
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.Body) // the client went away: nothing to do
}

// sourceAddr is the address of a request's peer, IPv4-mapped IPv6
// addresses (a dual-stack socket's) turned into IPv4, zone dropped.
func sourceAddr(remote string) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap().WithZone(""), nil
}

// newHTTPServer is the http.Server of one listener.
func (s *Server) newHTTPServer(key string) *http.Server {
	return &http.Server{
		Handler:           s.Handler(key),
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		// Malformed requests and timeouts are the clients' business, not
		// the agent's log's at Error level.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}
