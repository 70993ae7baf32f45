package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// EtcdDelta is the work an etcd member did during one phase, read from its
// Prometheus metrics: how many KV calls arrived, how many WAL fsyncs and
// backend commits they cost, and how long those took. The member is the
// one inside this process (in-process server, baselines) or the child
// server's, scraped from the /metrics page of its loopback client port.
type EtcdDelta struct {
	Ranges               float64 `json:"ranges"`
	Txns                 float64 `json:"txns"`
	Puts                 float64 `json:"puts"`
	Proposals            float64 `json:"proposals"`
	WALFsyncs            float64 `json:"wal_fsyncs"`
	WALFsyncSeconds      float64 `json:"wal_fsync_seconds"`
	BackendCommits       float64 `json:"backend_commits"`
	BackendCommitSeconds float64 `json:"backend_commit_seconds"`
	ReceivedBytes        float64 `json:"received_bytes"`
	SentBytes            float64 `json:"sent_bytes"`
	// Per successful operation of the phase.
	RangesPerOp float64 `json:"ranges_per_op"`
	TxnsPerOp   float64 `json:"txns_per_op"`
	FsyncsPerOp float64 `json:"fsyncs_per_op"`
	// MeanFsyncMs is the mean duration of one WAL fsync.
	MeanFsyncMs float64 `json:"mean_fsync_ms"`
}

// etcdSnapshot is a reading of the counters EtcdDelta is made of.
type etcdSnapshot map[string]float64

// readEtcd reads the counters of the etcd members running in this process.
func readEtcd() etcdSnapshot {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil && len(mfs) == 0 {
		return nil
	}
	return snapshotOf(mfs)
}

// scrapeEtcd reads the counters of an etcd member from its /metrics URL
// (the child server's embedded member, found by findEtcdMetrics).
func scrapeEtcd(metricsURL string) etcdSnapshot {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(metricsURL)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	mfs := make([]*dto.MetricFamily, 0, len(fams))
	for _, mf := range fams {
		mfs = append(mfs, mf)
	}
	return snapshotOf(mfs)
}

func snapshotOf(mfs []*dto.MetricFamily) etcdSnapshot {
	s := etcdSnapshot{}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			switch name {
			case "grpc_server_handled_total":
				if label(m, "grpc_service") == "etcdserverpb.KV" {
					s["kv_"+label(m, "grpc_method")] += m.GetCounter().GetValue()
				}
			case "etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds":
				s[name+"_count"] += float64(m.GetHistogram().GetSampleCount())
				s[name+"_sum"] += m.GetHistogram().GetSampleSum()
			case "etcd_server_proposals_committed_total":
				s[name] += m.GetGauge().GetValue()
			case "etcd_network_client_grpc_received_bytes_total", "etcd_network_client_grpc_sent_bytes_total":
				s[name] += m.GetCounter().GetValue()
			}
		}
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// delta is what happened between two snapshots, per op over ops operations.
func etcdDelta(before, after etcdSnapshot, ops int) *EtcdDelta {
	if before == nil || after == nil {
		return nil
	}
	d := func(k string) float64 { return after[k] - before[k] }
	e := &EtcdDelta{
		Ranges:               d("kv_Range"),
		Txns:                 d("kv_Txn"),
		Puts:                 d("kv_Put"),
		Proposals:            d("etcd_server_proposals_committed_total"),
		WALFsyncs:            d("etcd_disk_wal_fsync_duration_seconds_count"),
		WALFsyncSeconds:      d("etcd_disk_wal_fsync_duration_seconds_sum"),
		BackendCommits:       d("etcd_disk_backend_commit_duration_seconds_count"),
		BackendCommitSeconds: d("etcd_disk_backend_commit_duration_seconds_sum"),
		ReceivedBytes:        d("etcd_network_client_grpc_received_bytes_total"),
		SentBytes:            d("etcd_network_client_grpc_sent_bytes_total"),
	}
	if ops > 0 {
		e.RangesPerOp = e.Ranges / float64(ops)
		e.TxnsPerOp = e.Txns / float64(ops)
		e.FsyncsPerOp = e.WALFsyncs / float64(ops)
	}
	if e.WALFsyncs > 0 {
		e.MeanFsyncMs = e.WALFsyncSeconds / e.WALFsyncs * 1000
	}
	return e
}

// findEtcdMetrics finds the /metrics URL of the etcd member embedded in
// process pid: among the loopback TCP ports the process listens on (but
// apiPort), the one whose /metrics page has etcd's counters.
func findEtcdMetrics(pid, apiPort int) string {
	inodes := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	hc := &http.Client{Timeout: 5 * time.Second}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fl := strings.Fields(sc.Text())
		if len(fl) < 10 || fl[3] != "0A" || !inodes[fl[9]] {
			continue
		}
		host, port, ok := strings.Cut(fl[1], ":")
		if !ok || host != "0100007F" { // 127.0.0.1
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil || int(p) == apiPort {
			continue
		}
		u := fmt.Sprintf("http://127.0.0.1:%d/metrics", p)
		resp, err := hc.Get(u)
		if err != nil {
			continue
		}
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.Contains(string(head), "etcd_server_") {
			return u
		}
	}
	return ""
}
