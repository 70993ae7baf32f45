package devcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Credentials are a user's password credentials scoped to a project, as a
// clouds.yaml entry holds them.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Project  string `json:"project_name"`
}

// Client is a minimal OpenStack client for the cluster's server: it logs in
// through the builtin Keystone v3 and sends JSON requests with the token,
// logging in again when the token is refused.
type Client struct {
	base  string
	creds Credentials
	http  *http.Client

	mu        sync.Mutex
	token     string
	projectID string
}

// NewClient returns a client of server base (http://127.0.0.1:port) acting
// with creds.
func NewClient(base string, creds Credentials) *Client {
	return &Client{base: strings.TrimRight(base, "/"), creds: creds, http: &http.Client{Timeout: 30 * time.Second}}
}

// APIError is an error answer of the server.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// ProjectID is the id of the project the client acts in (after a login).
func (c *Client) ProjectID(ctx context.Context) (string, error) {
	if _, err := c.login(ctx, false); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.projectID, nil
}

// login returns a token, asking for a new one when force is set or none is
// held.
func (c *Client) login(ctx context.Context, force bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && !force {
		return c.token, nil
	}
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": c.creds.Username, "domain": map[string]string{"id": "default"}, "password": c.creds.Password},
		}},
		"scope": map[string]any{"project": map[string]any{"name": c.creds.Project, "domain": map[string]string{"id": "default"}}},
	}}
	var out struct {
		Token struct {
			Project struct {
				ID string `json:"id"`
			} `json:"project"`
		} `json:"token"`
	}
	hdr, err := c.send(ctx, http.MethodPost, "/identity/v3/auth/tokens", "", body, &out)
	if err != nil {
		return "", fmt.Errorf("log in as %s in project %s: %w", c.creds.Username, c.creds.Project, err)
	}
	c.token = hdr.Get("X-Subject-Token")
	c.projectID = out.Token.Project.ID
	if c.token == "" {
		return "", errors.New("log in: no X-Subject-Token in the answer")
	}
	return c.token, nil
}

// Do sends a JSON request (in may be nil) to path under the server and
// decodes the answer into out (may be nil).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	tok, err := c.login(ctx, false)
	if err != nil {
		return err
	}
	_, err = c.send(ctx, method, path, tok, in, out)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
		if tok, err = c.login(ctx, true); err != nil {
			return err
		}
		_, err = c.send(ctx, method, path, tok, in, out)
	}
	return err
}

func (c *Client) send(ctx context.Context, method, path, token string, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return nil, &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: errorMessage(data)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

// errorMessage extracts the message of a Neutron or Keystone error body.
func errorMessage(data []byte) string {
	var e struct {
		Neutron *struct {
			Message string `json:"message"`
		} `json:"NeutronError"`
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil {
		if e.Neutron != nil {
			return e.Neutron.Message
		}
		if e.Error != nil {
			return e.Error.Message
		}
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// asAPIError is errors.As for *APIError.
func asAPIError(err error, target **APIError) bool { return errors.As(err, target) }
