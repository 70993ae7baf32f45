#!/usr/bin/env bash
# Drives the `openstack` CLI through routers, floating IPs and port
# forwarding: an admin's external network, a project's router with its
# gateway there and an interface on its subnet, a floating IP that floats
# from one port to another and back off, two port forwardings, and the
# refusals a user meets on the way (in-use router, router-owned port,
# unreachable external network).
set -euo pipefail
BIN=${1:-bin/vland}
. "$(dirname "$0")/lib.sh"

admin_pass='routers-admin-pw'
cli_setup routers "$admin_pass" demo

os admin project create p-demo -f value -c id >/dev/null
os admin user create --project p-demo --password demo-pw demo -f value -c id >/dev/null
os admin role add --project p-demo --user demo member

# The admin's external network; the project's network behind a router.
os admin network create --external --provider-network-type flat --provider-physical-network physnet-ext public -f value -c id >/dev/null
os admin subnet create --network public --subnet-range 203.0.113.0/24 --no-dhcp public-sub -f value -c id >/dev/null
os demo network create inside -f value -c id >/dev/null
os demo subnet create --network inside --subnet-range 10.20.0.0/24 inside-sub -f value -c id >/dev/null
router=$(os demo router create r1 -f value -c id)
check "router is ACTIVE" "ACTIVE" "$(os demo router show r1 -f value -c status)"
os demo router set --external-gateway public r1
gw_ip=$(os demo router show r1 -f json -c external_gateway_info | python3 -c 'import json,sys; g=json.load(sys.stdin)["external_gateway_info"]; print(g["external_fixed_ips"][0]["ip_address"], g["enable_snat"])')
check "gateway address on public, SNAT on" "203.0.113 True" "$(echo "$gw_ip" | sed 's/\.[0-9]* / /')"
refused "members do not pick SNAT" "disallowed by policy" os demo router set --external-gateway public --disable-snat r1
os demo router add subnet r1 inside-sub
iface=$(os demo port list --router r1 -f value -c ID)
check "interface holds the subnet's gateway" "10.20.0.1" "$(os demo port show "$iface" -f json -c fixed_ips | python3 -c 'import json,sys; print(json.load(sys.stdin)["fixed_ips"][0]["ip_address"])')"
check "interface owner" "network:router_interface" "$(os demo port show "$iface" -f value -c device_owner)"
refused "router with an interface cannot go" "409" os demo router delete r1
refused "the interface port cannot go by the port API" "409" os demo port delete "$iface"

# A floating IP floats from vm1 to vm2 and back off.
vm1=$(os demo port create --network inside vm1 -f value -c id)
vm2=$(os demo port create --network inside vm2 -f value -c id)
fip=$(os demo floating ip create public -f value -c floating_ip_address)
check "new floating IP is free and DOWN" "None DOWN" "$(os demo floating ip show "$fip" -f value -c status -c port_id | tr '\n' ' ' | sed 's/ $//')"
os demo floating ip set --port vm1 "$fip"
check "associated with vm1" "$vm1 $router" "$(os demo floating ip show "$fip" -f value -c port_id -c router_id | tr '\n' ' ' | sed 's/ $//')"
check "fixed IP of vm1" "$(os demo port show vm1 -f json -c fixed_ips | python3 -c 'import json,sys; print(json.load(sys.stdin)["fixed_ips"][0]["ip_address"])')" "$(os demo floating ip show "$fip" -f value -c fixed_ip_address)"
check "port details name vm1" "1" "$(os demo floating ip show "$fip" -f value -c port_details | grep -c "name='vm1'")"
os demo floating ip set --port vm2 "$fip"
check "re-associated with vm2" "$vm2" "$(os demo floating ip show "$fip" -f value -c port_id)"
check "listed by port" "$fip" "$(os demo floating ip list --port vm2 -f value -c 'Floating IP Address')"
os demo floating ip unset --port "$fip"
check "dissociated" "None" "$(os demo floating ip show "$fip" -f value -c port_id)"
os demo network create lonely -f value -c id >/dev/null
os demo subnet create --network lonely --subnet-range 10.21.0.0/24 lonely-sub -f value -c id >/dev/null
os demo port create --network lonely lonely-vm -f value -c id >/dev/null
refused "no router to the external network" "ExternalGatewayForFloatingIPNotFound\|is not reachable" os demo floating ip set --port lonely-vm "$fip"

# Two port forwardings on a second floating IP.
pf_ip=$(os demo floating ip create public -f value -c floating_ip_address)
vm1_ip=$(os demo port show vm1 -f json -c fixed_ips | python3 -c 'import json,sys; print(json.load(sys.stdin)["fixed_ips"][0]["ip_address"])')
vm2_ip=$(os demo port show vm2 -f json -c fixed_ips | python3 -c 'import json,sys; print(json.load(sys.stdin)["fixed_ips"][0]["ip_address"])')
os demo floating ip port forwarding create --internal-ip-address "$vm1_ip" --port vm1 --internal-protocol-port 80 --external-protocol-port 8080 --protocol tcp "$pf_ip" -f value -c id >/dev/null
os demo floating ip port forwarding create --internal-ip-address "$vm2_ip" --port vm2 --internal-protocol-port 80 --external-protocol-port 8081 --protocol tcp --description second "$pf_ip" -f value -c id >/dev/null
check "two forwardings listed" "8080 8081" "$(os demo floating ip port forwarding list "$pf_ip" -f value -c 'External Port' | sort | tr '\n' ' ' | sed 's/ $//')"
refused "colliding forwarding" "collision" os demo floating ip port forwarding create --internal-ip-address "$vm2_ip" --port vm2 --internal-protocol-port 81 --external-protocol-port 8080 --protocol tcp "$pf_ip"
check "floating IP with forwardings uses the router" "$router" "$(os demo floating ip show "$pf_ip" -f value -c router_id)"
refused "1:1 association of a forwarded floating IP" "409" os demo floating ip set --port vm1 "$pf_ip"
for id in $(os demo floating ip port forwarding list "$pf_ip" -f value -c ID); do
	os demo floating ip port forwarding delete "$pf_ip" "$id"
done
check "forwardings deleted" "0" "$(os demo floating ip port forwarding list "$pf_ip" -f value -c ID | wc -l)"

# Teardown in the order Neutron allows.
os demo floating ip delete "$fip" "$pf_ip"
os demo router remove subnet r1 inside-sub
check "interface port gone" "0" "$(os demo port list --router r1 -f value -c ID | wc -l)"
os demo router unset --external-gateway r1
check "gateway cleared" "null" "$(os demo router show r1 -f json -c external_gateway_info | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["external_gateway_info"]))')"
os demo router delete r1
check "no router ports left" "0" "$(os admin port list --device-owner network:router_gateway -f value -c ID | wc -l)"

cli_report cli-routers
