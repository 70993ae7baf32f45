#!/usr/bin/env bash
# Drives a real `openstack` CLI (Debian's python3-openstackclient) against a
# vland server through its builtin identity: projects, users, roles, then a
# network, subnet and port as an ordinary member, and the deletes.
set -euo pipefail
BIN=${1:-bin/vland}
. "$(dirname "$0")/lib.sh"

dir=$(mktemp -d /tmp/vland-cli.XXXXXX)
admin_pass='Adm1n!@#$%^&*()_+-={}[]|:;"<>,.?/~`pw'
cleanup() {
	[ -n "${VLAND_PID:-}" ] && kill "$VLAND_PID" 2>/dev/null && wait "$VLAND_PID" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
start_server "$BIN" "$dir" "$admin_pass"

passed=0 failed=0
as_admin() {
	openstack --os-auth-url "$VLAND_URL/identity/v3" --os-identity-api-version 3 \
		--os-username admin --os-password "$admin_pass" --os-project-name admin \
		--os-user-domain-name Default --os-project-domain-name Default "$@"
}
user_pass='p@ss:w"rd!$`\x'"'"'q'
as_user() {
	openstack --os-auth-url "$VLAND_URL/identity/v3" --os-identity-api-version 3 \
		--os-username cli-user --os-password "$user_pass" --os-project-name cli-project \
		--os-user-domain-name Default --os-project-domain-name Default "$@"
}

project=$(as_admin project create cli-project -f value -c id)
check "project create" 32 "${#project}"
as_admin user create --project cli-project --password "$user_pass" cli-user -f value -c name >/dev/null
as_admin role add --project cli-project --user cli-user member
check "role assignment" "member" "$(as_admin role assignment list --project cli-project --names -f value -c Role)"

net=$(as_user network create cli-net -f value -c id)
check "network is the member's" "$project" "$(as_user network show "$net" -f value -c project_id)"
check "network mtu" "1450" "$(as_user network show cli-net -f value -c mtu)"
as_user subnet create --network cli-net --subnet-range 10.20.0.0/24 cli-subnet -f value -c id >/dev/null
check "subnet gateway" "10.20.0.1" "$(as_user subnet show cli-subnet -f value -c gateway_ip)"
as_user port create --network cli-net --fixed-ip subnet=cli-subnet,ip-address=10.20.0.10 cli-port -f value -c id >/dev/null
check "port fixed ip" "ip_address='10.20.0.10', subnet_id='$(as_user subnet show cli-subnet -f value -c id)'" \
	"$(as_user port show cli-port -f value -c fixed_ips | tr -d '[]{}' | sed "s/'ip_address': /ip_address=/; s/'subnet_id': /subnet_id=/")"
check "port list" "cli-port" "$(as_user port list --network cli-net -f value -c Name)"
check "admin sees provider attrs" "vxlan" "$(as_admin network show "$net" -f value -c provider:network_type)"
if as_user port create --network cli-net --fixed-ip subnet=cli-subnet,ip-address=10.20.0.10 dup -f value -c id 2>"$dir/err"; then
	check "duplicate address refused" "409" "201"
else
	check "duplicate address refused" "1" "$(grep -c "409" "$dir/err")"
fi
if as_user subnet delete cli-subnet 2>"$dir/err"; then
	check "subnet in use refused" "409" "204"
else
	check "subnet in use refused" "1" "$(grep -c '409' "$dir/err")"
fi

as_user port delete cli-port
as_user subnet delete cli-subnet
as_user network delete cli-net
check "network gone" "" "$(as_user network list -f value -c Name)"

as_admin role remove --project cli-project --user cli-user member
as_admin user delete cli-user
as_admin project delete cli-project
check "project gone" "" "$(as_admin project list -f value -c Name | grep -x cli-project || true)"

cli_report cli
