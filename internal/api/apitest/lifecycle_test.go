package apitest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
	"github.com/gophercloud/gophercloud/v2/pagination"
)

// TestNetworkSubnetPortLifecycle walks one member through create, get,
// update and delete of a network, a subnet and ports.
func TestNetworkSubnetPortLifecycle(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	name := uniq("life")

	n := createNet(t, c, rawNet{"name": name})
	if n.Name != name || !n.AdminStateUp || n.Status != "ACTIVE" || n.ProjectID != shared.a.projectID ||
		n.TenantID != shared.a.projectID || n.Shared || n.External || n.MTU != 1450 || !n.PortSecurityEnabled || len(n.Subnets) != 0 {
		t.Errorf("created network = %+v", n)
	}
	if got := getNet(t, c, n.ID); got.ID != n.ID || got.Name != name {
		t.Errorf("get network = %+v", got)
	}

	sn, err := subnets.Create(ctx, c, subnets.CreateOpts{
		NetworkID: n.ID, CIDR: "10.20.0.0/24", IPVersion: gophercloud.IPv4, Name: name,
		DNSNameservers: []string{"192.0.2.53"},
	}).Extract()
	must(t, err)
	if sn.GatewayIP != "10.20.0.1" || sn.CIDR != "10.20.0.0/24" || sn.IPVersion != 4 || !sn.EnableDHCP ||
		!slices.Equal(sn.DNSNameservers, []string{"192.0.2.53"}) || sn.NetworkID != n.ID ||
		len(sn.AllocationPools) != 1 || sn.AllocationPools[0] != (subnets.AllocationPool{Start: "10.20.0.2", End: "10.20.0.254"}) {
		t.Errorf("created subnet = %+v", sn)
	}
	if got := getNet(t, c, n.ID); !slices.Equal(got.Subnets, []string{sn.ID}) {
		t.Errorf("network subnets = %v, want [%s]", got.Subnets, sn.ID)
	}
	got, err := subnets.Get(ctx, c, sn.ID).Extract()
	must(t, err)
	if got.ID != sn.ID || got.CIDR != sn.CIDR {
		t.Errorf("get subnet = %+v", got)
	}

	p := createPort(t, c, rawPort{"network_id": n.ID, "name": name})
	if len(p.FixedIPs) != 1 || p.FixedIPs[0].SubnetID != sn.ID || !strings.HasPrefix(p.FixedIPs[0].IPAddress, "10.20.0.") ||
		p.FixedIPs[0].IPAddress == "10.20.0.1" || !strings.HasPrefix(p.MACAddress, "fa:16:3e:") || p.Status != "DOWN" ||
		!p.AdminStateUp || p.NetworkID != n.ID || p.ProjectID != shared.a.projectID || !p.PortSecurityEnabled {
		t.Errorf("created port = %+v", p)
	}
	var gp port
	must(t, ports.Get(ctx, c, p.ID).ExtractInto(&gp))
	if gp.ID != p.ID || gp.MACAddress != p.MACAddress || !slices.Equal(gp.FixedIPs, p.FixedIPs) {
		t.Errorf("get port = %+v, want %+v", gp, p)
	}

	// Network update: name and admin_state_up.
	newName, down := name+"-renamed", false
	var un network
	must(t, networks.Update(ctx, c, n.ID, networks.UpdateOpts{Name: &newName, AdminStateUp: &down}).ExtractInto(&un))
	if un.Name != newName || un.AdminStateUp || un.RevisionNumber <= n.RevisionNumber {
		t.Errorf("updated network = %+v", un)
	}
	if got := getNet(t, c, n.ID); got.Name != newName || got.AdminStateUp {
		t.Errorf("network after update = %+v", got)
	}

	// Subnet update: gateway moved out of the new pools, new nameservers.
	gw := "10.20.0.254"
	dns := []string{"192.0.2.1", "192.0.2.2"}
	us, err := subnets.Update(ctx, c, sn.ID, subnets.UpdateOpts{
		GatewayIP: &gw, DNSNameservers: &dns,
		AllocationPools: []subnets.AllocationPool{{Start: "10.20.0.2", End: "10.20.0.200"}},
	}).Extract()
	must(t, err)
	if us.GatewayIP != gw || !slices.Equal(us.DNSNameservers, dns) ||
		!slices.Equal(us.AllocationPools, []subnets.AllocationPool{{Start: "10.20.0.2", End: "10.20.0.200"}}) {
		t.Errorf("updated subnet = %+v", us)
	}

	// Port update: a new fixed IP releases the old one, which another port
	// can then take explicitly.
	oldIP := p.FixedIPs[0].IPAddress
	var up port
	must(t, ports.Update(ctx, c, p.ID, update(rawPort{"fixed_ips": []any{map[string]any{"subnet_id": sn.ID, "ip_address": "10.20.0.250"}}, "admin_state_up": false})).ExtractInto(&up))
	if len(up.FixedIPs) != 1 || up.FixedIPs[0].IPAddress != "10.20.0.250" || up.AdminStateUp {
		t.Errorf("updated port = %+v", up)
	}
	q := createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{map[string]any{"ip_address": oldIP}}})
	if len(q.FixedIPs) != 1 || q.FixedIPs[0].IPAddress != oldIP {
		t.Errorf("port asking for the released %s got %+v", oldIP, q.FixedIPs)
	}

	// Delete everything, in order.
	for _, id := range []string{p.ID, q.ID} {
		must(t, ports.Delete(ctx, c, id).ExtractErr())
		wantError(t, ports.Get(ctx, c, id).Err, http.StatusNotFound, "PortNotFound")
	}
	must(t, subnets.Delete(ctx, c, sn.ID).ExtractErr())
	wantError(t, subnets.Get(ctx, c, sn.ID).Err, http.StatusNotFound, "SubnetNotFound")
	if got := getNet(t, c, n.ID); len(got.Subnets) != 0 {
		t.Errorf("network still lists subnets %v after their deletion", got.Subnets)
	}
	must(t, networks.Delete(ctx, c, n.ID).ExtractErr())
	wantError(t, networks.Get(ctx, c, n.ID).Err, http.StatusNotFound, "NetworkNotFound")
	wantError(t, networks.Delete(ctx, c, n.ID).ExtractErr(), http.StatusNotFound, "NetworkNotFound")
}

// TestDeleteNetworkDeletesItsSubnets: deleting a port-less network takes
// its subnets with it.
func TestDeleteNetworkDeletesItsSubnets(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("cascade"), "10.21.0.0/24")
	must(t, networks.Delete(ctx, c, n.ID).ExtractErr())
	wantError(t, subnets.Get(ctx, c, sn.ID).Err, http.StatusNotFound, "SubnetNotFound")
}

// TestListFiltersSortFieldsAndPagination checks Neutron's query
// conventions on lists: attribute filters (repeated keys ORed), fields=,
// sort_key/sort_dir, and limit+marker pagination with next links.
func TestListFiltersSortFieldsAndPagination(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	group := uniq("listgroup")
	var ids []string
	for i := range 5 {
		n := createNet(t, c, rawNet{"name": group + "-" + string(rune('a'+i)), "description": group})
		ids = append(ids, n.ID)
	}
	namesOf := func(list []network) []string {
		var out []string
		for _, n := range list {
			out = append(out, strings.TrimPrefix(n.Name, group+"-"))
		}
		return out
	}

	t.Run("FilterByName", func(t *testing.T) {
		got := listNets(t, c, networks.ListOpts{Name: group + "-c"})
		if len(got) != 1 || got[0].ID != ids[2] {
			t.Errorf("name filter returned %v", namesOf(got))
		}
	})
	t.Run("RepeatedKeysAreORed", func(t *testing.T) {
		r := shared.raw(t, shared.a, http.MethodGet, "/v2.0/networks?name="+group+"-a&name="+group+"-d&sort_key=name", "")
		var body struct {
			Networks []network `json:"networks"`
		}
		decode(t, r, &body)
		if got := namesOf(body.Networks); !slices.Equal(got, []string{"a", "d"}) {
			t.Errorf("name=a&name=d returned %v", got)
		}
	})
	t.Run("FilterByBoolean", func(t *testing.T) {
		down := false
		_, err := networks.Update(ctx, c, ids[4], networks.UpdateOpts{AdminStateUp: &down}).Extract()
		must(t, err)
		got := listNets(t, c, networks.ListOpts{Description: group, AdminStateUp: &down})
		if len(got) != 1 || got[0].ID != ids[4] {
			t.Errorf("admin_state_up=false returned %v", namesOf(got))
		}
	})
	t.Run("SortDescending", func(t *testing.T) {
		got := listNets(t, c, networks.ListOpts{Description: group, SortKey: "name", SortDir: "desc"})
		if !slices.Equal(namesOf(got), []string{"e", "d", "c", "b", "a"}) {
			t.Errorf("sort_dir=desc returned %v", namesOf(got))
		}
	})
	t.Run("FieldsSelection", func(t *testing.T) {
		r := shared.raw(t, shared.a, http.MethodGet, "/v2.0/networks?description="+group+"&fields=id&fields=name", "")
		list := r.json(t)["networks"].([]any)
		if len(list) != 5 {
			t.Fatalf("got %d networks, want 5", len(list))
		}
		for _, it := range list {
			m := it.(map[string]any)
			if len(m) != 2 || m["id"] == nil || m["name"] == nil {
				t.Errorf("fields=id&fields=name gave %v", m)
			}
		}
		r = shared.raw(t, shared.a, http.MethodGet, "/v2.0/networks/"+ids[0]+"?fields=id,mtu", "")
		if m := r.json(t)["network"].(map[string]any); len(m) != 2 || m["id"] != ids[0] || m["mtu"] != float64(1450) {
			t.Errorf("show with fields=id,mtu gave %v", m)
		}
	})
	t.Run("PaginationFollowsNextLinks", func(t *testing.T) {
		var pagesSeen []int
		var all []network
		err := networks.List(c, networks.ListOpts{Description: group, SortKey: "name", SortDir: "asc", Limit: 2}).
			EachPage(ctx, func(_ context.Context, page pagination.Page) (bool, error) {
				var list []network
				if err := networks.ExtractNetworksInto(page, &list); err != nil {
					return false, err
				}
				pagesSeen = append(pagesSeen, len(list))
				all = append(all, list...)
				return true, nil
			})
		must(t, err)
		if !slices.Equal(pagesSeen, []int{2, 2, 1}) || !slices.Equal(namesOf(all), []string{"a", "b", "c", "d", "e"}) {
			t.Errorf("pages %v holding %v, want [2 2 1] holding a..e", pagesSeen, namesOf(all))
		}
		// The first page's next link names the last id it shows as marker.
		r := shared.raw(t, shared.a, http.MethodGet, "/v2.0/networks?description="+group+"&sort_key=name&limit=2", "")
		body := r.json(t)
		links, _ := body["networks_links"].([]any)
		var next string
		for _, l := range links {
			if m := l.(map[string]any); m["rel"] == "next" {
				next, _ = m["href"].(string)
			}
		}
		u, err := url.Parse(next)
		if err != nil || next == "" {
			t.Fatalf("first page links = %v, want a next link", links)
		}
		if u.Query().Get("marker") != ids[1] || u.Query().Get("limit") != "2" || !strings.HasPrefix(next, shared.srv.URL+"/v2.0/networks?") {
			t.Errorf("next link %s, want marker %s and limit 2", next, ids[1])
		}
	})
	t.Run("PageReverse", func(t *testing.T) {
		r := shared.raw(t, shared.a, http.MethodGet, "/v2.0/networks?description="+group+"&sort_key=name&limit=2&page_reverse=True&marker="+ids[3], "")
		var body struct {
			Networks []network `json:"networks"`
			Links    []struct {
				Rel  string `json:"rel"`
				Href string `json:"href"`
			} `json:"networks_links"`
		}
		decode(t, r, &body)
		if got := namesOf(body.Networks); !slices.Equal(got, []string{"b", "c"}) {
			t.Errorf("page before d = %v, want [b c]", got)
		}
		links := map[string]url.Values{}
		for _, l := range body.Links {
			u, err := url.Parse(l.Href)
			must(t, err)
			links[l.Rel] = u.Query()
		}
		if p := links["previous"]; p == nil || p.Get("marker") != ids[1] || !strings.EqualFold(p.Get("page_reverse"), "true") {
			t.Errorf("previous link = %v, want marker b and page_reverse", p)
		}
		if n := links["next"]; n == nil || n.Get("marker") != ids[2] || n.Has("page_reverse") {
			t.Errorf("next link = %v, want marker c", n)
		}
	})
	t.Run("MarkerStartsAfterIt", func(t *testing.T) {
		got := listNets(t, c, networks.ListOpts{Description: group, SortKey: "name", Marker: ids[2]})
		if !slices.Equal(namesOf(got), []string{"d", "e"}) {
			t.Errorf("marker=c returned %v", namesOf(got))
		}
	})
}

// TestPortAndSubnetListFilters checks filters on ports (network_id,
// fixed_ips=ip_address=..., repeated fixed_ips) and subnets.
func TestPortAndSubnetListFilters(t *testing.T) {
	t.Parallel()
	c := shared.a.net(t)
	n, sn := netWithSubnet(t, c, uniq("pfilter"), "10.22.0.0/24")
	other, _ := netWithSubnet(t, c, uniq("pfilter-other"), "10.22.0.0/24")
	var ps []port
	for i := range 3 {
		ps = append(ps, createPort(t, c, rawPort{"network_id": n.ID, "fixed_ips": []any{map[string]any{"ip_address": "10.22.0." + string(rune('5'+i))}}}))
	}
	createPort(t, c, rawPort{"network_id": other.ID, "fixed_ips": []any{map[string]any{"ip_address": "10.22.0.5"}}})

	if got := listPorts(t, c, ports.ListOpts{NetworkID: n.ID}); len(got) != 3 {
		t.Errorf("network_id filter returned %d ports, want 3", len(got))
	}
	got := listPorts(t, c, ports.ListOpts{NetworkID: n.ID, FixedIPs: []ports.FixedIPOpts{{IPAddress: "10.22.0.6"}}})
	if len(got) != 1 || got[0].ID != ps[1].ID {
		t.Errorf("fixed_ips=ip_address=10.22.0.6 returned %+v", got)
	}
	got = listPorts(t, c, ports.ListOpts{NetworkID: n.ID, FixedIPs: []ports.FixedIPOpts{{IPAddress: "10.22.0.5"}, {IPAddress: "10.22.0.7"}}})
	if ids := portIDs(got); !sameSet(ids, []string{ps[0].ID, ps[2].ID}) {
		t.Errorf("two fixed_ips filters returned %v, want ports 0 and 2", ids)
	}
	got = listPorts(t, c, ports.ListOpts{FixedIPs: []ports.FixedIPOpts{{SubnetID: sn.ID}}})
	if len(got) != 3 {
		t.Errorf("fixed_ips=subnet_id filter returned %d ports, want 3", len(got))
	}
	got = listPorts(t, c, ports.ListOpts{MACAddress: ps[2].MACAddress})
	if len(got) != 1 || got[0].ID != ps[2].ID {
		t.Errorf("mac_address filter returned %v", portIDs(got))
	}

	pages, err := subnets.List(c, subnets.ListOpts{NetworkID: n.ID, CIDR: "10.22.0.0/24"}).AllPages(ctx)
	must(t, err)
	sns, err := subnets.ExtractSubnets(pages)
	must(t, err)
	if len(sns) != 1 || sns[0].ID != sn.ID {
		t.Errorf("subnet filter returned %+v", sns)
	}
}

func portIDs(list []port) []string {
	var out []string
	for _, p := range list {
		out = append(out, p.ID)
	}
	return out
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestVersionsAndExtensions checks the version documents and the
// extensions API.
func TestVersionsAndExtensions(t *testing.T) {
	t.Parallel()
	r := shared.raw(t, nil, http.MethodGet, "/", "")
	var versions struct {
		Versions []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Links  []struct {
				Href string `json:"href"`
				Rel  string `json:"rel"`
			} `json:"links"`
		} `json:"versions"`
	}
	decode(t, r, &versions)
	if r.status != 200 || len(versions.Versions) != 1 || versions.Versions[0].ID != "v2.0" || versions.Versions[0].Status != "CURRENT" ||
		len(versions.Versions[0].Links) == 0 || versions.Versions[0].Links[0].Href != shared.srv.URL+"/v2.0/" {
		t.Errorf("GET / = %d %s", r.status, r.body)
	}

	resp, err := http.Get(shared.srv.URL + "/v2.0/networks")
	must(t, err)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 401 || !strings.HasPrefix(ct, "application/json") ||
		!strings.HasPrefix(resp.Header.Get("X-Openstack-Request-Id"), "req-") || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 answer headers = %v", resp.Header)
	}

	r = shared.raw(t, shared.a, http.MethodGet, "/v2.0", "")
	var res struct {
		Resources []struct {
			Name       string `json:"name"`
			Collection string `json:"collection"`
		} `json:"resources"`
	}
	decode(t, r, &res)
	var colls []string
	for _, x := range res.Resources {
		colls = append(colls, x.Collection)
	}
	if r.status != 200 || !slices.Contains(colls, "networks") || !slices.Contains(colls, "subnets") || !slices.Contains(colls, "ports") {
		t.Errorf("GET /v2.0 = %d %s", r.status, r.body)
	}
	if r := shared.raw(t, shared.a, http.MethodGet, "/v2.0/", ""); r.status != 200 {
		t.Errorf("GET /v2.0/ = %d", r.status)
	}

	c := shared.b.net(t)
	pages, err := extensions.List(c).AllPages(ctx)
	must(t, err)
	exts, err := extensions.ExtractExtensions(pages)
	must(t, err)
	var aliases []string
	for _, x := range exts {
		aliases = append(aliases, x.Alias)
	}
	for _, want := range []string{"provider", "external-net", "binding", "port-security", "net-mtu", "multi-provider"} {
		if !slices.Contains(aliases, want) {
			t.Errorf("extension %s missing from %v", want, aliases)
		}
	}
	ext, err := extensions.Get(ctx, c, "provider").Extract()
	must(t, err)
	if ext.Alias != "provider" || ext.Name == "" {
		t.Errorf("extension provider = %+v", ext)
	}
	wantError(t, extensions.Get(ctx, c, "no-such-extension").Err, http.StatusNotFound, "HTTPNotFound")
}

// decode unmarshals a raw answer into v.
func decode(t testing.TB, r rawResult, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer %d: %v: %s", r.status, err, r.body)
	}
}
