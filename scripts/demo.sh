#!/usr/bin/env bash
# vland demo: starts a server with builtin identity and walks through the
# API with the real `openstack` CLI: two tenants build identical networks,
# neither can see the other's, the admin sees both. (The data-plane demo,
# with VMs pinging across hosts, replaces this once `vland dev` exists.)
set -euo pipefail
BIN=${1:-bin/vland}
. "$(dirname "$0")/lib.sh"

dir=$(mktemp -d /tmp/vland-demo.XXXXXX)
admin_pass="demo-$(date +%s)-admin"
cleanup() {
	[ -n "${VLAND_PID:-}" ] && kill "$VLAND_PID" 2>/dev/null && wait "$VLAND_PID" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
start_server "$BIN" "$dir" "$admin_pass"
echo "vland server at $VLAND_URL (state in $dir)"

os() { # os USER PASSWORD PROJECT ARGS...
	local user=$1 pass=$2 project=$3
	shift 3
	openstack --os-auth-url "$VLAND_URL/identity/v3" --os-identity-api-version 3 \
		--os-username "$user" --os-password "$pass" --os-project-name "$project" \
		--os-user-domain-name Default --os-project-domain-name Default "$@"
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "admin creates two tenants, each with a member user"
for t in demo alt; do
	os admin "$admin_pass" admin project create "$t" -f value -c id >/dev/null
	os admin "$admin_pass" admin user create --project "$t" --password "$t-secret" "$t-user" -f value -c id >/dev/null
	os admin "$admin_pass" admin role add --project "$t" --user "$t-user" member
done
os admin "$admin_pass" admin role assignment list --names -c Role -c User -c Project

for t in demo alt; do
	step "$t builds net1 with 10.0.0.0/24 and two ports"
	os "$t-user" "$t-secret" "$t" network create net1 -c id -c name -c mtu -c status
	os "$t-user" "$t-secret" "$t" subnet create --network net1 --subnet-range 10.0.0.0/24 --dns-nameserver 10.0.0.2 sub1 -c cidr -c gateway_ip -c allocation_pools
	os "$t-user" "$t-secret" "$t" port create --network net1 --fixed-ip subnet=sub1,ip-address=10.0.0.10 vm1 -c name -c mac_address -c fixed_ips -c status
	os "$t-user" "$t-secret" "$t" port create --network net1 vm2 -c name -c mac_address -c fixed_ips -c status
done

step "each tenant sees only its own network, even with identical names and addresses"
for t in demo alt; do
	echo "-- as $t:"
	os "$t-user" "$t-secret" "$t" port list -c Name -c "Fixed IP Addresses" -c Status
done

step "admin sees both, with their VXLAN segments"
os admin "$admin_pass" admin network list --long -c Name -c Project -c "Network Type" -c Subnets
os admin "$admin_pass" admin network list -f value -c ID | while read -r id; do
	os admin "$admin_pass" admin network show "$id" -f value -c provider:segmentation_id | sed "s/^/segmentation id of $id: /"
done

step "alt cannot touch demo's network (404, as in Neutron)"
demo_net=$(os demo-user demo-secret demo network show net1 -f value -c id)
if os alt-user alt-secret alt network show "$demo_net" 2>&1; then
	echo "UNEXPECTED: alt could see demo's network" >&2
	exit 1
fi

step "done; stopping the server and removing its state"
