// Package agentapi defines the objects the server and the host agents
// exchange under /agent/v1 (docs/design/agent-api.md): a host's view of its
// desired state, the events that change it, and the agent's status reports.
package agentapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/netip"
)

// Version is the path element of this protocol version.
const Version = "v1"

// Kinds of objects in a host view.
const (
	KindNetwork = "network"
	KindPort    = "port"
)

// Event types of a watch stream.
const (
	EventPut      = "put"
	EventDelete   = "delete"
	EventBookmark = "bookmark"
	// EventResync ends a stream whose log moved past the watcher: list again.
	EventResync = "resync"
)

// Network is a network with ports on the host.
type Network struct {
	ID              string `json:"id"`
	ProjectID       string `json:"project_id"`
	Type            string `json:"type"`
	PhysicalNetwork string `json:"physical_network"`
	SegmentationID  uint32 `json:"segmentation_id"`
	MTU             int    `json:"mtu"`
	AdminStateUp    bool   `json:"admin_state_up"`
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string     `json:"subnet_id"`
	IPAddress netip.Addr `json:"ip_address"`
}

// Port is a port bound to the host (Local) or, for l2population, a port of
// one of its networks bound elsewhere, with that host's VXLAN endpoint.
type Port struct {
	ID           string     `json:"id"`
	NetworkID    string     `json:"network_id"`
	MACAddress   string     `json:"mac_address"`
	FixedIPs     []FixedIP  `json:"fixed_ips"`
	DeviceOwner  string     `json:"device_owner"`
	DeviceID     string     `json:"device_id"`
	AdminStateUp bool       `json:"admin_state_up"`
	Host         string     `json:"host"`
	VTEP         netip.Addr `json:"vtep"`
	Local        bool       `json:"local"`
}

// View is a host's whole desired state at a store revision.
type View struct {
	Host     string    `json:"host"`
	Revision int64     `json:"revision"`
	Networks []Network `json:"networks"`
	Ports    []Port    `json:"ports"`
}

// Event is one line of a watch stream. Object holds a Network or Port for
// puts (decode by Kind); ID names the object of a delete.
type Event struct {
	Type     string          `json:"type"`
	Kind     string          `json:"kind,omitempty"`
	Revision int64           `json:"revision"`
	ID       string          `json:"id,omitempty"`
	Object   json.RawMessage `json:"object,omitempty"`
}

// AgentInfo is what an agent reports of itself with every heartbeat.
type AgentInfo struct {
	Binary           string         `json:"binary"`
	LocalIP          netip.Addr     `json:"local_ip"`
	Roles            []string       `json:"roles"`
	StartedAt        string         `json:"started_at"`
	AvailabilityZone string         `json:"availability_zone"`
	Configurations   map[string]any `json:"configurations"`
	// Capabilities the server's binding relies on.
	InterfaceMappings map[string]string `json:"interface_mappings"`
	VLANSupported     bool              `json:"vlan_supported"`
}

// Status is an agent's report: its heartbeat and its ports' wiring.
type Status struct {
	Agent AgentInfo         `json:"agent"`
	Ports map[string]string `json:"ports,omitempty"`
}

// Token is the bearer token of host under the deployment secret.
func Token(secret []byte, host string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("vland-agent/" + Version + "/" + host))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ValidToken reports whether token is host's, in constant time.
func ValidToken(secret []byte, host, token string) bool {
	return hmac.Equal([]byte(Token(secret, host)), []byte(token))
}
