package identity

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a builtin served as an external Keystone, counting calls.
type upstream struct {
	e         *env
	srv       *httptest.Server
	validates atomic.Int64
	logins    atomic.Int64
}

func newUpstream(t *testing.T, cfg BuiltinConfig) *upstream {
	u := &upstream{e: newEnv(t, cfg)}
	h := u.e.b.Handler()
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/identity/v3/auth/tokens" {
			switch r.Method {
			case "GET":
				u.validates.Add(1)
			case "POST":
				u.logins.Add(1)
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) keystone() *Keystone {
	return NewKeystone(KeystoneConfig{
		URL:      u.srv.URL + "/identity/v3/",
		Username: "admin", Password: adminPassword, ProjectName: "admin",
		UserDomainName: "Default", ProjectDomainName: "Default",
	})
}

func TestKeystoneValidatesAndCachesUntilExpiry(t *testing.T) {
	u := newUpstream(t, BuiltinConfig{TokenTTL: 2 * time.Second})
	ctx := t.Context()
	p, _ := u.e.b.CreateProject(ctx, "p1")
	uid, _ := u.e.b.CreateUser(ctx, "u1", "pw", p, "member")
	tok := u.e.issue("u1", "pw", "p1")
	k := u.keystone()

	for range 5 {
		c, err := k.Authenticate(apiRequest(ctx, tok))
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(c.Roles)
		if c.UserID != uid || c.ProjectID != p || c.ProjectName != "p1" || c.DomainID != "default" ||
			!slices.Equal(c.Roles, []string{"member", "reader"}) {
			t.Fatalf("credentials %+v", c)
		}
		c.Roles[0] = "admin" // callers may not corrupt the cache
	}
	if n := u.validates.Load(); n != 1 {
		t.Fatalf("%d upstream validations for one token, want 1", n)
	}
	if n := u.logins.Load(); n != 1 {
		t.Fatalf("%d service logins, want 1", n)
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := k.Authenticate(apiRequest(ctx, tok)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token: %v, want ErrUnauthenticated", err)
	}
}

func TestKeystoneRejectsAndBrieflyCachesBadTokens(t *testing.T) {
	u := newUpstream(t, BuiltinConfig{})
	k := u.keystone()
	ctx := t.Context()
	if _, err := k.Authenticate(apiRequest(ctx, "")); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("no token: %v", err)
	}
	for range 3 {
		if _, err := k.Authenticate(apiRequest(ctx, "forged.token")); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("forged token: %v", err)
		}
	}
	if n := u.validates.Load(); n != 1 {
		t.Fatalf("%d upstream validations of a rejected token, want 1", n)
	}
}

func TestKeystoneSharesOneUpstreamCallBetweenConcurrentRequests(t *testing.T) {
	u := newUpstream(t, BuiltinConfig{})
	k := u.keystone()
	ctx := t.Context()
	tok := u.e.issue("admin", adminPassword, "admin")
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if _, err := k.Authenticate(apiRequest(ctx, tok)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := u.validates.Load(); n > 2 {
		t.Fatalf("%d upstream validations for one token from 32 concurrent requests", n)
	}
}

func TestKeystoneReauthenticatesWhenServiceTokenIsRevoked(t *testing.T) {
	u := newUpstream(t, BuiltinConfig{})
	k := u.keystone()
	ctx := t.Context()
	if _, err := k.Authenticate(apiRequest(ctx, u.e.issue("admin", adminPassword, "admin"))); err != nil {
		t.Fatal(err)
	}
	svc := k.svcToken
	resp, _ := u.e.do("DELETE", "/identity/v3/auth/tokens", svc, nil, "X-Subject-Token", svc)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke service token: %d", resp.StatusCode)
	}
	if _, err := k.Authenticate(apiRequest(ctx, u.e.issue("admin", adminPassword, "admin"))); err != nil {
		t.Fatalf("after service token revocation: %v", err)
	}
	if n := u.logins.Load(); n != 2 || k.svcToken == svc {
		t.Fatalf("%d service logins, want a second one", n)
	}
}

func TestKeystoneUnreachableIsNotUnauthenticated(t *testing.T) {
	k := NewKeystone(KeystoneConfig{URL: "http://127.0.0.1:1/v3", Username: "x", Password: "y"})
	_, err := k.Authenticate(apiRequest(t.Context(), "tok"))
	if err == nil || errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "keystone") {
		t.Fatalf("unreachable keystone: %v, want a non-authentication error", err)
	}
	u := newUpstream(t, BuiltinConfig{})
	k = NewKeystone(KeystoneConfig{URL: u.srv.URL + "/identity/v3", Username: "admin", Password: "wrong", ProjectName: "admin"})
	if _, err := k.Authenticate(apiRequest(t.Context(), "tok")); err == nil || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("bad service credentials: %v, want a non-authentication error", err)
	}
}

func TestKeystoneCacheStaysBounded(t *testing.T) {
	k := NewKeystone(KeystoneConfig{URL: "http://unused"})
	now := time.Now()
	for i := range maxCacheEntries + 100 {
		var key [32]byte
		key[0], key[1], key[2] = byte(i), byte(i>>8), byte(i>>16)
		k.store(key, cacheEntry{until: now.Add(time.Hour)}, now)
	}
	if n := len(k.cache); n > maxCacheEntries {
		t.Fatalf("cache holds %d entries, bound is %d", n, maxCacheEntries)
	}
}
