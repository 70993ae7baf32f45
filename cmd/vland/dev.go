package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/vland/vland/internal/devcluster"
)

const devUsage = `usage: vland dev <command> [flags]   (as root)

A whole vland cloud on one machine: a server, one agent per simulated host,
hosts and VMs as network namespaces. Every command takes --cluster N
(default dev) and --dir D (default: where 'up' put it, else
/var/lib/vland/dev/<N>).

  up [--hosts K] [--network-hosts M]      start the cluster; prints how to use it
  down                                    remove everything of the cluster
  status [-f json]                        hosts, agents, VMs
  vm create NAME --network NET [--host H] [--cloud C] [--ip IP]
            [--security-group SG]... [--no-port-security]
            [--user-data FILE] [--key NAME=PUBKEY]...
                                          a VM on a network; prints its IP last
  vm exec NAME -- CMD...                  run a command inside a VM
  vm delete NAME                          delete a VM and its port
  vm list [-f json]                       list VMs
  host down H | host up H                 cut a host off (agent killed) / bring it back
  outside exec -- CMD...                  run a command in the outside namespace (203.0.113.1,
                                          on the external network "public"; an HTTP server there
                                          answers every GET with the caller's address)
  demo [-f json]                          two projects, same CIDR, four VMs: connectivity matrix
`

// runDev is `vland dev`.
func runDev(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(os.Stderr, devUsage)
		if len(args) == 0 {
			return errors.New("a command is needed")
		}
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("vland dev needs root: it creates network namespaces, links and processes")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd, rest := args[0], args[1:]; cmd {
	case "up":
		return devUp(ctx, rest)
	case "down":
		return devDown(rest)
	case "status":
		return devStatus(ctx, rest)
	case "vm":
		return devVM(ctx, rest)
	case "host":
		return devHost(ctx, rest)
	case "demo":
		return devDemo(ctx, rest)
	case "outside":
		return devOutside(ctx, rest)
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, devUsage)
	}
}

// devFlags are the flags every dev command has.
type devFlags struct {
	fs       *flag.FlagSet
	cluster  string
	dir      string
	format   string
	logLevel string
}

func newDevFlags(name string, withFormat bool) *devFlags {
	f := &devFlags{fs: flag.NewFlagSet("dev "+name, flag.ContinueOnError), format: "table"}
	f.fs.StringVar(&f.cluster, "cluster", "dev", "cluster name")
	f.fs.StringVar(&f.dir, "dir", "", "cluster directory (default: where up put it, else /var/lib/vland/dev/<cluster>)")
	f.fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (progress on stderr)")
	if withFormat {
		f.fs.StringVar(&f.format, "f", "table", "output format: table or json")
		f.fs.StringVar(&f.format, "format", "table", "output format: table or json")
	}
	return f
}

// parse parses flags placed anywhere among the positional arguments (flag
// stops at the first positional) and returns the positionals.
func (f *devFlags) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			return nil, err
		}
		if f.fs.NArg() == 0 {
			break
		}
		pos = append(pos, f.fs.Arg(0))
		args = f.fs.Args()[1:]
	}
	if f.format != "table" && f.format != "json" {
		return nil, fmt.Errorf("-f %q: use table or json", f.format)
	}
	return pos, nil
}

func (f *devFlags) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func (f *devFlags) open() (*devcluster.Cluster, error) {
	return devcluster.Open(f.cluster, f.dir, f.logger())
}

// openBare parses flags for a command that takes no arguments and opens
// the cluster.
func (f *devFlags) openBare(args []string, usage string) (*devcluster.Cluster, error) {
	pos, err := f.parse(args)
	if err != nil {
		return nil, err
	}
	if err := wantArgs(pos, 0, usage); err != nil {
		return nil, err
	}
	return f.open()
}

func wantArgs(pos []string, n int, usage string) error {
	if len(pos) != n {
		return fmt.Errorf("usage: vland dev %s", usage)
	}
	return nil
}

func devUp(ctx context.Context, args []string) error {
	f := newDevFlags("up", false)
	hosts := f.fs.Int("hosts", 2, "number of compute hosts")
	netHosts := f.fs.Int("network-hosts", 1, "number of network hosts")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "up [--cluster N] [--hosts K] [--network-hosts M] [--dir D]"); err != nil {
		return err
	}
	if *hosts < 1 || *netHosts < 0 {
		return errors.New("--hosts must be at least 1 and --network-hosts at least 0")
	}
	nh := *netHosts
	if nh == 0 {
		nh = -1 // Options: negative means none
	}
	c, err := devcluster.Up(ctx, devcluster.Options{Name: f.cluster, Hosts: *hosts, NetworkHosts: nh, Dir: f.dir, Logger: f.logger()})
	if err != nil {
		return err
	}
	st := c.State()
	fmt.Printf("# vland dev cluster %q is up: prefix %s, server %s, %d hosts, state in %s\n", st.Name, st.Prefix, st.ServerURL, len(st.Hosts), st.Dir)
	fmt.Printf("export OS_CLIENT_CONFIG_FILE=%s\n", c.CloudsPath())
	fmt.Printf("# then, for example:\n#   openstack --os-cloud %s-demo network list\n", st.Name)
	fmt.Printf("#   vland dev vm create vm1 --network NET --cluster %s\n", st.Name)
	return nil
}

func devDown(args []string) error {
	f := newDevFlags("down", false)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 0, "down [--cluster N]"); err != nil {
		return err
	}
	if err := devcluster.Down(f.cluster, f.dir, f.logger()); err != nil {
		return err
	}
	fmt.Printf("cluster %q removed\n", f.cluster)
	return nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func devStatus(ctx context.Context, args []string) error {
	f := newDevFlags("status", true)
	c, err := f.openBare(args, "status [--cluster N] [-f json]")
	if err != nil {
		return err
	}
	s, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if f.format == "json" {
		return printJSON(s)
	}
	fmt.Printf("cluster %s (prefix %s), server %s running=%v, dir %s\n", s.Name, s.Prefix, s.ServerURL, s.ServerRunning, s.Dir)
	if s.Error != "" {
		fmt.Printf("server not answering: %s\n", s.Error)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nHOST\tROLE\tNAMESPACE\tLOCAL IP\tAGENT PID\tRUNNING\tALIVE\tCUT OFF")
	for _, h := range s.Hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%v\t%v\t%v\n", h.Name, h.Role, h.Namespace, h.LocalIP, h.AgentPID, h.AgentRunning, h.Alive, h.Down)
	}
	tw.Flush()
	printVMs(s.VMs)
	return nil
}

func printVMs(vms []devcluster.VMStatus) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nVM\tCLOUD\tHOST\tIP\tMAC\tPORT\tSTATUS")
	for _, v := range vms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.Cloud, v.Host, v.IP, v.MAC, v.PortID, v.PortStatus)
	}
	tw.Flush()
}

func devVM(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: vland dev vm create|exec|delete|list ...")
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "create":
		return devVMCreate(ctx, rest)
	case "exec":
		return devVMExec(rest)
	case "delete":
		return devVMDelete(ctx, rest)
	case "list":
		return devVMList(ctx, rest)
	default:
		return fmt.Errorf("unknown vm command %q (create, exec, delete, list)", cmd)
	}
}

func devVMCreate(ctx context.Context, args []string) error {
	f := newDevFlags("vm create", false)
	var o devcluster.VMOptions
	f.fs.StringVar(&o.Network, "network", "", "network name or id (required)")
	f.fs.StringVar(&o.Host, "host", "", "host to place the VM on (default: the compute host with the fewest VMs)")
	f.fs.StringVar(&o.Cloud, "cloud", "", "cloud whose project owns the VM (default <cluster>-demo)")
	f.fs.StringVar(&o.IP, "ip", "", "fixed IP to ask for (default: chosen by the server)")
	f.fs.Func("security-group", "security group name or id (repeatable; default: the project's default group)", func(v string) error {
		o.SecurityGroups = append(o.SecurityGroups, v)
		return nil
	})
	f.fs.BoolVar(&o.NoPortSecurity, "no-port-security", false, "no port security: no security groups, no anti-spoofing")
	userData := f.fs.String("user-data", "", "file whose bytes the VM reads as its user data from 169.254.169.254")
	f.fs.Func("key", "NAME=PUBKEY: an SSH public key of the VM's metadata (repeatable)", func(v string) error {
		name, key, ok := strings.Cut(v, "=")
		if !ok || name == "" || key == "" {
			return errors.New("use NAME=PUBKEY")
		}
		if o.Keys == nil {
			o.Keys = map[string]string{}
		}
		o.Keys[name] = key
		return nil
	})
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "vm create NAME --network NET [--host H] [--cloud CLOUD] [--ip IP] [--security-group SG]... [--no-port-security] [--user-data FILE] [--key NAME=PUBKEY]..."); err != nil {
		return err
	}
	o.Name = pos[0]
	if *userData != "" {
		if o.UserData, err = os.ReadFile(*userData); err != nil {
			return fmt.Errorf("--user-data: %w", err)
		}
	}
	c, err := f.open()
	if err != nil {
		return err
	}
	vm, err := c.CreateVM(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("VM %s on %s: port %s, MAC %s, namespace %s\n", vm.Name, vm.Host, vm.PortID, vm.MAC, vm.Namespace)
	fmt.Println(vm.IP)
	return nil
}

// devVMExec runs a command in a VM with stdio attached and exits with its
// exit code.
func devVMExec(args []string) error {
	return devExec("vm exec", 1, args, func(c *devcluster.Cluster, pos []string, cmd *exec.Cmd) error {
		return c.StartInVM(pos[0], cmd)
	})
}

// devExec runs the command after "--" where start puts it, with this
// terminal, and exits with its status; want is the number of positional
// arguments before "--".
func devExec(name string, want int, args []string, start func(*devcluster.Cluster, []string, *exec.Cmd) error) error {
	usage := name + " -- CMD [ARGS...]"
	if want == 1 {
		usage = name + " NAME -- CMD [ARGS...]"
	}
	i := -1
	for k, a := range args {
		if a == "--" {
			i = k
			break
		}
	}
	if i < 0 || i == len(args)-1 {
		return errors.New("usage: vland dev " + usage)
	}
	f := newDevFlags(name, false)
	pos, err := f.parse(args[:i])
	if err != nil {
		return err
	}
	if err := wantArgs(pos, want, usage); err != nil {
		return err
	}
	c, err := f.open()
	if err != nil {
		return err
	}
	argv := args[i+1:]
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The terminal's signals reach the command; this process only waits.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := start(c, pos, cmd); err != nil {
		return err
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if code < 0 {
			code = 128 + int(ee.Sys().(syscall.WaitStatus).Signal())
		}
		os.Exit(code)
	}
	return err
}

// devOutside is `vland dev outside exec|serve`.
func devOutside(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: vland dev outside exec -- CMD [ARGS...]")
	}
	switch args[0] {
	case "exec":
		return devExec("outside exec", 0, args[1:], func(c *devcluster.Cluster, _ []string, cmd *exec.Cmd) error {
			return c.StartInOutside(cmd)
		})
	case "serve":
		// Run by the cluster inside its outside namespace; --dir marks the
		// process as the cluster's, for Down.
		fs := flag.NewFlagSet("outside serve", flag.ContinueOnError)
		fs.String("dir", "", "cluster directory")
		listen := fs.String("listen", "", "address:port to serve")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return devcluster.ServeOutside(ctx, *listen, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	default:
		return fmt.Errorf("unknown outside command %q (exec)", args[0])
	}
}

func devVMDelete(ctx context.Context, args []string) error {
	f := newDevFlags("vm delete", false)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("usage: vland dev vm delete NAME...")
	}
	c, err := f.open()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range pos {
		errs = append(errs, c.DeleteVM(ctx, name))
	}
	return errors.Join(errs...)
}

func devVMList(ctx context.Context, args []string) error {
	f := newDevFlags("vm list", true)
	c, err := f.openBare(args, "vm list [-f json]")
	if err != nil {
		return err
	}
	s, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if f.format == "json" {
		return printJSON(s.VMs)
	}
	printVMs(s.VMs)
	return nil
}

func devHost(ctx context.Context, args []string) error {
	f := newDevFlags("host", false)
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || (pos[0] != "down" && pos[0] != "up") {
		return errors.New("usage: vland dev host down|up HOST")
	}
	c, err := f.open()
	if err != nil {
		return err
	}
	if pos[0] == "down" {
		err = c.HostDown(ctx, pos[1])
	} else {
		err = c.HostUp(ctx, pos[1])
	}
	if err == nil {
		fmt.Printf("host %s %s\n", pos[1], pos[0])
	}
	return err
}

func devDemo(ctx context.Context, args []string) error {
	f := newDevFlags("demo", true)
	c, err := f.openBare(args, "demo [--cluster N] [-f json]")
	if err != nil {
		return err
	}
	m, err := c.Demo(ctx)
	if err != nil {
		return err
	}
	// With an outside (a network host), routers, floating IPs and a port
	// forward show north-south traffic too.
	var ns *devcluster.NorthSouth
	if c.State().Outside.PID != 0 {
		if ns, err = c.DemoNorthSouth(ctx); err != nil {
			return err
		}
	}
	if f.format == "json" {
		if err := printJSON(map[string]any{"matrix": m, "north_south": ns}); err != nil {
			return err
		}
	} else {
		m.Print(os.Stdout)
		if ns != nil {
			fmt.Println()
			ns.Print(os.Stdout)
		}
	}
	if !m.OK {
		return errors.New("connectivity is not as expected: " + strings.Join(unexpected(m), "; "))
	}
	if ns != nil && !ns.OK {
		return errors.New("north-south traffic is not as expected")
	}
	return nil
}

func unexpected(m *devcluster.Matrix) []string {
	var out []string
	for _, p := range m.Pairs {
		if !p.OK {
			out = append(out, fmt.Sprintf("%s -> %s: expected %s, %s", p.From, p.To, p.Expected, p.Actual))
		}
	}
	return out
}
