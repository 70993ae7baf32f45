package model

import (
	"net/netip"
	"time"
)

// Agent types as Neutron names them.
const (
	AgentTypeL2       = "Linux bridge agent"
	AgentTypeDHCP     = "DHCP agent"
	AgentTypeL3       = "L3 agent"
	AgentTypeMetadata = "Metadata agent"
)

// AgentTimeFormat is how Neutron renders agent timestamps.
const AgentTimeFormat = "2006-01-02 15:04:05"

// Agent is one agent record of a host, as GET /v2.0/agents shows it. One
// vland agent process registers a record per role it plays.
type Agent struct {
	ID                string            `json:"id"`
	AgentType         string            `json:"agent_type"`
	Binary            string            `json:"binary"`
	Host              string            `json:"host"`
	Topic             string            `json:"topic"`
	Description       string            `json:"description"`
	AvailabilityZone  string            `json:"availability_zone"`
	AdminStateUp      bool              `json:"admin_state_up"`
	Configurations    map[string]any    `json:"configurations"`
	HeartbeatAt       time.Time         `json:"heartbeat_at"`
	StartedAt         time.Time         `json:"started_at"`
	CreatedAt         time.Time         `json:"created_at"`
	LocalIP           netip.Addr        `json:"local_ip"`
	Roles             []string          `json:"roles"`
	InterfaceMappings map[string]string `json:"interface_mappings"`
	VLANSupported     bool              `json:"vlan_supported"`
}

// AgentSpec is the attribute map of agents: only a few attributes change.
var AgentSpec = &Spec{
	Singular: "agent",
	Plural:   "agents",
	Attrs: []*Attr{
		{Name: "id"}, {Name: "agent_type"}, {Name: "binary"}, {Name: "host"}, {Name: "topic"},
		{Name: "availability_zone"}, {Name: "configurations"}, {Name: "heartbeat_timestamp"},
		{Name: "started_at"}, {Name: "created_at"}, {Name: "alive"}, {Name: "resources_synced"},
		{Name: "admin_state_up", Put: true, Parse: ParseBool},
		{Name: "description", Put: true, Parse: ParseString(255)},
	},
}

// Std implements Object; agents have no project and no revision.
func (a *Agent) Std() *Standard { return &Standard{ID: a.ID} }

// Alive reports whether the agent's last heartbeat is recent enough.
func (a *Agent) Alive(now time.Time, downTime time.Duration) bool {
	return now.Sub(a.HeartbeatAt) < downTime
}

// View implements Object; "alive" is filled in when rendering, because it
// depends on the time of the request.
func (a *Agent) View() map[string]any {
	az := any(nil)
	if a.AvailabilityZone != "" {
		az = a.AvailabilityZone
	}
	cfg := a.Configurations
	if cfg == nil {
		cfg = map[string]any{}
	}
	return map[string]any{
		"id": a.ID, "agent_type": a.AgentType, "binary": a.Binary, "host": a.Host, "topic": a.Topic,
		"description": a.Description, "availability_zone": az, "admin_state_up": a.AdminStateUp,
		"configurations": cfg, "heartbeat_timestamp": a.HeartbeatAt.UTC().Format(AgentTimeFormat),
		"started_at": a.StartedAt.UTC().Format(AgentTimeFormat), "created_at": a.CreatedAt.UTC().Format(AgentTimeFormat),
		"resources_synced": nil,
	}
}
