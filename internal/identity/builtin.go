package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/vland/vland/internal/policy"
	"github.com/vland/vland/internal/store"
)

// BuiltinConfig configures the builtin Keystone v3 subset.
type BuiltinConfig struct {
	// Store holds the identity data; every server sharing it shares users,
	// projects and the token-signing key.
	Store *store.Store
	// AdminPassword is the admin user's password. Empty keeps the stored one,
	// or generates one (written to DataDir/admin-password) on first start.
	AdminPassword string
	// DataDir receives the generated admin password.
	DataDir string
	// TokenTTL is how long tokens live (default 12h).
	TokenTTL time.Duration
	// Region is the catalog's region (default RegionOne).
	Region string
	// Logger for identity events (default slog.Default()).
	Logger *slog.Logger
}

// Builtin is vland's own Keystone v3 subset: token issue and validation,
// projects, users, roles and role assignments, all kept in etcd.
type Builtin struct {
	cli    *clientv3.Client
	keys   keys
	mirror *mirror
	signer signer
	ttl    time.Duration
	region string
	log    *slog.Logger

	cancel  context.CancelFunc
	done    chan struct{}
	handler http.Handler
}

var _ Authenticator = (*Builtin)(nil)

// bcryptCost is the work factor of password hashes; tests lower it.
var bcryptCost = bcrypt.DefaultCost

// staleWait bounds how long validation waits for this server's mirror to
// catch up with a token issued by a server that had seen newer data.
const staleWait = 2 * time.Second

// Errors that wrap ErrUnauthenticated, so callers can test for it alone.
var (
	errTokenInvalid = fmt.Errorf("%w: invalid token", ErrUnauthenticated)
	errTokenExpired = fmt.Errorf("%w: token expired", ErrUnauthenticated)
	errTokenRevoked = fmt.Errorf("%w: token revoked", ErrUnauthenticated)
)

// NewBuiltin bootstraps the identity data (safe when several servers start
// at once on one store) and starts following it.
func NewBuiltin(ctx context.Context, cfg BuiltinConfig) (*Builtin, error) {
	if cfg.Store == nil || cfg.Store.Client == nil {
		return nil, errors.New("identity: builtin needs a store")
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 12 * time.Hour
	}
	if cfg.Region == "" {
		cfg.Region = "RegionOne"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	k := keys{cfg.Store.Keys}
	b := &Builtin{
		cli:    cfg.Store.Client,
		keys:   k,
		mirror: newMirror(cfg.Store.Client, k, cfg.Logger),
		ttl:    cfg.TokenTTL,
		region: cfg.Region,
		log:    cfg.Logger,
		done:   make(chan struct{}),
	}
	if err := b.bootstrap(ctx, cfg); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	rev, err := b.mirror.load(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer close(b.done)
		b.mirror.follow(runCtx, rev)
	}()
	b.handler = b.routes()
	return b, nil
}

// Close stops following the store. Call it before closing the store.
func (b *Builtin) Close() {
	b.cancel()
	<-b.done
}

// Authenticate implements Authenticator for tokens this service issued.
func (b *Builtin) Authenticate(r *http.Request) (*policy.Credentials, error) {
	tok := r.Header.Get("X-Auth-Token")
	if tok == "" {
		return nil, ErrUnauthenticated
	}
	s, err := b.validate(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	return s.credentials(), nil
}

// CreateProject creates a project in the default domain and returns its id.
func (b *Builtin) CreateProject(ctx context.Context, name string) (string, error) {
	p := &projectRec{ID: newID(), Name: name, DomainID: defaultDomainID, Enabled: true}
	if err := b.createProject(ctx, p); err != nil {
		return "", err
	}
	return p.ID, nil
}

// CreateUser creates a user in the default domain whose default project is
// projectID, grants it the named roles there, and returns its id.
func (b *Builtin) CreateUser(ctx context.Context, name, password, projectID string, roles ...string) (string, error) {
	if projectID == "" && len(roles) > 0 {
		return "", errors.New("identity: roles need a project to be granted on")
	}
	u := &userRec{ID: newID(), Name: name, DomainID: defaultDomainID, Enabled: true, DefaultProjectID: projectID}
	if err := b.createUser(ctx, u, password, true); err != nil {
		return "", err
	}
	for _, name := range roles {
		var role *roleRec
		b.mirror.read(func(st *mirrorState, _ int64) { role = st.roleByName(name) })
		if role == nil {
			return "", fmt.Errorf("grant role %q to user %s: %w", name, u.ID, errNotFound(kindRole, name))
		}
		if _, err := b.grant(ctx, projectID, u.ID, role.ID); err != nil {
			return "", fmt.Errorf("grant role %q to user %s: %w", name, u.ID, err)
		}
	}
	return u.ID, nil
}

// IssueToken issues a token for userID scoped to projectID (unscoped when
// empty) without a password, for tests and development tooling.
// It first catches up with the store, so users and grants made through any
// server are seen.
func (b *Builtin) IssueToken(ctx context.Context, userID, projectID string) (string, error) {
	resp, err := b.cli.Get(ctx, b.keys.signingKey(), clientv3.WithCountOnly())
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	if err := b.mirror.waitRev(ctx, resp.Header.Revision); err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	tok, _, err := b.issue(issueRequest{userID: userID, projectID: projectID, methods: methodPassword})
	return tok, err
}

// bootstrap creates what Keystone's bootstrap creates: the default domain,
// the admin, member and reader roles, the admin project and the admin user
// holding every role on it. Each step is a create-if-absent transaction.
func (b *Builtin) bootstrap(ctx context.Context, cfg BuiltinConfig) error {
	key, err := b.ensureSigningKey(ctx)
	if err != nil {
		return err
	}
	b.signer = newSigner(key)
	d := &domainRec{ID: defaultDomainID, Name: "Default", Description: "The default domain", Enabled: true}
	if _, err := b.ensureNamed(ctx, kindDomain, globalScope, d.Name, d.ID, b.putOp(b.keys.domain(d.ID), d)); err != nil {
		return err
	}
	var roleIDs []string
	for _, name := range []string{policy.RoleAdmin, policy.RoleMember, policy.RoleReader} {
		r := &roleRec{ID: newID(), Name: name}
		id, err := b.ensureNamed(ctx, kindRole, globalScope, name, r.ID, b.putOp(b.keys.role(r.ID), r))
		if err != nil {
			return err
		}
		roleIDs = append(roleIDs, id)
	}
	p := &projectRec{ID: newID(), Name: "admin", DomainID: defaultDomainID, Description: "Bootstrap project for initializing the cloud.", Enabled: true}
	projectID, err := b.ensureNamed(ctx, kindProject, defaultDomainID, p.Name, p.ID, b.putOp(b.keys.project(p.ID), p))
	if err != nil {
		return err
	}
	userID, err := b.ensureAdmin(ctx, cfg, projectID)
	if err != nil {
		return err
	}
	for _, roleID := range roleIDs {
		k := b.keys.assignment(projectID, userID, roleID)
		_, err := b.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, "")).Commit()
		if err != nil {
			return fmt.Errorf("bootstrap admin role assignment: %w", err)
		}
	}
	return nil
}

// ensureSigningKey returns the shared token-signing key, creating it once.
func (b *Builtin) ensureSigningKey(ctx context.Context) ([]byte, error) {
	k := b.keys.signingKey()
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("generate token signing key: %w", err)
	}
	enc := base64.StdEncoding
	resp, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, enc.EncodeToString(fresh))).
		Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return nil, fmt.Errorf("store token signing key: %w", err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, errors.New("token signing key vanished while reading it")
	}
	key, err := enc.DecodeString(string(kvs[0].Value))
	if err != nil || len(key) < 16 {
		return nil, fmt.Errorf("stored token signing key is corrupt: %v", err)
	}
	return key, nil
}

// ensureAdmin creates the admin user, or resets its password when one is
// configured and differs (as keystone-manage bootstrap does), and returns
// the admin user's id.
func (b *Builtin) ensureAdmin(ctx context.Context, cfg BuiltinConfig, projectID string) (string, error) {
	password, generated := cfg.AdminPassword, false
	if password == "" {
		password, generated = randomPassword(), true
	}
	hash, err := hashPassword(password)
	if err != nil {
		return "", err
	}
	u := &userRec{ID: newID(), Name: "admin", DomainID: defaultDomainID, Enabled: true, DefaultProjectID: projectID}
	nameKey := b.keys.name(kindUser, u.DomainID, u.Name)
	resp, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(nameKey), "=", 0)).
		Then(clientv3.OpPut(nameKey, u.ID), b.putOp(b.keys.user(u.ID), u), clientv3.OpPut(b.keys.password(u.ID), string(hash))).
		Else(clientv3.OpGet(nameKey)).Commit()
	if err != nil {
		return "", fmt.Errorf("bootstrap admin user: %w", err)
	}
	if resp.Succeeded {
		if generated {
			b.reportAdminPassword(cfg.DataDir, password)
		}
		return u.ID, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return "", errors.New("admin user vanished during bootstrap")
	}
	id := string(kvs[0].Value)
	if !generated {
		if err := b.resetPassword(ctx, id, password); err != nil {
			return "", err
		}
	}
	return id, nil
}

// resetPassword sets a user's password unless it already matches, so that a
// restart with the same configured password does not revoke every token.
func (b *Builtin) resetPassword(ctx context.Context, userID, password string) error {
	resp, err := b.cli.Get(ctx, b.keys.password(userID))
	if err != nil {
		return fmt.Errorf("read admin password: %w", err)
	}
	if len(resp.Kvs) == 1 && checkPassword(resp.Kvs[0].Value, password) {
		return nil
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	if _, err := b.cli.Put(ctx, b.keys.password(userID), string(hash)); err != nil {
		return fmt.Errorf("reset admin password: %w", err)
	}
	b.log.Info("admin password reset from configuration", "user", userID)
	return nil
}

// reportAdminPassword tells the operator a generated password, once.
func (b *Builtin) reportAdminPassword(dataDir, password string) {
	if dataDir == "" {
		b.log.Warn("generated admin password", "user", "admin", "password", password)
		return
	}
	path := filepath.Join(dataDir, "admin-password")
	if err := os.MkdirAll(dataDir, 0o700); err == nil {
		err = os.WriteFile(path, []byte(password+"\n"), 0o600)
		if err == nil {
			b.log.Warn("generated admin password", "user", "admin", "password", password, "file", path)
			return
		}
		b.log.Error("write generated admin password", "file", path, "err", err)
	}
	b.log.Warn("generated admin password", "user", "admin", "password", password)
}

func randomPassword() string {
	var p [18]byte
	_, _ = rand.Read(p[:])
	return base64.RawURLEncoding.EncodeToString(p[:])
}

// prehash turns any password into 44 bytes: bcrypt ignores everything past
// 72 bytes, and passwords may be longer or contain any byte.
func prehash(password string) []byte {
	sum := sha256.Sum256([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

func hashPassword(password string) ([]byte, error) {
	h, err := bcrypt.GenerateFromPassword(prehash(password), bcryptCost)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

func checkPassword(hash []byte, password string) bool {
	return bcrypt.CompareHashAndPassword(hash, prehash(password)) == nil
}

// dummyHash is compared against when the user does not exist, so that an
// unknown user takes as long to reject as a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := hashPassword(randomPassword())
	return h
})
