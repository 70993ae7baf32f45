package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/vland/vland/internal/agentapi"
)

// ErrGone means the server cannot resume a watch from the given revision.
var ErrGone = errors.New("watch revision gone; list again")

// Client speaks the agent API for one host.
type Client struct {
	base  string // server URL
	host  string
	token string
	http  *http.Client
}

// NewClient returns a client of the agent API at server for host.
func NewClient(server, host, token string) *Client {
	return &Client{base: server, host: host, token: token, http: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 30 * time.Second,
	}}}
}

func (c *Client) url(suffix string) string {
	return c.base + "/agent/" + agentapi.Version + "/hosts/" + url.PathEscape(c.host) + "/" + suffix
}

func (c *Client) do(ctx context.Context, method, u string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	return c.http.Do(req)
}

func statusErr(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
}

// View lists the host's whole desired state.
func (c *Client) View(ctx context.Context) (agentapi.View, error) {
	var v agentapi.View
	resp, err := c.do(ctx, http.MethodGet, c.url("view"), nil)
	if err != nil {
		return v, fmt.Errorf("list view: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v, fmt.Errorf("list view: %w", statusErr(resp))
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("decode view: %w", err)
	}
	return v, nil
}

// Watch streams the events after since to f until ctx ends, the stream
// breaks, or f fails; ErrGone asks the caller to list again.
func (c *Client) Watch(ctx context.Context, since int64, f func(agentapi.Event) error) error {
	u := c.url("view") + "?watch=1&since=" + strconv.FormatInt(since, 10)
	// The stream has no deadline of its own: a silent server is caught by
	// the missing bookmarks instead.
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusGone {
		return ErrGone
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watch: %w", statusErr(resp))
	}
	lines := make(chan []byte)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			select {
			case lines <- bytes.Clone(sc.Bytes()):
			case <-ctx.Done():
				return
			}
		}
		errc <- sc.Err()
	}()
	// Bookmarks come at least every 10 s; three missed ones mean a dead stream.
	idle := time.NewTimer(35 * time.Second)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			if err == nil {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("watch stream ended: %w", err)
		case <-idle.C:
			return errors.New("watch stream silent for 35s")
		case line := <-lines:
			idle.Reset(35 * time.Second)
			var ev agentapi.Event
			if err := json.Unmarshal(line, &ev); err != nil {
				return fmt.Errorf("decode event: %w", err)
			}
			if ev.Type == agentapi.EventResync {
				return ErrGone
			}
			if err := f(ev); err != nil {
				return err
			}
		}
	}
}

// Report sends a status report.
func (c *Client) Report(ctx context.Context, st agentapi.Status) error {
	resp, err := c.do(ctx, http.MethodPut, c.url("status"), st)
	if err != nil {
		return fmt.Errorf("report status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("report status: %w", statusErr(resp))
	}
	return nil
}
