package metadata

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

var vmSrc = netip.MustParseAddr("10.0.0.10")

// get answers p for in from vmSrc, with zero random seeds.
func get(t *testing.T, in Instance, p string) (Answer, bool) {
	t.Helper()
	return in.answer(p, vmSrc, zeroSeed)
}

func mustGet(t *testing.T, in Instance, p string) Answer {
	t.Helper()
	a, ok := get(t, in, p)
	if !ok {
		t.Fatalf("%s: not found", p)
	}
	return a
}

// TestGoldenAnswers checks every listing and JSON document against
// testdata, for the full instance and the bare one.
func TestGoldenAnswers(t *testing.T) {
	cases := []struct {
		in     Instance
		path   string
		golden string
		ctype  string
	}{
		{fullInstance(), "/", "root.txt", textPlain},
		{fullInstance(), "/openstack", "openstack.txt", textPlain},
		{fullInstance(), "/openstack/latest", "openstack_latest.txt", textPlain},
		{fullInstance(), "/openstack/2012-08-10/", "openstack_2012-08-10.txt", textPlain},
		{fullInstance(), "/openstack/2013-10-17/", "openstack_2013-10-17.txt", textPlain},
		{fullInstance(), "/openstack/latest/meta_data.json", "meta_data_latest.json", appJSON},
		{fullInstance(), "/openstack/2018-08-27/meta_data.json", "meta_data_2018-08-27.json", appJSON},
		{fullInstance(), "/openstack/2012-08-10/meta_data.json", "meta_data_2012-08-10.json", appJSON},
		{fullInstance(), "/openstack/latest/network_data.json", "network_data.json", appJSON},
		{fullInstance(), "/latest", "ec2_latest.txt", textPlain},
		{fullInstance(), "/latest/meta-data/", "ec2_latest_meta-data.txt", textPlain},
		{fullInstance(), "/2009-04-04/meta-data/", "ec2_2009-04-04_meta-data.txt", textPlain},
		{fullInstance(), "/1.0/meta-data/", "ec2_1.0_meta-data.txt", textPlain},
		{fullInstance(), "/2007-12-15/meta-data/", "ec2_2007-12-15_meta-data.txt", textPlain},
		{bareInstance(), "/openstack/latest", "bare_openstack_latest.txt", textPlain},
		{bareInstance(), "/openstack/latest/meta_data.json", "bare_meta_data.json", appJSON},
		{bareInstance(), "/latest/meta-data", "bare_ec2_meta-data.txt", textPlain},
		{bareInstance(), "/latest", "bare_ec2_latest.txt", textPlain},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			a := mustGet(t, c.in, c.path)
			if a.ContentType != c.ctype {
				t.Errorf("%s: Content-Type %q, want %q", c.path, a.ContentType, c.ctype)
			}
			if c.ctype == appJSON && !json.Valid(a.Body) {
				t.Errorf("%s: invalid JSON %s", c.path, a.Body)
			}
			golden(t, c.golden, a.Body)
		})
	}
}

// TestEC2CrawlLikeCloudInit walks the EC2 latest and 2009-04-04 trees the
// way cloud-init's MetadataMaterializer does (every entry a listing names,
// "N=name" as N/openssh-key), so every listed entry must answer; the
// result is a golden file.
func TestEC2CrawlLikeCloudInit(t *testing.T) {
	for _, v := range []string{"latest", "2009-04-04"} {
		var out bytes.Buffer
		var crawl func(p string)
		crawl = func(p string) {
			a := mustGet(t, fullInstance(), p)
			for _, line := range strings.Split(string(a.Body), "\n") {
				switch name, sub, hasEq := strings.Cut(line, "="); {
				case line == "":
					t.Errorf("%s: empty entry in listing %q", p, a.Body)
				case strings.HasSuffix(line, "/"):
					crawl(p + line)
				case hasEq:
					leaf := p + name + "/openssh-key"
					fmt.Fprintf(&out, "%s (%s): %q\n", leaf, sub, mustGet(t, fullInstance(), leaf).Body)
				default:
					fmt.Fprintf(&out, "%s: %q\n", p+line, mustGet(t, fullInstance(), p+line).Body)
				}
			}
		}
		crawl("/" + v + "/meta-data/")
		golden(t, "ec2_crawl_"+v+".txt", out.Bytes())
	}
}

func TestLeaves(t *testing.T) {
	in := fullInstance()
	for p, want := range map[string]string{
		"/latest/meta-data/instance-id":                                           "i-d8f4c0f4",
		"/latest/meta-data/local-ipv4":                                            "10.0.0.10",
		"/latest/meta-data/public-ipv4":                                           "203.0.113.10",
		"/latest/meta-data/hostname":                                              "web-1",
		"/latest/meta-data/local-hostname":                                        "web-1",
		"/latest/meta-data/placement/availability-zone":                           "nova",
		"/latest/meta-data/placement/":                                            "availability-zone",
		"/latest/meta-data/public-keys":                                           "0=alice\n1=bob",
		"/latest/meta-data/public-keys/0":                                         "openssh-key",
		"/latest/meta-data/public-keys/0/openssh-key":                             in.PublicKeys["alice"],
		"/latest/meta-data/public-keys/1/openssh-key":                             in.PublicKeys["bob"],
		"/latest/meta-data/security-groups":                                       "default\nweb",
		"/latest/meta-data/mac":                                                   "fa:16:3e:00:00:01",
		"/latest/meta-data/ami-launch-index":                                      "0",
		"/latest/meta-data/instance-action":                                       "none",
		"/latest/meta-data/block-device-mapping/root":                             "/dev/vda",
		"/latest/meta-data/network/interfaces/macs":                               "fa:16:3e:00:00:01/\nfa:16:3e:00:00:02/",
		"/ec2/latest/meta-data/instance-id":                                       "i-d8f4c0f4",
		"/openstack/latest/vendor_data.json":                                      "{}",
		"/openstack/latest/vendor_data2.json":                                     `{"static": {}}`,
		"/openstack/2013-04-04/password":                                          "",
		"/openstack/2012-08-10/network_data.json":                                 string(mustGet(t, in, "/openstack/latest/network_data.json").Body),
		"/2009-04-04/meta-data/placement/availability-zone":                       "nova",
		"/latest/meta-data/network/interfaces/macs/fa:16:3e:00:00:02/local-ipv4s": "10.1.0.5\n10.1.0.6",
	} {
		if got := string(mustGet(t, in, p).Body); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

func TestUserDataExactBytes(t *testing.T) {
	in := fullInstance()
	for _, p := range []string{"/openstack/latest/user_data", "/openstack/2012-08-10/user_data", "/latest/user-data", "/2009-04-04/user-data", "/1.0/user-data"} {
		if a := mustGet(t, in, p); !bytes.Equal(a.Body, in.UserData) {
			t.Errorf("%s = %q, want %q", p, a.Body, in.UserData)
		}
	}
	empty := bareInstance()
	empty.UserData = []byte{}
	if a := mustGet(t, empty, "/openstack/latest/user_data"); len(a.Body) != 0 {
		t.Errorf("empty user data: %q", a.Body)
	}
}

func TestNotFound(t *testing.T) {
	for _, c := range []struct {
		in Instance
		p  string
	}{
		{bareInstance(), "/openstack/latest/user_data"},
		{bareInstance(), "/latest/user-data"},
		{bareInstance(), "/latest/meta-data/public-keys/"},
		{bareInstance(), "/latest/meta-data/mac"},
		{fullInstance(), "/openstack/2011-01-01/meta_data.json"},
		{fullInstance(), "/openstack/latest/nope.json"},
		{fullInstance(), "/openstack/latest/meta_data.json/x"},
		{fullInstance(), "/openstack/2012-08-10/password"},
		{fullInstance(), "/openstack/2013-04-04/vendor_data.json"},
		{fullInstance(), "/openstack/2016-06-30/vendor_data2.json"},
		{fullInstance(), "/openstack/content/0000"},
		{fullInstance(), "/2010-01-01/meta-data/"},
		{fullInstance(), "/latest/meta-data/instance-id/x"},
		{fullInstance(), "/latest/meta-data/public-keys/2/openssh-key"},
		{fullInstance(), "/1.0/meta-data/placement/availability-zone"},
		{fullInstance(), "/2009-04-04/meta-data/mac"},
		{fullInstance(), "/etc/passwd"},
	} {
		if a, ok := get(t, c.in, c.p); ok {
			t.Errorf("%s (%s): found %q, want 404", c.p, c.in.Name, a.Body)
		}
	}
}

func TestPathNormalisation(t *testing.T) {
	in := fullInstance()
	want := string(mustGet(t, in, "/openstack/latest/meta_data.json").Body)
	for _, p := range []string{
		"/openstack/latest/meta_data.json/",
		"//openstack//latest///meta_data.json",
		"/openstack/./latest/meta_data.json",
		"/openstack/2012-08-10/../latest/meta_data.json",
		"/../../../openstack/latest/meta_data.json",
		"openstack/latest/meta_data.json",
	} {
		if a, ok := get(t, in, p); !ok || string(a.Body) != want {
			t.Errorf("%s: %v %q", p, ok, a.Body)
		}
	}
	if got := CleanPath("/a/../../../../etc/passwd"); got != "/etc/passwd" {
		t.Errorf("CleanPath escaped: %s", got)
	}
}

func TestMetaDataFields(t *testing.T) {
	in := fullInstance()
	var md map[string]any
	if err := json.Unmarshal(mustGet(t, in, "/openstack/latest/meta_data.json").Body, &md); err != nil {
		t.Fatal(err)
	}
	if md["uuid"] != in.ID || md["name"] != "web-1" || md["hostname"] != "web-1" || md["project_id"] != in.ProjectID || md["availability_zone"] != "nova" {
		t.Errorf("meta_data.json = %v", md)
	}
	// A fresh seed per request, as Nova draws it.
	a1, _ := in.Answer("/openstack/latest/meta_data.json", vmSrc)
	a2, _ := in.Answer("/openstack/latest/meta_data.json", vmSrc)
	var s1, s2 struct {
		RandomSeed string `json:"random_seed"`
	}
	if err := json.Unmarshal(a1.Body, &s1); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(a2.Body, &s2); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(s1.RandomSeed)
	if err != nil || len(raw) != randomSeedBytes || s1.RandomSeed == s2.RandomSeed {
		t.Errorf("random_seed: %d bytes, err %v, repeated %v", len(raw), err, s1.RandomSeed == s2.RandomSeed)
	}
	// The bare instance's availability zone is null, as Nova's None.
	var bare map[string]any
	if err := json.Unmarshal(mustGet(t, bareInstance(), "/openstack/latest/meta_data.json").Body, &bare); err != nil {
		t.Fatal(err)
	}
	if v, ok := bare["availability_zone"]; !ok || v != nil {
		t.Errorf("bare availability_zone = %v (present %v), want null", v, ok)
	}
	if _, ok := bare["public_keys"]; ok {
		t.Error("bare instance lists public_keys")
	}
}

func TestLocalAndPublicIPv4(t *testing.T) {
	in := fullInstance()
	// Unset: the request's IPv4 source, else the first fixed IPv4.
	if got := addrString(in.localIPv4(netip.MustParseAddr("10.1.0.5"))); got != "10.1.0.5" {
		t.Errorf("local-ipv4 from 10.1.0.5 = %s", got)
	}
	if got := addrString(in.localIPv4(netip.MustParseAddr("fe80::1"))); got != "10.0.0.10" {
		t.Errorf("local-ipv4 from fe80::1 = %s", got)
	}
	in.LocalIPv4 = netip.MustParseAddr("10.1.0.6")
	in.PublicIPv4 = netip.MustParseAddr("198.51.100.7")
	if a := mustGet(t, in, "/latest/meta-data/local-ipv4"); string(a.Body) != "10.1.0.6" {
		t.Errorf("local-ipv4 = %s", a.Body)
	}
	if a := mustGet(t, in, "/latest/meta-data/public-ipv4"); string(a.Body) != "198.51.100.7" {
		t.Errorf("public-ipv4 = %s", a.Body)
	}
	if a := mustGet(t, bareInstance(), "/latest/meta-data/public-ipv4"); len(a.Body) != 0 {
		t.Errorf("bare public-ipv4 = %q, want empty", a.Body)
	}
}

func TestEC2IDs(t *testing.T) {
	if got := EC2InstanceID("D8F4C0F4-2d3b-4a4c-9a7e-3f9a8c2b1e01"); got != "i-d8f4c0f4" {
		t.Errorf("EC2InstanceID = %s", got)
	}
	if got := EC2InstanceID("ab"); got != "i-ab000000" {
		t.Errorf("short id: %s", got)
	}
	if a, b := ec2ReservationID("x"), ec2ReservationID("x"); a != b || len(a) != 10 || a == ec2ReservationID("y") {
		t.Errorf("reservation ids %s %s", a, b)
	}
	if got := ec2ImageID(""); got != "ami-00000000" {
		t.Errorf("no image: %s", got)
	}
}

func TestNetworkDataEdgeCases(t *testing.T) {
	// No ports at all: {} as Nova renders missing network info.
	if a := mustGet(t, bareInstance(), "/openstack/latest/network_data.json"); string(a.Body) != "{}" {
		t.Errorf("no ports: %s", a.Body)
	}
	// A port without fixed IPs gives no link; an unknown VIF type is "phy";
	// a v4 subnet without DHCP or gateway has no default route.
	in := bareInstance()
	in.Ports = []Port{
		{ID: "aaaaaaaa-0000-0000-0000-000000000000", MAC: mustMAC("fa:16:3e:00:00:09"), NetworkID: "n0"},
		{ID: "bbbbbbbb-1111-1111-1111-111111111111", MAC: mustMAC("fa:16:3e:00:00:0a"), NetworkID: "n1", MTU: 9000, VIFType: "macvtap",
			FixedIPs: []FixedIP{{Address: netip.MustParseAddr("172.16.5.9"), Subnet: Subnet{ID: "s", CIDR: netip.MustParsePrefix("172.16.4.0/22")}}}},
	}
	var nd networkData
	if err := json.Unmarshal(mustGet(t, in, "/openstack/latest/network_data.json").Body, &nd); err != nil {
		t.Fatal(err)
	}
	if len(nd.Links) != 1 || nd.Links[0].ID != "tapbbbbbbbb-11" || nd.Links[0].Type != "phy" || nd.Links[0].MTU == nil || *nd.Links[0].MTU != 9000 {
		t.Errorf("links = %+v", nd.Links)
	}
	if len(nd.Networks) != 1 || nd.Networks[0].ID != "network0" || nd.Networks[0].Type != "ipv4" || nd.Networks[0].Netmask != "255.255.252.0" ||
		nd.Networks[0].Routes == nil || len(*nd.Networks[0].Routes) != 0 || nd.Networks[0].Link != "tapbbbbbbbb-11" {
		t.Errorf("networks = %+v", nd.Networks)
	}
}

func TestNetmask(t *testing.T) {
	for _, c := range []struct {
		bits int
		v6   bool
		want string
	}{{24, false, "255.255.255.0"}, {0, false, "0.0.0.0"}, {20, false, "255.255.240.0"}, {32, false, "255.255.255.255"},
		{64, true, "ffff:ffff:ffff:ffff::"}, {48, true, "ffff:ffff:ffff::"}, {0, true, "::"}, {127, true, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"}} {
		if got := netmask(c.bits, c.v6); got != c.want {
			t.Errorf("netmask(%d, %v) = %s, want %s", c.bits, c.v6, got, c.want)
		}
	}
}
