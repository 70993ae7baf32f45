package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vland/vland/internal/server"
	"github.com/vland/vland/internal/service"
)

// target is the server under test: a child process the benchmark started,
// a server running inside the benchmark's own process, or an external one.
type target struct {
	mode          string // "child", "inprocess" or "external"
	url           string
	adminPassword string
	pid           int // the process whose RSS and CPU are the server's
	// etcdMetrics is the /metrics URL of a child server's embedded etcd.
	etcdMetrics string

	dir     string // temp root (child, inprocess): data dir and log
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	srv     *server.Server
}

// Target modes.
const (
	modeChild     = "child"
	modeInProcess = "inprocess"
	modeExternal  = "external"
)

func randomPassword() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port the kernel just
// handed out (free unless someone takes it in between).
func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// checkLoopbackURL refuses a server URL that is not on this host's loopback.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("--server %q is not an http(s) URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--server %q: the benchmark only talks to loopback addresses", raw)
}

// startChild runs `vland server` from bin on a free loopback port with a
// fresh data dir and a generated admin password.
func startChild(ctx context.Context, bin string, clients int) (*target, error) {
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable (use --vland): %w", err)
		}
		bin = exe
	}
	dir, err := os.MkdirTemp("", "vland-bench-")
	if err != nil {
		return nil, err
	}
	t := &target{mode: modeChild, dir: dir, adminPassword: randomPassword(), exited: make(chan struct{})}
	t.logPath = filepath.Join(dir, "server.log")
	logf, err := os.Create(t.logPath)
	if err != nil {
		t.close()
		return nil, err
	}
	defer logf.Close()
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.close()
		return nil, err
	}
	t.url = "http://" + addr
	cmd := exec.Command(bin, "server", "--listen", addr, "--data-dir", filepath.Join(dir, "data"), "--auth", "builtin", "--log-level", "warn")
	// The password travels in the environment, not on the command line.
	cmd.Env = append(os.Environ(), "VLAND_ADMIN_PASSWORD="+t.adminPassword)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a terminal's Ctrl-C reaches the benchmark, which
	// then stops the server itself; and the server dies with the benchmark.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.close()
		return nil, fmt.Errorf("start %s server: %w", bin, err)
	}
	t.cmd, t.pid = cmd, cmd.Process.Pid
	go func() {
		t.waitErr = cmd.Wait()
		close(t.exited)
	}()
	c := newHTTPClient(t.url, clients)
	defer c.close()
	alive := func() error {
		select {
		case <-t.exited:
			return fmt.Errorf("server exited during start-up (%v); its log ends:\n%s", t.waitErr, t.logTail(20))
		default:
			return nil
		}
	}
	if err := c.waitReady(ctx, 2*time.Minute, alive); err != nil {
		tail := t.logTail(20)
		t.close()
		if strings.Contains(err.Error(), "its log ends") {
			return nil, err
		}
		return nil, fmt.Errorf("%w; server log ends:\n%s", err, tail)
	}
	_, port, _ := net.SplitHostPort(addr)
	apiPort, _ := strconv.Atoi(port)
	t.etcdMetrics = findEtcdMetrics(t.pid, apiPort)
	return t, nil
}

// readEtcd reads the counters of the server's etcd member, when visible.
func (t *target) readEtcd() etcdSnapshot {
	switch {
	case t.mode == modeInProcess:
		return readEtcd()
	case t.etcdMetrics != "":
		return scrapeEtcd(t.etcdMetrics)
	}
	return nil
}

// startInProcess runs the server inside this process (for profiling).
func startInProcess(ctx context.Context, clients int) (*target, error) {
	dir, err := os.MkdirTemp("", "vland-bench-")
	if err != nil {
		return nil, err
	}
	t := &target{mode: modeInProcess, dir: dir, adminPassword: randomPassword(), pid: os.Getpid()}
	cfg := server.Config{
		Listen:        "127.0.0.1:0",
		DataDir:       filepath.Join(dir, "data"),
		Auth:          server.AuthBuiltin,
		AdminPassword: t.adminPassword,
		TokenTTL:      12 * time.Hour,
		Service:       service.DefaultConfig(),
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		t.close()
		return nil, fmt.Errorf("start in-process server: %w", err)
	}
	t.srv, t.url = srv, srv.URL
	c := newHTTPClient(t.url, clients)
	defer c.close()
	if err := c.waitReady(ctx, time.Minute, nil); err != nil {
		t.close()
		return nil, err
	}
	return t, nil
}

// external is a server someone else runs; the benchmark needs its admin
// password.
func external(ctx context.Context, rawURL, password string, clients int) (*target, error) {
	if err := checkLoopbackURL(rawURL); err != nil {
		return nil, err
	}
	if password == "" {
		return nil, errors.New("--server needs the admin password (--admin-password or VLAND_ADMIN_PASSWORD)")
	}
	t := &target{mode: modeExternal, url: strings.TrimRight(rawURL, "/"), adminPassword: password}
	c := newHTTPClient(t.url, clients)
	defer c.close()
	if err := c.waitReady(ctx, 10*time.Second, nil); err != nil {
		return nil, err
	}
	return t, nil
}

// close stops a server the benchmark started and removes its directory.
// It is safe to call more than once.
func (t *target) close() {
	if t.srv != nil {
		_ = t.srv.Close()
		t.srv = nil
	}
	if t.cmd != nil && t.cmd.Process != nil {
		select {
		case <-t.exited:
		default:
			_ = t.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-t.exited:
			case <-time.After(10 * time.Second):
				_ = t.cmd.Process.Kill()
				<-t.exited
			}
		}
		t.cmd = nil
	}
	if t.dir != "" {
		_ = os.RemoveAll(t.dir)
		t.dir = ""
	}
}

// childExited reports an error if a child server died.
func (t *target) childExited() error {
	if t.exited == nil {
		return nil
	}
	select {
	case <-t.exited:
		return fmt.Errorf("server exited (%v); its log ends:\n%s", t.waitErr, t.logTail(20))
	default:
		return nil
	}
}

// logTail returns the last n lines of a child server's log.
func (t *target) logTail(n int) string {
	if t.logPath == "" {
		return ""
	}
	f, err := os.Open(t.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 64<<10 {
		_, _ = f.Seek(-64<<10, io.SeekEnd)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// memStatus is a process's memory as /proc/<pid>/status has it, in bytes.
type memStatus struct {
	hwm, rss, anon, file int64
}

// procStatus reads a process's peak and current resident set.
func procStatus(pid int) (m memStatus) {
	if pid == 0 {
		return m
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) < 1 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmHWM":
			m.hwm = n << 10
		case "VmRSS":
			m.rss = n << 10
		case "RssAnon":
			m.anon = n << 10
		case "RssFile":
			m.file = n << 10
		}
	}
	return m
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// procCPU returns the CPU seconds (user+system) a process has used.
func procCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks
}

// selfCPU returns this process's CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// machineCPU returns the CPU seconds all CPUs have spent busy (not idle or
// waiting for I/O) since boot.
func machineCPU() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy / clockTicks
}
