// Package store owns vland's desired state in etcd: starting an embedded
// member or connecting to an external cluster, the key layout, and the
// watch-fed read cache the API serves lists from.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// SchemaVersion is the version of the key layout written under SchemaKey.
const SchemaVersion = 1

// Config says where the state lives.
type Config struct {
	// DataDir holds the embedded member's data (ignored with Endpoints).
	DataDir string
	// Endpoints of an external etcd cluster; empty starts an embedded member.
	Endpoints []string
	// Prefix under which every vland key lives (default "/vland").
	Prefix string
	// Logger for store events.
	Logger *slog.Logger
}

// Store is a connection to vland's etcd plus, when embedded, the member itself.
type Store struct {
	Client *clientv3.Client
	Keys   Keys
	etcd   *embed.Etcd
	log    *slog.Logger
}

// Open starts or connects to etcd and checks the schema version.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "/vland"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{Keys: Keys{Prefix: cfg.Prefix}, log: cfg.Logger}
	endpoints := cfg.Endpoints
	if len(endpoints) == 0 {
		var e *embed.Etcd
		var ep string
		var err error
		// The ports are picked free but bound only later by etcd, so another
		// process can take one in between: try again with new ports.
		for try := 0; try < 5; try++ {
			if e, ep, err = startEmbedded(cfg.DataDir); err == nil || !strings.Contains(err.Error(), "address already in use") {
				break
			}
		}
		if err != nil {
			return nil, err
		}
		s.etcd = e
		endpoints = []string{ep}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
		// Large port bulk creates and identity bodies fit well within this.
		MaxCallSendMsgSize: 16 << 20,
		MaxCallRecvMsgSize: 256 << 20,
	})
	if err != nil {
		s.closeEmbedded()
		return nil, fmt.Errorf("connect to etcd %v: %w", endpoints, err)
	}
	s.Client = cli
	if err := s.checkSchema(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close disconnects and, when embedded, stops the member.
func (s *Store) Close() error {
	var err error
	if s.Client != nil {
		err = s.Client.Close()
	}
	s.closeEmbedded()
	return err
}

func (s *Store) closeEmbedded() {
	if s.etcd != nil {
		s.etcd.Close()
		s.etcd = nil
	}
}

// checkSchema writes the schema version on a fresh store and refuses a store
// written by a newer layout, so an old binary never misreads new keys.
func (s *Store) checkSchema(ctx context.Context) error {
	key := s.Keys.Schema()
	want := strconv.Itoa(SchemaVersion)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := s.Client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, want)).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("check schema version: %w", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return errors.New("schema key vanished while checking it")
	}
	got, err := strconv.Atoi(string(kvs[0].Value))
	if err != nil {
		return fmt.Errorf("schema version %q is not a number", kvs[0].Value)
	}
	if got > SchemaVersion {
		return fmt.Errorf("store schema version %d is newer than this binary's %d", got, SchemaVersion)
	}
	return nil
}

// startEmbedded runs a single etcd member in dataDir listening on loopback
// ports chosen by the kernel, and returns it with its client endpoint.
func startEmbedded(dataDir string) (*embed.Etcd, string, error) {
	if dataDir == "" {
		return nil, "", errors.New("embedded etcd needs a data directory")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create data dir: %w", err)
	}
	clientPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, "", err
	}
	cfg := embed.NewConfig()
	cfg.Name = "vland"
	cfg.Dir = filepath.Join(dataDir, "etcd")
	cfg.Logger = "zap"
	// etcd's own logs would drown vland's; failures surface as client errors.
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.MaxTxnOps = 16384
	cu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(clientPort))
	pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(peerPort))
	cfg.ListenClientUrls = []url.URL{*cu}
	cfg.AdvertiseClientUrls = []url.URL{*cu}
	cfg.ListenPeerUrls = []url.URL{*pu}
	cfg.AdvertisePeerUrls = []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	// A single member that restarts on another peer port must not refuse
	// to start: the peer URL is informational for a one-member cluster.
	cfg.StrictReconfigCheck = false
	cfg.AutoCompactionMode = "periodic"
	cfg.AutoCompactionRetention = "1h"
	cfg.QuotaBackendBytes = 8 << 30
	if _, err := os.Stat(filepath.Join(cfg.Dir, "member")); err == nil {
		cfg.ClusterState = embed.ClusterStateFlagExisting
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, "", errors.New("embedded etcd not ready after 60s")
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd: %w", err)
	}
	return e, cu.String(), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
