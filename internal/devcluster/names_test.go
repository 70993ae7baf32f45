package devcluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrefixIsShortAndStable(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{"dev", "dev2", "demo", "e12345-ping", "a"} {
		p := Prefix(name)
		if p != Prefix(name) || len(p) != 5 || p[0] != 'v' {
			t.Errorf("Prefix(%q) = %q: want v and 4 hex digits, stable", name, p)
		}
		if other, ok := seen[p]; ok {
			t.Errorf("%q and %q share prefix %s", name, other, p)
		}
		seen[p] = name
		// The longest names the cluster makes outside hosts must fit IFNAMSIZ.
		for _, l := range []string{fabricBridge(p), hostFabricLink(p, hostName(RoleCompute, maxComputeHosts)), hostFabricLink(p, hostName(RoleNetwork, maxNetworkHosts))} {
			if len(l) > 15 {
				t.Errorf("link name %q is longer than 15 characters", l)
			}
		}
	}
}

func TestUnderlayAvoidsReservedRanges(t *testing.T) {
	for _, name := range []string{"dev", "x", "e1-a"} {
		u := underlay(name)
		if !strings.HasPrefix(u.String(), "10.250.") || u.Bits() != 24 {
			t.Errorf("underlay(%q) = %s, want 10.250.X.0/24", name, u)
		}
		c1, n1 := hostIP(u, RoleCompute, 1), hostIP(u, RoleNetwork, 1)
		if !u.Contains(c1) || !u.Contains(n1) || c1 == n1 {
			t.Errorf("host addresses %s, %s not distinct in %s", c1, n1, u)
		}
	}
}

func TestValidNames(t *testing.T) {
	for _, ok := range []string{"dev", "a", "e123-x", "abcdefghijklmnopqrstuvwxyz012345"} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "Dev", "a/b", "a b", "abcdefghijklmnopqrstuvwxyz0123456"} {
		if ValidName(bad) == nil {
			t.Errorf("ValidName(%q) accepted", bad)
		}
	}
	if validVMName("vm-1.a_b") != nil || validVMName("../x") == nil {
		t.Error("VM name validation")
	}
}

func TestWriteClouds(t *testing.T) {
	st := &State{Name: "dev", Dir: t.TempDir(), ServerURL: "http://127.0.0.1:4242", AdminPassword: "secret",
		Projects: []Project{{Cloud: "dev-demo", Credentials: Credentials{Username: "dev-demo", Password: "pw", Project: "dev-demo"}}}}
	if err := writeClouds(st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(st.Dir, cloudsFile))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"  dev-admin:\n", "  dev-demo:\n", `auth_url: "http://127.0.0.1:4242/identity/v3"`,
		"identity_api_version: 3", "region_name: RegionOne", "user_domain_name: Default", "project_domain_name: Default",
		`project_name: "admin"`, `password: "pw"`} {
		if !strings.Contains(s, want) {
			t.Errorf("clouds.yaml lacks %q:\n%s", want, s)
		}
	}
	if fi, _ := os.Stat(filepath.Join(st.Dir, cloudsFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("clouds.yaml mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestStartedSince(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600e6, time.UTC)
	if !startedSince("2026-01-02 03:04:05", at) || startedSince("2026-01-02 03:04:04", at) || startedSince("junk", at) {
		t.Error("startedSince")
	}
}

func TestProcRunningSeesThroughRecycledPIDs(t *testing.T) {
	self := os.Getpid()
	st, err := procStartTime(self)
	if err != nil {
		t.Fatal(err)
	}
	if !(Proc{PID: self, StartTime: st}).Running() {
		t.Error("this process is not seen running")
	}
	if (Proc{PID: self, StartTime: st + 1}).Running() {
		t.Error("a different start time is taken for the same process")
	}
	if (Proc{}).Running() {
		t.Error("pid 0 is running")
	}
}
