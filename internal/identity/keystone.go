package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vland/vland/internal/policy"
)

// KeystoneConfig says how to reach an external Keystone and which service
// credentials validate tokens there (they need the admin or service role).
type KeystoneConfig struct {
	// URL is the identity v3 endpoint, e.g. http://host:5000/v3.
	URL                               string
	Username, Password, ProjectName   string
	UserDomainName, ProjectDomainName string
	// HTTPClient talks to Keystone (default: a client with a 10s timeout).
	HTTPClient *http.Client
	// CacheTTL bounds how long a valid token is trusted without asking
	// Keystone again; 0 trusts it until it expires (a revoked token then
	// stays accepted until its expiry).
	CacheTTL time.Duration
}

// Keystone validates tokens against an external Keystone v3, caching the
// answers so that most requests cost a map lookup.
type Keystone struct {
	cfg    KeystoneConfig
	base   string
	client *http.Client

	svcMu      sync.Mutex
	svcToken   string
	svcExpires time.Time

	mu       sync.Mutex
	cache    map[[32]byte]cacheEntry
	inflight map[[32]byte]*validation
}

var _ Authenticator = (*Keystone)(nil)

// cacheEntry is one validation result: credentials, or nil for a token
// Keystone rejected.
type cacheEntry struct {
	creds *policy.Credentials
	until time.Time
}

// validation is one upstream call that concurrent requests for the same
// token share.
type validation struct {
	done  chan struct{}
	creds *policy.Credentials
	err   error
}

// Cache bounds: entries kept, and how long a rejection is remembered (short,
// so a token a moment too new for a lagging Keystone is retried soon).
const (
	maxCacheEntries = 50000
	negativeTTL     = 5 * time.Second
	serviceSlack    = time.Minute
	upstreamTimeout = 30 * time.Second
)

// errKeystoneRejected is Keystone saying the token is not valid.
var errKeystoneRejected = fmt.Errorf("%w: rejected by keystone", ErrUnauthenticated)

// NewKeystone returns an Authenticator backed by the Keystone at cfg.URL.
func NewKeystone(cfg KeystoneConfig) *Keystone {
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Keystone{
		cfg:      cfg,
		base:     strings.TrimRight(cfg.URL, "/"),
		client:   client,
		cache:    map[[32]byte]cacheEntry{},
		inflight: map[[32]byte]*validation{},
	}
}

// Authenticate implements Authenticator. Errors other than
// ErrUnauthenticated mean Keystone could not be asked (callers answer 5xx).
func (k *Keystone) Authenticate(r *http.Request) (*policy.Credentials, error) {
	tok := r.Header.Get("X-Auth-Token")
	if tok == "" {
		return nil, ErrUnauthenticated
	}
	// Keyed by hash so the cache holds no usable tokens.
	key := sha256.Sum256([]byte(tok))
	now := time.Now()
	k.mu.Lock()
	if e, ok := k.cache[key]; ok && now.Before(e.until) {
		k.mu.Unlock()
		if e.creds == nil {
			return nil, errKeystoneRejected
		}
		return cloneCreds(e.creds), nil
	}
	v, running := k.inflight[key]
	if !running {
		v = &validation{done: make(chan struct{})}
		k.inflight[key] = v
	}
	k.mu.Unlock()
	if running {
		select {
		case <-v.done:
		case <-r.Context().Done():
			return nil, fmt.Errorf("keystone: validate token: %w", r.Context().Err())
		}
	} else {
		k.finish(r.Context(), key, v, tok)
	}
	if v.err != nil {
		return nil, v.err
	}
	return cloneCreds(v.creds), nil
}

// finish asks Keystone about a token, caches the answer and wakes waiters.
// The call outlives the request that started it, since others may wait on it.
func (k *Keystone) finish(ctx context.Context, key [32]byte, v *validation, tok string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamTimeout)
	defer cancel()
	creds, expires, err := k.validate(ctx, tok)
	v.creds, v.err = creds, err
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.inflight, key)
	close(v.done)
	now := time.Now()
	switch {
	case err == nil:
		until := expires
		if k.cfg.CacheTTL > 0 && now.Add(k.cfg.CacheTTL).Before(until) {
			until = now.Add(k.cfg.CacheTTL)
		}
		k.store(key, cacheEntry{creds: creds, until: until}, now)
	case errors.Is(err, ErrUnauthenticated):
		k.store(key, cacheEntry{until: now.Add(negativeTTL)}, now)
	}
}

// store adds an entry, making room first: expired entries go, then
// arbitrary ones (map order is random) until a tenth of the cache is free.
func (k *Keystone) store(key [32]byte, e cacheEntry, now time.Time) {
	if len(k.cache) >= maxCacheEntries {
		for kk, old := range k.cache {
			if !now.Before(old.until) {
				delete(k.cache, kk)
			}
		}
		for kk := range k.cache {
			if len(k.cache) < maxCacheEntries*9/10 {
				break
			}
			delete(k.cache, kk)
		}
	}
	k.cache[key] = e
}

func cloneCreds(c *policy.Credentials) *policy.Credentials {
	out := *c
	out.Roles = append([]string(nil), c.Roles...)
	return &out
}

// tokenResponse is the part of Keystone's token body vland uses.
type tokenResponse struct {
	Token struct {
		ExpiresAt string `json:"expires_at"`
		User      struct {
			ID     string `json:"id"`
			Name   string `json:"name"`
			Domain ref    `json:"domain"`
		} `json:"user"`
		Project *struct {
			ID     string `json:"id"`
			Name   string `json:"name"`
			Domain ref    `json:"domain"`
		} `json:"project"`
		Roles []ref `json:"roles"`
	} `json:"token"`
}

// validate asks Keystone about tok, re-authenticating the service once if
// Keystone no longer accepts the service token.
func (k *Keystone) validate(ctx context.Context, tok string) (*policy.Credentials, time.Time, error) {
	for attempt := 0; ; attempt++ {
		svc, err := k.serviceToken(ctx)
		if err != nil {
			return nil, time.Time{}, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+"/auth/tokens?nocatalog", nil)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("keystone: validate token: %w", err)
		}
		req.Header.Set("X-Auth-Token", svc)
		req.Header.Set("X-Subject-Token", tok)
		req.Header.Set("Accept", "application/json")
		resp, err := k.client.Do(req)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("keystone: validate token: %w", err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		switch {
		case err != nil:
			return nil, time.Time{}, fmt.Errorf("keystone: validate token: %w", err)
		case resp.StatusCode == http.StatusOK:
			return parseToken(body)
		case resp.StatusCode == http.StatusNotFound:
			return nil, time.Time{}, errKeystoneRejected
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			k.dropServiceToken(svc)
			continue
		default:
			return nil, time.Time{}, fmt.Errorf("keystone: validate token: unexpected status %s", resp.Status)
		}
	}
}

// parseToken turns a validation body into credentials and the expiry.
func parseToken(body []byte) (*policy.Credentials, time.Time, error) {
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, time.Time{}, fmt.Errorf("keystone: decode token: %w", err)
	}
	t := tr.Token
	expires, err := time.Parse(time.RFC3339Nano, t.ExpiresAt)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("keystone: token expiry %q: %w", t.ExpiresAt, err)
	}
	c := &policy.Credentials{UserID: t.User.ID, UserName: t.User.Name, DomainID: t.User.Domain.ID}
	if t.Project != nil {
		c.ProjectID, c.ProjectName, c.DomainID = t.Project.ID, t.Project.Name, t.Project.Domain.ID
	}
	for _, r := range t.Roles {
		c.Roles = append(c.Roles, r.Name)
	}
	if !time.Now().Before(expires) {
		return nil, time.Time{}, errKeystoneRejected
	}
	return c, expires, nil
}

// serviceToken returns vland's own token, authenticating when there is
// none or it is about to expire.
func (k *Keystone) serviceToken(ctx context.Context) (string, error) {
	k.svcMu.Lock()
	defer k.svcMu.Unlock()
	if k.svcToken != "" && time.Now().Add(serviceSlack).Before(k.svcExpires) {
		return k.svcToken, nil
	}
	tok, expires, err := k.login(ctx)
	if err != nil {
		return "", err
	}
	k.svcToken, k.svcExpires = tok, expires
	return tok, nil
}

// dropServiceToken forgets a service token Keystone refused, unless another
// request already replaced it.
func (k *Keystone) dropServiceToken(tok string) {
	k.svcMu.Lock()
	defer k.svcMu.Unlock()
	if k.svcToken == tok {
		k.svcToken = ""
	}
}

// login authenticates vland's service user with its password.
func (k *Keystone) login(ctx context.Context) (string, time.Time, error) {
	user := map[string]any{"name": k.cfg.Username, "password": k.cfg.Password,
		"domain": map[string]any{"name": orDefault(k.cfg.UserDomainName)}}
	auth := map[string]any{"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{"user": user}}}
	if k.cfg.ProjectName != "" {
		auth["scope"] = map[string]any{"project": map[string]any{"name": k.cfg.ProjectName,
			"domain": map[string]any{"name": orDefault(k.cfg.ProjectDomainName)}}}
	}
	data, _ := json.Marshal(map[string]any{"auth": auth}) // plain maps of strings always encode
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, k.base+"/auth/tokens?nocatalog", bytes.NewReader(data))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: service login: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: service login: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: service login: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", time.Time{}, fmt.Errorf("keystone: service login as %q: unexpected status %s", k.cfg.Username, resp.Status)
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: service login: decode token: %w", err)
	}
	expires, err := time.Parse(time.RFC3339Nano, tr.Token.ExpiresAt)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("keystone: service login: token expiry %q: %w", tr.Token.ExpiresAt, err)
	}
	tok := resp.Header.Get("X-Subject-Token")
	if tok == "" {
		return "", time.Time{}, errors.New("keystone: service login: no X-Subject-Token in response")
	}
	return tok, expires, nil
}

// orDefault names the default domain when no domain is configured.
func orDefault(domain string) string {
	if domain == "" {
		return "Default"
	}
	return domain
}
