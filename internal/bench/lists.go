package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// ListOptions size the list benchmark (issue 3): a server holding Ports
// ports, listed with a filter, page by page, and measured for memory.
type ListOptions struct {
	Ports    int    // ports to hold (default 10,000)
	BigPorts int    // ports for the memory figure (default 100,000; 0 skips it)
	Repeats  int    // lists per measured query (default 50)
	PageSize int    // limit for the paginated walk (default 100)
	Vland    string // server binary (default: this one)
	Timeout  time.Duration
	Progress io.Writer
}

// ListQuery is one measured query.
type ListQuery struct {
	Name  string  `json:"name"`
	Count int     `json:"count"`
	Items int     `json:"items_per_answer"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// ListResult is what the list benchmark measured.
type ListResult struct {
	Ports       int         `json:"ports"`
	Queries     []ListQuery `json:"queries"`
	RSSBytes    int64       `json:"rss_bytes_at_ports"`
	BigPorts    int         `json:"big_ports"`
	BigRSSBytes int64       `json:"rss_bytes_at_big_ports"`
	BigHWMBytes int64       `json:"peak_rss_bytes_at_big_ports"`
	BigListMs   float64     `json:"filtered_list_ms_at_big_ports"`
}

// RunLists starts a server, fills it with ports through bulk creates (as
// admin, in one network with a large subnet), and times list queries one
// at a time: latency of the server's list path, not of concurrency.
func RunLists(ctx context.Context, o ListOptions) (*ListResult, error) {
	if o.Ports <= 0 {
		o.Ports = 10000
	}
	if o.Repeats <= 0 {
		o.Repeats = 50
	}
	if o.PageSize <= 0 {
		o.PageSize = 100
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	t, err := startChild(ctx, o.Vland, 4)
	if err != nil {
		return nil, err
	}
	defer t.close()
	c := newHTTPClient(t.url, 4)
	defer c.close()
	token, _, err := c.passwordToken(ctx, "admin", t.adminPassword, "admin", true)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	netID, err := listFixture(ctx, c, token)
	if err != nil {
		return nil, err
	}
	res := &ListResult{Ports: o.Ports, BigPorts: o.BigPorts}
	fmt.Fprintf(o.Progress, "bench: creating %d ports\n", o.Ports)
	if err := fillPorts(ctx, c, token, netID, 0, o.Ports); err != nil {
		return nil, err
	}
	res.RSSBytes = procStatus(t.pid).rss
	ip := "10.0.3.7" // an address the fill always hands out in the /12 below
	queries := []struct{ name, path string }{
		{"all ports (no filter)", "/v2.0/ports"},
		{"filter network_id= (every port matches)", "/v2.0/ports?network_id=" + netID},
		{"filter device_owner= (every port matches)", "/v2.0/ports?device_owner=compute%3Anova"},
		{"filter fixed_ips=ip_address= (one match)", "/v2.0/ports?fixed_ips=" + url.QueryEscape("ip_address="+ip)},
		{"filter name= (one match)", "/v2.0/ports?name=bench-7"},
		{fmt.Sprintf("first page, limit=%d", o.PageSize), fmt.Sprintf("/v2.0/ports?limit=%d", o.PageSize)},
		{fmt.Sprintf("filtered page, network_id= & limit=%d & sort_key=name", o.PageSize), fmt.Sprintf("/v2.0/ports?network_id=%s&limit=%d&sort_key=name", netID, o.PageSize)},
	}
	for _, q := range queries {
		fmt.Fprintf(o.Progress, "bench: %s x %d\n", q.name, o.Repeats)
		lq, err := timeList(ctx, c, token, q.name, q.path, o.Repeats)
		if err != nil {
			return nil, err
		}
		res.Queries = append(res.Queries, lq)
	}
	walk, err := walkPages(ctx, c, token, o.PageSize, o.Ports)
	if err != nil {
		return nil, err
	}
	res.Queries = append(res.Queries, walk)
	if o.BigPorts > o.Ports {
		fmt.Fprintf(o.Progress, "bench: growing to %d ports\n", o.BigPorts)
		if err := fillPorts(ctx, c, token, netID, o.Ports, o.BigPorts); err != nil {
			return nil, err
		}
		m := procStatus(t.pid)
		res.BigRSSBytes, res.BigHWMBytes = m.rss, m.hwm
		lq, err := timeList(ctx, c, token, "big", "/v2.0/ports?fixed_ips="+url.QueryEscape("ip_address="+ip), 10)
		if err != nil {
			return nil, err
		}
		res.BigListMs = lq.P50Ms
	}
	return res, nil
}

// listFixture makes the network and its /12 subnet the ports live in, with
// an unlimited port quota for the admin project.
func listFixture(ctx context.Context, c *httpClient, token string) (string, error) {
	var projects struct {
		Projects []struct{ ID string } `json:"projects"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/identity/v3/projects?name=admin", token, nil, 200, &projects); err != nil {
		return "", err
	}
	if len(projects.Projects) != 1 {
		return "", fmt.Errorf("admin project: %d found", len(projects.Projects))
	}
	if _, err := c.do(ctx, http.MethodPut, "/v2.0/quotas/"+projects.Projects[0].ID, token,
		map[string]any{"quota": map[string]any{"port": -1}}, 200, nil); err != nil {
		return "", err
	}
	var net struct{ Network struct{ ID string } }
	if _, err := c.do(ctx, http.MethodPost, "/v2.0/networks", token, map[string]any{"network": map[string]any{"name": "bench-lists"}}, 201, &net); err != nil {
		return "", err
	}
	if _, err := c.do(ctx, http.MethodPost, "/v2.0/subnets", token, map[string]any{"subnet": map[string]any{
		"network_id": net.Network.ID, "cidr": "10.0.0.0/12", "ip_version": 4}}, 201, nil); err != nil {
		return "", err
	}
	return net.Network.ID, nil
}

// fillPorts creates ports [from, to) in bulk requests of 500, with
// addresses given in order so that the queries know one.
func fillPorts(ctx context.Context, c *httpClient, token, netID string, from, to int) error {
	for start := from; start < to; start += 500 {
		end := min(start+500, to)
		items := make([]any, 0, end-start)
		for i := start; i < end; i++ {
			n := i + 2 // 10.0.0.2 onwards
			ip := fmt.Sprintf("10.%d.%d.%d", n>>16&0xff, n>>8&0xff, n&0xff)
			items = append(items, map[string]any{"network_id": netID, "name": fmt.Sprintf("bench-%d", i),
				"device_owner": "compute:nova", "fixed_ips": []any{map[string]any{"ip_address": ip}}})
		}
		if _, err := c.do(ctx, http.MethodPost, "/v2.0/ports", token, map[string]any{"ports": items}, 201, nil); err != nil {
			return fmt.Errorf("fill ports %d-%d: %w", start, end, err)
		}
	}
	return nil
}

// timeList runs one query n times and summarises its latency.
func timeList(ctx context.Context, c *httpClient, token, name, path string, n int) (ListQuery, error) {
	var lat []time.Duration
	var out struct {
		Ports []struct{ ID string } `json:"ports"`
	}
	q := ListQuery{Name: name, Count: n}
	for i := 0; i < n; i++ {
		out.Ports = nil
		r, err := c.do(ctx, http.MethodGet, path, token, nil, 200, &out)
		if err != nil {
			return q, err
		}
		lat = append(lat, r.latency)
		q.Items = len(out.Ports)
	}
	return summarizeList(q, lat), nil
}

// walkPages pages through every port and times each page.
func walkPages(ctx context.Context, c *httpClient, token string, size, total int) (ListQuery, error) {
	q := ListQuery{Name: fmt.Sprintf("walk every page, limit=%d", size), Items: size}
	var lat []time.Duration
	path := fmt.Sprintf("/v2.0/ports?limit=%d", size)
	seen := 0
	for path != "" {
		var out struct {
			Ports []struct{ ID string }        `json:"ports"`
			Links []struct{ Rel, Href string } `json:"ports_links"`
		}
		r, err := c.do(ctx, http.MethodGet, path, token, nil, 200, &out)
		if err != nil {
			return q, err
		}
		lat = append(lat, r.latency)
		seen += len(out.Ports)
		path = ""
		for _, l := range out.Links {
			if l.Rel == "next" {
				u, err := url.Parse(l.Href)
				if err != nil {
					return q, err
				}
				path = u.RequestURI()
			}
		}
	}
	if seen != total {
		return q, fmt.Errorf("paging saw %d ports, want %d", seen, total)
	}
	q.Count = len(lat)
	return summarizeList(q, lat), nil
}

func summarizeList(q ListQuery, lat []time.Duration) ListQuery {
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	q.P50Ms, q.P99Ms, q.MaxMs = ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(lat[len(lat)-1])
	return q
}
