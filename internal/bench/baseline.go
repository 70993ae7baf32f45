package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vland/vland/internal/store"
)

// Baseline names.
const (
	baseTxn1   = "etcd txn (1 cmp, 1 put)"
	baseTxn5x4 = "etcd txn (port-shaped: 5 cmp, 4 put)"
	baseSeq    = "etcd port-create calls (4 reads + txn)"
	baseSeqSer = "same, all 4 reads serializable"
)

// runBaselines measures what the store alone can do, with the same
// embedded etcd configuration and client as the server (store.Open in a
// fresh temp dir on the same file system) and the same concurrency:
//
//   - a bare transaction: If(create_revision(k)==0).Then(Put(k, 64 B));
//   - a transaction of a port create's shape: five comparisons and four
//     puts, one of them a port-sized JSON value;
//   - the whole sequence of store calls one port create made when this
//     was written (two linearizable gets, a serializable count, a
//     serializable keys-only range over the subnet's addresses, then the
//     transaction; the server's actual calls per request are counted from
//     its etcd metrics);
//   - the same sequence with the two gets serializable, which shows what
//     linearizable reads cost under write load.
func (b *bench) runBaselines(ctx context.Context) ([]OpStats, error) {
	dir, err := os.MkdirTemp("", "vland-bench-etcd-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, store.Config{DataDir: filepath.Join(dir, "data"), Prefix: "/bench",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return nil, fmt.Errorf("baseline etcd: %w", err)
	}
	defer st.Close()
	cli := st.Client
	value64 := strings.Repeat("v", 64)
	portValue := strings.Repeat("p", portJSONSize)
	n := b.opts.Ports
	nets := b.opts.NetworksPerClient
	var out []OpStats

	// Keys standing in for each client's networks and subnets.
	for c := 0; c < b.opts.Clients; c++ {
		for k := 0; k < nets; k++ {
			for _, key := range []string{fmt.Sprintf("/bench/net/%d-%d", c, k), fmt.Sprintf("/bench/subnet/%d-%d", c, k)} {
				if _, err := cli.Put(ctx, key, portValue); err != nil {
					return nil, fmt.Errorf("baseline etcd: %w", err)
				}
			}
		}
	}

	loops := []struct {
		name string
		op   func(ctx context.Context, c, i int) error
	}{
		{baseTxn1, func(ctx context.Context, c, i int) error {
			key := fmt.Sprintf("/bench/t1/%d/%d", c, i)
			resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
				Then(clientv3.OpPut(key, value64)).Commit()
			return txnErr(resp, err)
		}},
		{baseTxn5x4, func(ctx context.Context, c, i int) error {
			k := i % nets
			resp, err := cli.Txn(ctx).If(portCmps(c, k, i)...).Then(portOps(c, k, i, portValue)...).Commit()
			return txnErr(resp, err)
		}},
		{baseSeq, func(ctx context.Context, c, i int) error {
			return portSequence(ctx, cli, "seq", c, i%nets, i, portValue, false)
		}},
		{baseSeqSer, func(ctx context.Context, c, i int) error {
			return portSequence(ctx, cli, "ser", c, i%nets, i, portValue, true)
		}},
	}
	for _, l := range loops {
		b.progress("baseline: %s x %d", l.name, n)
		before := readEtcd()
		self0, all0 := selfCPU(), machineCPU()
		recs := make([]*recorder, b.opts.Clients)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for c := range recs {
			rec := &recorder{}
			recs[c] = rec
			count := share(n, b.opts.Clients, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; i < count && ctx.Err() == nil; i++ {
					t0 := time.Now()
					if err := l.op(ctx, c, i); err != nil {
						if ctx.Err() != nil {
							return
						}
						rec.errors++
						b.errs.add(l.name, err)
						continue
					}
					rec.ok(time.Since(t0))
				}
			}()
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		st := summarize(l.name, recs, time.Since(t0))
		// The member and its client both run in this process.
		st.ServerCPUSeconds = selfCPU() - self0
		st.OtherCPUSeconds = max(0, machineCPU()-all0-st.ServerCPUSeconds)
		if st.Count > 0 {
			st.ServerCPUMsPerOp = st.ServerCPUSeconds * 1000 / float64(st.Count)
		}
		st.Etcd = etcdDelta(before, readEtcd(), st.Count)
		out = append(out, st)
		if err := ctx.Err(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// portJSONSize is about the size of a port as the server stores it.
const portJSONSize = 800

func txnErr(resp *clientv3.TxnResponse, err error) error {
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("transaction comparison failed")
	}
	return nil
}

func portCmps(c, k, i int) []clientv3.Cmp {
	return []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(fmt.Sprintf("/bench/net/%d-%d", c, k)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(fmt.Sprintf("/bench/subnet/%d-%d", c, k)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(fmt.Sprintf("/bench/t5/mac/%d-%d/%d", c, k, i)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(fmt.Sprintf("/bench/t5/ip/%d-%d/%d", c, k, i)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(fmt.Sprintf("/bench/t5/port/%d/%d", c, i)), "=", 0),
	}
}

func portOps(c, k, i int, value string) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpPut(fmt.Sprintf("/bench/t5/port/%d/%d", c, i), value),
		clientv3.OpPut(fmt.Sprintf("/bench/t5/index/%d-%d/%d", c, k, i), ""),
		clientv3.OpPut(fmt.Sprintf("/bench/t5/mac/%d-%d/%d", c, k, i), "port"),
		clientv3.OpPut(fmt.Sprintf("/bench/t5/ip/%d-%d/%d", c, k, i), "port"),
	}
}

// portSequence makes the store calls of one port create as
// service.CreatePorts made them when this was written: get the network and
// its subnet, check the MAC is free, read the subnet's used addresses, then
// commit the transaction.
func portSequence(ctx context.Context, cli *clientv3.Client, space string, c, k, i int, value string, serializable bool) error {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	if _, err := cli.Get(ctx, fmt.Sprintf("/bench/net/%d-%d", c, k), opts...); err != nil {
		return err
	}
	if _, err := cli.Get(ctx, fmt.Sprintf("/bench/subnet/%d-%d", c, k), opts...); err != nil {
		return err
	}
	if _, err := cli.Get(ctx, fmt.Sprintf("/bench/%s/mac/%d-%d/%d", space, c, k, i), clientv3.WithCountOnly(), clientv3.WithSerializable()); err != nil {
		return err
	}
	if _, err := cli.Get(ctx, fmt.Sprintf("/bench/%s/ip/%d-%d/", space, c, k), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSerializable()); err != nil {
		return err
	}
	mac := fmt.Sprintf("/bench/%s/mac/%d-%d/%d", space, c, k, i)
	ip := fmt.Sprintf("/bench/%s/ip/%d-%d/%d", space, c, k, i)
	port := fmt.Sprintf("/bench/%s/port/%d/%d", space, c, i)
	resp, err := cli.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(fmt.Sprintf("/bench/net/%d-%d", c, k)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(fmt.Sprintf("/bench/subnet/%d-%d", c, k)), ">", 0),
		clientv3.Compare(clientv3.CreateRevision(mac), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(ip), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(port), "=", 0),
	).Then(
		clientv3.OpPut(port, value),
		clientv3.OpPut(fmt.Sprintf("/bench/%s/index/%d-%d/%d", space, c, k, i), ""),
		clientv3.OpPut(mac, "port"),
		clientv3.OpPut(ip, "port"),
	).Commit()
	return txnErr(resp, err)
}

// share is client c's part of n items spread over clients.
func share(n, clients, c int) int {
	s := n / clients
	if c < n%clients {
		s++
	}
	return s
}
