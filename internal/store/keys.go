package store

import (
	"strconv"
	"strings"
)

// Keys builds every etcd key vland writes; docs/design/store.md describes
// the layout. All keys live under Prefix; versioned data under Prefix/v1.
type Keys struct {
	Prefix string
}

func (k Keys) join(parts ...string) string {
	return k.Prefix + "/v1/" + strings.Join(parts, "/")
}

// Schema is the key holding the layout version.
func (k Keys) Schema() string { return k.Prefix + "/schema" }

// Root is the prefix of all versioned data (what the cache watches).
func (k Keys) Root() string { return k.Prefix + "/v1/" }

// ResourcePrefix is the prefix of every object of one kind.
func (k Keys) ResourcePrefix(kind string) string { return k.join("res", kind) + "/" }

// Resource is the key of one API object as JSON.
func (k Keys) Resource(kind, id string) string { return k.join("res", kind, id) }

// IPAlloc marks an address of a subnet as used; the value is the port id.
func (k Keys) IPAlloc(subnetID, ip string) string { return k.join("alloc", "ip", subnetID, ip) }

// IPAllocPrefix covers every address in use in one subnet.
func (k Keys) IPAllocPrefix(subnetID string) string { return k.join("alloc", "ip", subnetID) + "/" }

// MACAlloc makes a MAC address unique within a network; the value is the port id.
func (k Keys) MACAlloc(networkID, mac string) string { return k.join("alloc", "mac", networkID, mac) }

// SegmentAlloc reserves a segmentation id of a type (and physical network);
// the value is the network id. physnet is "-" for types without one.
func (k Keys) SegmentAlloc(netType, physnet, id string) string {
	if physnet == "" {
		physnet = "-"
	}
	return k.join("alloc", "segment", netType, physnet, id)
}

// FlatAlloc reserves a physical network for one flat network.
func (k Keys) FlatAlloc(physnet string) string { return k.join("alloc", "flat", physnet) }

// NetworkPort indexes a port under its network so that deleting a network can
// check, inside its transaction, that no port remains.
func (k Keys) NetworkPort(networkID, portID string) string {
	return k.join("index", "network-ports", networkID, portID)
}

// NetworkPortPrefix covers the port index of one network.
func (k Keys) NetworkPortPrefix(networkID string) string {
	return k.join("index", "network-ports", networkID) + "/"
}

// Identity is the key of an identity object (projects, users, roles, ...).
func (k Keys) Identity(parts ...string) string {
	return k.join(append([]string{"identity"}, parts...)...)
}

// IdentityPrefix covers the identity objects of one kind.
func (k Keys) IdentityPrefix(parts ...string) string {
	return k.Identity(parts...) + "/"
}

// PrefixEnd returns the end of the range covering every key with prefix p.
func PrefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// AgentSecret holds the deployment secret agent tokens are derived from.
func (k Keys) AgentSecret() string { return k.join("agent", "secret") }

// ProjectIndex records that a project owns an object of kind; quota usage
// is the number of these keys, so it can never drift from the objects.
func (k Keys) ProjectIndex(project, kind, id string) string {
	return k.join("index", "project", project, kind, id)
}

// ProjectIndexPrefix covers a project's objects of one kind.
func (k Keys) ProjectIndexPrefix(project, kind string) string {
	return k.join("index", "project", project, kind) + "/"
}

// QuotaSlot is one of the limit-many slots a project's objects of a kind
// claim; the value is the object's id. Claiming a free slot with a
// create-if-absent compare enforces a quota without serialising creates.
func (k Keys) QuotaSlot(project, kind string, slot int) string {
	return k.join("quota", "slot", project, kind, strconv.Itoa(slot))
}

// QuotaSlotPrefix covers a project's slots of one kind.
func (k Keys) QuotaSlotPrefix(project, kind string) string {
	return k.join("quota", "slot", project, kind) + "/"
}

// ObjectRBAC indexes an RBAC policy under the object it grants access to.
func (k Keys) ObjectRBAC(objectID, policyID string) string {
	return k.join("index", "object-rbac", objectID, policyID)
}

// ObjectRBACPrefix covers the RBAC policies of one object.
func (k Keys) ObjectRBACPrefix(objectID string) string {
	return k.join("index", "object-rbac", objectID) + "/"
}

// SubnetPoolLock serialises the changes that depend on a subnet pool's
// allocations: every subnet allocated from the pool compares and bumps its
// mod revision in the transaction that writes the subnet, and pool updates,
// prefix removals, RBAC withdrawals and the pool's delete compare it. The
// allocations themselves are the subnets naming the pool (read from the
// cache once it has reached the lock's revision). The value is empty.
func (k Keys) SubnetPoolLock(poolID string) string { return k.join("lock", "subnetpool", poolID) }

// AddressScopeLock serialises the changes to the set of subnet pools in an
// address scope (pool prefixes must not overlap within a scope) as
// SubnetPoolLock does for a pool's allocations.
func (k Keys) AddressScopeLock(scopeID string) string {
	return k.join("lock", "address-scope", scopeID)
}

// DefaultSubnetPool makes a pool the only default one of its IP version;
// the value is the pool id.
func (k Keys) DefaultSubnetPool(ipVersion int) string {
	return k.join("alloc", "default-subnetpool", strconv.Itoa(ipVersion))
}

// RBACUnique makes (object, action, target) unique among RBAC policies.
func (k Keys) RBACUnique(objectID, action, target string) string {
	return k.join("alloc", "rbac", objectID, action, target)
}

// RouterFIP records that a floating IP uses a router (associated, or
// carrying port forwardings); the value is empty. Removing a router's
// interface or gateway compares that no key under RouterFIPPrefix changed
// since it checked the floating IPs, so an association made meanwhile is
// never orphaned.
func (k Keys) RouterFIP(routerID, fipID string) string {
	return k.join("index", "router-fips", routerID, fipID)
}

// RouterFIPPrefix covers the floating IPs using one router.
func (k Keys) RouterFIPPrefix(routerID string) string {
	return k.join("index", "router-fips", routerID) + "/"
}

// PortFIP makes a fixed IP of a port float to one floating IP per external
// network (FloatingIPPortAlreadyAssociated); the value is the floating IP's
// id. It lives under PortL3Prefix.
func (k Keys) PortFIP(portID, extNetID, fixedIP string) string {
	return k.join("index", "port-l3", portID, "fip", extNetID, fixedIP)
}

// PortPF records that a port forwarding targets a port; the value is the
// floating IP's id. It lives under PortL3Prefix.
func (k Keys) PortPF(portID, pfID string) string {
	return k.join("index", "port-l3", portID, "pf", pfID)
}

// PortL3Prefix covers the floating IPs and port forwardings targeting a
// port: deleting or readdressing the port reads and compares it.
func (k Keys) PortL3Prefix(portID string) string {
	return k.join("index", "port-l3", portID) + "/"
}

// DefaultSecurityGroup makes a project's default security group unique
// (create-if-absent in the transaction that creates the group and its
// rules); the value is the group's id. Deleting the group deletes it.
func (k Keys) DefaultSecurityGroup(project string) string {
	return k.join("alloc", "default-sg", project)
}

// SecurityGroupRule makes a rule unique within its group: ruleKey is the
// hash of what the rule matches (model.SecurityGroupRule.Key), the value
// the rule's id (SecurityGroupRuleExists).
func (k Keys) SecurityGroupRule(groupID, ruleKey string) string {
	return k.join("alloc", "sg-rule", groupID, ruleKey)
}

// SecurityGroupRulePrefix covers the rules of one group: deleting the
// group reads it and compares that nothing was added since.
func (k Keys) SecurityGroupRulePrefix(groupID string) string {
	return k.join("alloc", "sg-rule", groupID) + "/"
}

// SecurityGroupPort records that a port is in a group; the value is empty.
// Deleting the group (or changing its statefulness) compares that none
// exists (SecurityGroupInUse).
func (k Keys) SecurityGroupPort(groupID, portID string) string {
	return k.join("index", "sg-ports", groupID, portID)
}

// SecurityGroupPortPrefix covers the ports of one group.
func (k Keys) SecurityGroupPortPrefix(groupID string) string {
	return k.join("index", "sg-ports", groupID) + "/"
}

// SecurityGroupRemote records that a rule names a group as its
// remote_group_id; the value is the rule's own group. Deleting the remote
// group deletes those rules, as Neutron's foreign key cascades.
func (k Keys) SecurityGroupRemote(remoteGroupID, ruleID string) string {
	return k.join("index", "sg-remote", remoteGroupID, ruleID)
}

// SecurityGroupRemotePrefix covers the rules naming one remote group.
func (k Keys) SecurityGroupRemotePrefix(remoteGroupID string) string {
	return k.join("index", "sg-remote", remoteGroupID) + "/"
}

// AddressGroupRule records that a rule names an address group as its
// remote_address_group_id; the value is empty. Deleting the address group
// compares that none exists (AddressGroupInUse).
func (k Keys) AddressGroupRule(addressGroupID, ruleID string) string {
	return k.join("index", "ag-rules", addressGroupID, ruleID)
}

// AddressGroupRulePrefix covers the rules naming one address group.
func (k Keys) AddressGroupRulePrefix(addressGroupID string) string {
	return k.join("index", "ag-rules", addressGroupID) + "/"
}
