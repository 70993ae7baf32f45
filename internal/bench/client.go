package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// httpClient is a plain net/http JSON client tuned so that it is not what
// limits throughput: keep-alive connections, one idle slot per client
// goroutine and more, no compression, and dials to loopback only.
type httpClient struct {
	base string // e.g. http://127.0.0.1:9696
	hc   *http.Client
}

// requestTimeout bounds every single request.
const requestTimeout = 2 * time.Minute

func newHTTPClient(base string, clients int) *httpClient {
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		// The benchmark talks to loopback only, whatever a URL says.
		Control: func(network, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to %s: the benchmark only talks to loopback", address)
			}
			return nil
		},
	}
	idle := 2*clients + 8
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: requestTimeout,
	}
	return &httpClient{base: strings.TrimRight(base, "/"), hc: &http.Client{Transport: tr, Timeout: requestTimeout}}
}

func (c *httpClient) close() { c.hc.CloseIdleConnections() }

// statusError is an unexpected HTTP status with the start of its body.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.method, e.path, e.status, e.body)
}

// response is what do returns besides the decoded body.
type response struct {
	header  http.Header
	latency time.Duration // from sending the request to the body's last byte
}

// do sends one request and decodes the JSON answer into out (when not nil).
// Any status other than want is an error. The latency excludes encoding the
// request and decoding the answer, which are the client's own costs.
func (c *httpClient) do(ctx context.Context, method, path, token string, body any, want int, out any) (response, error) {
	var rd io.Reader
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return response{}, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := response{header: resp.Header, latency: time.Since(start)}
	if err != nil {
		return r, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		snippet := string(raw)
		if len(snippet) > 300 {
			snippet = snippet[:300] + "..."
		}
		return r, &statusError{method, path, resp.StatusCode, strings.TrimSpace(snippet)}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return r, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return r, nil
}

// identity v3 calls used to set up the benchmark's projects and users.

// passwordToken issues a project-scoped token; user is an id or, with
// byName, a name in the default domain; the project likewise.
func (c *httpClient) passwordToken(ctx context.Context, user, password, project string, byName bool) (string, response, error) {
	u := map[string]any{"password": password}
	p := map[string]any{}
	if byName {
		u["name"], u["domain"] = user, map[string]any{"id": "default"}
		p["name"], p["domain"] = project, map[string]any{"id": "default"}
	} else {
		u["id"], p["id"] = user, project
	}
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": u}},
		"scope":    map[string]any{"project": p},
	}}
	r, err := c.do(ctx, http.MethodPost, "/identity/v3/auth/tokens?nocatalog", "", body, http.StatusCreated, nil)
	if err != nil {
		return "", r, err
	}
	tok := r.header.Get("X-Subject-Token")
	if tok == "" {
		return "", r, errors.New("POST /identity/v3/auth/tokens: no X-Subject-Token in the answer")
	}
	return tok, r, nil
}

// roleID looks a role up by name.
func (c *httpClient) roleID(ctx context.Context, token, name string) (string, error) {
	var out struct {
		Roles []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"roles"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/identity/v3/roles?name="+url.QueryEscape(name), token, nil, http.StatusOK, &out); err != nil {
		return "", err
	}
	for _, r := range out.Roles {
		if r.Name == name {
			return r.ID, nil
		}
	}
	return "", fmt.Errorf("no role named %q", name)
}

// waitReady polls the server's version document until it answers 200.
func (c *httpClient) waitReady(ctx context.Context, timeout time.Duration, alive func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.do(rctx, http.MethodGet, "/", "", nil, http.StatusOK, nil)
		cancel()
		if err == nil {
			return nil
		}
		last = err
		if alive != nil {
			if aerr := alive(); aerr != nil {
				return aerr
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not answering after %s: %v", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
