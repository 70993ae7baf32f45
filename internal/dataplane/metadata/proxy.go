package metadata

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// NovaProxyConfig points the Server at a Nova metadata API: identified
// requests are forwarded there, as Neutron's metadata agent does, instead
// of being answered from the Instance.
type NovaProxyConfig struct {
	// URL is the API's base, e.g. "http://nova-metadata.example:8775".
	URL string
	// SharedSecret is Nova's [neutron] metadata_proxy_shared_secret; every
	// request carries X-Instance-ID-Signature = hex(HMAC-SHA256(secret,
	// instance id)).
	SharedSecret string
	// Client makes the requests (set its Transport for TLS); nil means a
	// client with Timeout.
	Client *http.Client
	// Timeout bounds one forwarded request when Client is nil; 0 means 60 s
	// (Neutron's).
	Timeout time.Duration
}

// novaProxy is a checked NovaProxyConfig.
type novaProxy struct {
	base   *url.URL
	secret string
	client *http.Client
}

func newNovaProxy(c NovaProxyConfig) (*novaProxy, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("nova metadata URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("nova metadata URL %q: want http(s)://host[:port][/path]", c.URL)
	}
	if c.SharedSecret == "" {
		return nil, errors.New("nova metadata proxy: no shared secret (Nova could not trust the instance id)")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	client := c.Client
	if client == nil {
		t := c.Timeout
		if t <= 0 {
			t = 60 * time.Second
		}
		client = &http.Client{Timeout: t}
	}
	// Never follow a redirect: the answer, whatever it is, goes to the guest.
	cc := *client
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &novaProxy{base: u, secret: c.SharedSecret, client: &cc}, nil
}

// SignInstanceID is the X-Instance-ID-Signature Nova expects for an
// instance id: hex(HMAC-SHA256(secret, id)).
func SignInstanceID(secret, id string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// forward sends the request to Nova with Neutron's headers, built from the
// Lookup's answer only, and copies Nova's status, Content-Type and body
// back. Nova unreachable is a 503, as Neutron answers it.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, p string, inst *Instance, src netip.Addr) {
	s.proxied.Add(1)
	u := *s.proxy.base
	u.Path += p
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	var body io.Reader
	if r.Method == http.MethodPost {
		body = http.MaxBytesReader(w, r.Body, maxProxyRequestBodyBytes)
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		s.proxyFailed(w, inst, err)
		return
	}
	req.Header.Set("X-Forwarded-For", src.String())
	req.Header.Set("X-Instance-ID", inst.ID)
	req.Header.Set("X-Tenant-ID", inst.ProjectID)
	req.Header.Set("X-Instance-ID-Signature", SignInstanceID(s.proxy.secret, inst.ID))
	if ct := r.Header.Get("Content-Type"); ct != "" && body != nil {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := s.proxy.client.Do(req)
	if err != nil {
		s.proxyFailed(w, inst, err)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxProxyResponseBodyBytes+1))
	if err == nil && len(data) > maxProxyResponseBodyBytes {
		err = fmt.Errorf("answer longer than %d bytes", maxProxyResponseBodyBytes)
	}
	if err != nil {
		s.proxyFailed(w, inst, fmt.Errorf("read nova's answer: %w", err))
		return
	}
	if resp.StatusCode == http.StatusForbidden {
		s.log.Warn("nova metadata API answered 403: do the shared secrets match?", "instance", inst.ID)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(data)
}

func (s *Server) proxyFailed(w http.ResponseWriter, inst *Instance, err error) {
	s.proxyErrs.Add(1)
	s.log.Warn("nova metadata API unavailable", "instance", inst.ID, "err", err)
	http.Error(w, "The remote metadata server is temporarily unavailable. Please try again later.", http.StatusServiceUnavailable)
}
