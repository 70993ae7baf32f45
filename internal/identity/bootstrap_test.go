package identity

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vland/vland/internal/store"
)

// counts reports how many identity objects of each kind the mirror holds.
func counts(b *Builtin) map[string]int {
	out := map[string]int{}
	b.mirror.read(func(st *mirrorState, _ int64) {
		out["domains"], out["projects"], out["users"], out["roles"] = len(st.domains), len(st.projects), len(st.users), len(st.roles)
		for _, byUser := range st.grants {
			for _, roles := range byUser {
				out["grants"] += len(roles)
			}
		}
	})
	return out
}

func wantBootstrapped(t *testing.T, b *Builtin) {
	t.Helper()
	got := counts(b)
	want := map[string]int{"domains": 1, "projects": 1, "users": 1, "roles": 3, "grants": 3}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("after bootstrap %v, want %v", got, want)
		}
	}
}

func TestRestartKeepsGeneratedPasswordSigningKeyAndData(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	open := func() (*store.Store, *Builtin) {
		st := openStore(t, dir)
		b, err := NewBuiltin(ctx, BuiltinConfig{Store: st, DataDir: dir, Logger: quietLogger()})
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		return st, b
	}
	st, b := open()
	wantBootstrapped(t, b)
	pwFile := filepath.Join(dir, "admin-password")
	fi, err := os.Stat(pwFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated password file: %v %v, want mode 0600", fi, err)
	}
	data, _ := os.ReadFile(pwFile)
	password := strings.TrimSpace(string(data))
	in := &authInput{userName: "admin", userDomain: ref{Name: "Default"}, password: password}
	if _, _, err := b.checkUserPassword(in); err != nil {
		t.Fatalf("generated password does not work: %v", err)
	}
	adminID, _, _ := b.checkUserPassword(in)
	var projectID string
	b.mirror.read(func(s *mirrorState, _ int64) { projectID = s.projectByName("default", "admin").ID })
	tok, err := b.IssueToken(ctx, adminID, projectID)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pwFile); err != nil {
		t.Fatal(err)
	}
	b.Close()
	st.Close()

	st, b = open()
	defer st.Close()
	defer b.Close()
	wantBootstrapped(t, b)
	if _, err := os.Stat(pwFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restart wrote a new password file: %v", err)
	}
	if _, _, err := b.checkUserPassword(in); err != nil {
		t.Fatalf("password changed across restart: %v", err)
	}
	if _, err := b.Authenticate(apiRequest(ctx, tok)); err != nil {
		t.Fatalf("token issued before restart: %v", err)
	}
}

func TestConfiguredAdminPasswordResetsStoredOne(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	old := e.issue("admin", adminPassword, "admin")
	b := e.startBuiltin(BuiltinConfig{AdminPassword: "changed"})
	wantBootstrapped(t, b)
	in := &authInput{userName: "admin", userDomain: ref{ID: "default"}, password: "changed"}
	eventually(t, "the new password", func() bool { _, _, err := e.b.checkUserPassword(in); return err == nil })
	if _, err := e.b.Authenticate(apiRequest(t.Context(), old)); err == nil {
		t.Fatal("token issued with the old admin password still valid")
	}
	// The same configured password again changes nothing.
	before := counts(b)
	e.startBuiltin(BuiltinConfig{AdminPassword: "changed"})
	fresh := e.issue("admin", "changed", "admin")
	if _, err := b.Authenticate(apiRequest(t.Context(), fresh)); err != nil {
		t.Fatalf("restart with the same password revoked tokens: %v", err)
	}
	if after := counts(b); after["users"] != before["users"] {
		t.Fatalf("objects %v, then %v", before, after)
	}
}

func TestConcurrentBootstrapsCreateOneOfEverything(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, t.TempDir())
	defer st.Close()
	dirs := make([]string, 6)
	builtins := make([]*Builtin, len(dirs))
	var wg sync.WaitGroup
	for i := range dirs {
		dirs[i] = t.TempDir()
		wg.Go(func() {
			b, err := NewBuiltin(ctx, BuiltinConfig{Store: st, DataDir: dirs[i], Logger: quietLogger()})
			if err != nil {
				t.Error(err)
				return
			}
			builtins[i] = b
		})
	}
	wg.Wait()
	files := 0
	for i, b := range builtins {
		if b == nil {
			t.FailNow()
		}
		defer b.Close()
		if _, err := os.Stat(filepath.Join(dirs[i], "admin-password")); err == nil {
			files++
		}
	}
	if files != 1 {
		t.Fatalf("%d servers wrote a generated password, want exactly one", files)
	}
	for _, b := range builtins {
		eventually(t, "every server to see the bootstrap", func() bool { return counts(b)["grants"] == 3 })
		wantBootstrapped(t, b)
	}
	// Every server signs with the one shared key.
	var adminID, projectID string
	builtins[0].mirror.read(func(s *mirrorState, _ int64) {
		adminID, projectID = s.userByName("default", "admin").ID, s.projectByName("default", "admin").ID
	})
	tok, err := builtins[3].IssueToken(ctx, adminID, projectID)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range builtins {
		if _, err := b.Authenticate(apiRequest(ctx, tok)); err != nil {
			t.Fatalf("token not valid on every server: %v", err)
		}
	}
}

func TestSecondServerValidatesTokensOfFreshUsers(t *testing.T) {
	e := newEnv(t, BuiltinConfig{})
	ctx := t.Context()
	second := e.startBuiltin(BuiltinConfig{})
	for i := range 20 {
		// A user created and given a token on the first server a moment
		// ago: the second may not have seen the user yet and must catch up.
		p, err := e.b.CreateProject(ctx, "p"+string(rune('a'+i)))
		if err != nil {
			t.Fatal(err)
		}
		u, err := e.b.CreateUser(ctx, "u"+string(rune('a'+i)), "pw", p, "member")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := e.b.IssueToken(ctx, u, p)
		if err != nil {
			t.Fatal(err)
		}
		c, err := second.Authenticate(apiRequest(ctx, tok))
		if err != nil || c.UserID != u || c.ProjectID != p {
			t.Fatalf("second server: %+v %v", c, err)
		}
	}
}
