// Package metadata is the instance metadata service the vland agent serves
// itself at 169.254.169.254, in place of Neutron's metadata agent, its
// haproxy and Nova's metadata API: every guest asks "what is written in my
// file" and gets its own user-data, keys and network description, in the
// OpenStack and EC2 formats cloud-init (and cloudbase-init, and every image
// built for OpenStack) reads.
//
// # Contract with the agent
//
// The agent builds one Server (NewServer) with a Lookup, and opens one
// listener per context with Listen(ns, addr, key): inside qrouter-<id> on
// the port the namespace's nftables redirect 169.254.169.254:80 to (key:
// the router id), inside qdhcp-<netid> on 169.254.169.254:80 for isolated
// networks (key: the network id), and the same on fe80::a9fe:a9fe. For each
// request the Server asks Lookup.Instance(key, source address): the TCP
// peer's address, nothing the request says. The agent maps (key, address)
// to a port and its device_id through its own desired state and returns
// the Instance; no match is a 404 on every path but "/". A router's
// listener on a wildcard port must be reachable only through the redirect
// from its qr- interfaces (Neutron marks redirected packets and drops the
// rest of port 9697 in INPUT): otherwise the external network could ask
// it with a tenant's source address. Anti-spoofing (the
// port's security groups) is what makes the source address trustworthy: on
// a port with port security disabled, a guest can claim a neighbour's
// address and read its metadata.
//
// # What it answers
//
// As Nova's metadata API (nova/api/metadata/base.py) with its defaults:
//
//   - "/": the EC2 versions and latest, one per line (to anyone, as Nova).
//   - "/openstack": the OpenStack versions 2012-08-10 … 2025-04-04 and
//     latest; "/openstack/<version>" lists meta_data.json, user_data (only
//     if the instance has some), password (from 2013-04-04), vendor_data.json
//     (2013-10-17), network_data.json (2015-10-15) and vendor_data2.json
//     (2016-10-06).
//   - meta_data.json: uuid, meta (if any), public_keys and keys (if any),
//     hostname, name, launch_index, availability_zone (null if unset), and
//     by version random_seed (512 fresh random bytes, base64), project_id,
//     devices ([]) and dedicated_cpus ([]).
//   - user_data: the exact bytes; 404 when the instance has none.
//   - network_data.json: Nova's rendering of the ports (netutils
//     get_network_metadata): a link per port (id tap<portid11>, vif_id,
//     type "bridge", mtu null when DHCP gives it, ethernet_mac_address);
//     a network for its first IPv4 and first IPv6 subnet (ipv4_dhcp /
//     ipv6_dhcp with DHCP, ipv6_<address mode>, or static ipv4/ipv6 with
//     ip_address, netmask, routes and services); DNS servers as services.
//   - vendor_data.json {} and vendor_data2.json {"static": {}}, Nova's
//     answers with no vendor data configured; password "" (read-only).
//   - EC2 at /<version>/ and /ec2/<version>/ for the versions 1.0 …
//     2009-04-04 and latest, each version with the keys Nova gives it:
//     meta-data/ (ami-id, ami-launch-index, ami-manifest-path,
//     block-device-mapping/, hostname, instance-action, instance-id,
//     instance-type, local-hostname, local-ipv4, placement/, public-hostname,
//     public-ipv4, public-keys/, reservation-id, security-groups) and
//     user-data. latest adds, from later EC2 versions, mac and
//     network/interfaces/macs/<mac>/ (device-number, interface-id,
//     local-ipv4s, ipv6s, public-ipv4s, ipv4-associations/, subnet-id,
//     subnet-ipv4-cidr-block, subnet-ipv6-cidr-blocks, vpc-id (the network),
//     owner-id (the project), local-hostname, mac, security-groups).
//
// Directory listings are plain text, one entry per line, sub-directories
// with a trailing "/", no trailing newline, exactly as Nova prints them;
// public-keys/ lists "0=name" for each key, sorted by name. Paths are
// normalised as Nova does (path.Clean: no "..", "." or empty segments can
// escape or confuse, percent-encoded ones included; a trailing "/" is the
// same path). Unknown paths are 404; methods other than GET and HEAD 405.
//
// Values vland derives because it has no Nova database: instance-id is
// "i-" and the first 8 hex digits of the instance UUID (Nova prints its
// integer id as i-%08x); reservation-id "r-" and 8 hex digits of a hash of
// the UUID; ami-id "ami-" and the first 8 hex digits of the image UUID
// ("ami-00000000" without one); block-device-mapping Nova's for a libvirt
// guest with one disk ({ami: vda, root: /dev/vda}) unless given.
//
// # Robustness
//
// Every caller (listener key and source address: the same address on two
// networks is two guests) has a token bucket (RateLimit, default 100
// requests/s with a burst of 200, so a booting guest's crawl is never
// slowed); beyond it the answer is 429, as Neutron's haproxy answers. A
// source may hold at most MaxConnsPerCaller connections per listener.
// Header, read, write and idle timeouts and a header size limit make slow
// and half-open clients go away. A request reaches nothing but the Lookup,
// the renderers and, when NovaProxy is configured, the Nova API: there are
// no redirects, no file system, and the Host header is not looked at.
//
// # Nova proxy
//
// With Options.NovaProxy the Server forwards identified requests (GET,
// HEAD, and POST for Nova's password) to a Nova metadata API with
// Neutron's headers: X-Instance-ID, X-Tenant-ID, X-Forwarded-For (the
// source address) and X-Instance-ID-Signature (hex HMAC-SHA256 of the
// instance id with the shared secret), and relays the answer; Nova
// unreachable is 503.
package metadata
