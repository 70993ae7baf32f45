package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/vland/vland/internal/apierr"
)

// Extension is an API extension as GET /v2.0/extensions lists it.
type Extension struct {
	Alias       string `json:"alias"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Updated     string `json:"updated"`
	Links       []any  `json:"links"`
}

// extensionList is every extension vland implements; an alias is listed
// only once its behaviour is complete and tested, because clients switch
// features on by what they find here.
var extensionList = []Extension{
	{Alias: "address-scope", Name: "Address scope", Description: "Address scopes extension.", Updated: "2015-07-26T10:00:00-00:00"},
	{Alias: "default-subnetpools", Name: "Default Subnetpools", Description: "Provides ability to mark and use a subnetpool as the default.", Updated: "2016-02-18T18:00:00-00:00"},
	{Alias: "rbac-address-scope", Name: "Add address_scope type to RBAC", Description: "Add address_scope type to RBAC", Updated: "2020-02-12T00:00:00-00:00"},
	{Alias: "rbac-subnetpool", Name: "Add subnetpool type to RBAC", Description: "Add subnetpool type to RBAC", Updated: "2020-02-05T00:00:00-00:00"},
	{Alias: "subnet_allocation", Name: "Subnet Allocation", Description: "Enables allocation of subnets from a subnet pool", Updated: "2015-03-30T10:00:00-00:00"},
	{Alias: "subnetpool-prefix-ops", Name: "Subnet Pool Prefix Operations", Description: "Provides support for adjusting the prefix list of subnet pools", Updated: "2019-02-08T10:00:00-00:00"},
	{Alias: "agent", Name: "agent", Description: "The agent management extension.", Updated: "2013-02-03T10:00:00-00:00"},
	{Alias: "allowed-address-pairs", Name: "Allowed Address Pairs", Description: "Provides allowed address pairs", Updated: "2013-07-23T10:00:00-00:00"},
	{Alias: "availability_zone", Name: "Availability Zone", Description: "The availability zone extension.", Updated: "2015-01-01T10:00:00-00:00"},
	{Alias: "binding", Name: "Port Binding", Description: "Expose port bindings of a virtual port to external application", Updated: "2014-02-03T10:00:00-00:00"},
	{Alias: "external-net", Name: "Neutron external network", Description: "Adds external network attribute to network resource.", Updated: "2013-01-14T10:00:00-00:00"},
	{Alias: "multi-provider", Name: "Multi Provider Network", Description: "Expose mapping of virtual networks to multiple physical networks", Updated: "2013-06-27T10:00:00-00:00"},
	{Alias: "net-mtu", Name: "Network MTU", Description: "Provides MTU attribute for a network resource.", Updated: "2015-03-25T10:00:00-00:00"},
	{Alias: "net-mtu-writable", Name: "Network MTU (writable)", Description: "Provides a writable MTU attribute for a network resource.", Updated: "2017-07-12T00:00:00-00:00"},
	{Alias: "port-mac-address-regenerate", Name: "Neutron Port MAC address regenerate", Description: "Network port MAC address regenerate", Updated: "2018-05-03T10:00:00-00:00"},
	{Alias: "port-security", Name: "Port Security", Description: "Provides port security", Updated: "2012-07-23T10:00:00-00:00"},
	{Alias: "project-id", Name: "project_id field enabled", Description: "Extension that indicates that project_id field is enabled.", Updated: "2016-09-09T09:09:09-09:09"},
	{Alias: "provider", Name: "Provider Network", Description: "Expose mapping of virtual networks to physical networks", Updated: "2012-09-07T10:00:00-00:00"},
	{Alias: "binding-extended", Name: "Port Bindings Extended", Description: "Expose port bindings of a virtual port to external application", Updated: "2017-07-17T10:00:00-00:00"},
	{Alias: "dhcp_agent_scheduler", Name: "DHCP Agent Scheduler", Description: "Schedule networks among dhcp agents", Updated: "2013-02-07T10:00:00-00:00"},
	{Alias: "empty-string-filtering", Name: "Empty String Filtering Extension", Description: "Allow filtering by attributes with empty string value", Updated: "2018-05-01T10:00:00-00:00"},
	{Alias: "filter-validation", Name: "Filter parameters validation", Description: "Provides validation on filter parameters.", Updated: "2018-07-04T10:00:00-00:00"},
	{Alias: "extra_dhcp_opt", Name: "Neutron Extra DHCP options", Description: "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be specified (e.g. tftp-server, server-ip-address, bootfile-name)", Updated: "2013-03-17T12:00:00-00:00"},
	{Alias: "ip-substring-filtering", Name: "IP address substring filtering", Description: "Provides IP address substring filtering when listing ports", Updated: "2017-11-28T09:00:00-00:00"},
	{Alias: "network_availability_zone", Name: "Network Availability Zone", Description: "Availability zone support for network.", Updated: "2015-01-01T10:00:00-00:00"},
	{Alias: "network-ip-availability", Name: "Network IP Availability", Description: "Provides IP availability data for each network and subnet.", Updated: "2015-09-24T00:00:00-00:00"},
	{Alias: "pagination", Name: "Pagination support", Description: "Extension that indicates that pagination is enabled.", Updated: "2016-06-12T00:00:00-00:00"},
	{Alias: "quotas", Name: "Quota management support", Description: "Expose functions for quotas management per project", Updated: "2012-07-29T10:00:00-00:00"},
	{Alias: "quota_details", Name: "Quota details management support", Description: "Expose functions for quotas usage statistics per project", Updated: "2017-02-10T10:00:00-00:00"},
	{Alias: "rbac-policies", Name: "RBAC Policies", Description: "Allows creation and modification of policies that control tenant access to resources.", Updated: "2015-06-17T12:15:12-00:00"},
	{Alias: "revision-if-match", Name: "If-Match constraints based on revision_number", Description: "Extension indicating that If-Match based on revision_number is supported.", Updated: "2016-12-11T00:00:00-00:00"},
	{Alias: "service-type", Name: "Neutron Service Type Management", Description: "API for retrieving service providers for Neutron advanced services", Updated: "2013-01-20T00:00:00-00:00"},
	{Alias: "sorting", Name: "Sorting support", Description: "Extension that indicates that sorting is enabled.", Updated: "2016-06-12T00:00:00-00:00"},
	{Alias: "standard-attr-revisions", Name: "Resource revision numbers", Description: "This extension will display the revision number of neutron resources.", Updated: "2016-04-11T10:00:00-00:00"},
	{Alias: "standard-attr-tag", Name: "Tag support for resources with standard attribute: network, subnet, port", Description: "Enables to set tag on resources with standard attribute.", Updated: "2017-01-01T00:00:00-00:00"},
	{Alias: "standard-attr-timestamp", Name: "Resource timestamps", Description: "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard attributes.", Updated: "2016-09-12T10:00:00-00:00"},
	{Alias: "subnet-service-types", Name: "Subnet service types", Description: "Provides ability to set the subnet service_types field", Updated: "2016-03-15T18:00:00-00:00"},
	{Alias: "tag-ports-during-bulk-creation", Name: "Tag Ports During Bulk Creation", Description: "Allow to tag ports during bulk creation", Updated: "2019-12-29T19:00:00-00:00"},
	{Alias: "router", Name: "Neutron L3 Router", Description: "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to external networks via a NAT gateway.", Updated: "2012-07-20T10:00:00-00:00"},
	{Alias: "ext-gw-mode", Name: "Neutron L3 Configurable external gateway mode", Description: "Extension of the router abstraction for specifying whether SNAT should occur on the external gateway", Updated: "2013-03-28T10:00:00-00:00"},
	{Alias: "extraroute", Name: "Neutron Extra Route", Description: "Extra routes configuration for L3 router", Updated: "2013-02-01T10:00:00-00:00"},
	{Alias: "extraroute-atomic", Name: "Atomically add/remove extra routes", Description: "Edit extra routes of a router on server side by atomically adding/removing extra routes", Updated: "2019-07-10T00:00:00+00:00"},
	{Alias: "l3_agent_scheduler", Name: "L3 Agent Scheduler", Description: "Schedule routers among l3 agents", Updated: "2013-02-07T10:00:00-00:00"},
	{Alias: "fip-port-details", Name: "Floating IP Port Details Extension", Description: "Add port_details attribute to Floating IP resource", Updated: "2018-04-09T10:00:00-00:00"},
	{Alias: "floating-ip-port-forwarding", Name: "Floating IP Port Forwarding", Description: "Allow port forwarding from floating IP port to an internal port", Updated: "2018-01-19T10:00:00-00:00"},
	{Alias: "floating-ip-port-forwarding-description", Name: "Floating IP Port Forwarding new attribute description", Description: "Add a description field to Port Forwarding rules", Updated: "2019-11-01T10:00:00-00:00"},
	{Alias: "floating-ip-port-forwarding-port-ranges", Name: "Floating IP Port Forwarding support port ranges", Description: "Add suport to port ranges", Updated: "2020-07-01T10:00:00-00:00"},
	{Alias: "standard-attr-description", Name: "standard-attr-description", Description: "Extension to add descriptions to standard attributes", Updated: "2016-02-10T10:00:00-00:00"},
	{Alias: "security-group", Name: "security-group", Description: "The security groups extension.", Updated: "2012-10-05T10:00:00-00:00"},
	{Alias: "stateful-security-group", Name: "Stateful security group", Description: "Indicates if the security group is stateful or not", Updated: "2019-11-26T09:00:00-00:00"},
	{Alias: "address-group", Name: "Address group", Description: "Support address group", Updated: "2020-07-15T10:00:00-00:00"},
	{Alias: "security-groups-remote-address-group", Name: "Remote address group id field for security group rules", Description: "Add new field of remote address group id in SG rules", Updated: "2020-08-25T10:00:00-00:00"},
	{Alias: "instance-metadata", Name: "Instance metadata", Description: "Per-instance data the metadata service serves (name, hostname, user data, meta, public keys, availability zone), keyed by device_id.", Updated: "2026-11-22T00:00:00-00:00"},
	{Alias: "security-groups-normalized-cidr", Name: "Normalized CIDR field for security group rules", Description: "Add new field with normalized remote_ip_prefix cidr in SG rule", Updated: "2020-07-28T10:00:00-00:00"},
}

func init() {
	slices.SortFunc(extensionList, func(a, b Extension) int { return strings.Compare(a.Alias, b.Alias) })
}

func (a *API) extensions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	list := slices.Clone(extensionList)
	for i := range list {
		list[i].Links = []any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"extensions": list})
}

func (a *API) extension(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w)
		return
	}
	alias := r.PathValue("alias")
	for _, e := range extensionList {
		if e.Alias == alias {
			e.Links = []any{}
			writeJSON(w, http.StatusOK, map[string]any{"extension": e})
			return
		}
	}
	writeError(w, apierr.New(http.StatusNotFound, "HTTPNotFound", "Extension with alias %s does not exist", alias))
}
