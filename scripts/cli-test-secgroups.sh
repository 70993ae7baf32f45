#!/usr/bin/env bash
# Drives the `openstack` CLI through security groups: the default group a
# project gets on first use, groups created, shown, renamed and deleted,
# rules by protocol, port range, ICMP type and remote group, a duplicate
# refused, ports in groups, a group in use kept, another project kept out.
set -euo pipefail
BIN=${1:-bin/vland}
. "$(dirname "$0")/lib.sh"

admin_pass='sg-admin-pw'
cli_setup sg "$admin_pass" alice bob

for u in alice bob; do
	os admin project create "p-$u" -f value -c id >/dev/null
	os admin user create --project "p-$u" --password "$u-pw" "$u" -f value -c id >/dev/null
	os admin role add --project "p-$u" --user "$u" member
done
alice_project=$(os admin project show p-alice -f value -c id)

# The default group appears on first list, with Neutron's four rules.
check "first list shows the default group" "default" "$(os alice security group list -f value -c Name)"
default=$(os alice security group list -f value -c ID)
check "default group has 4 rules" "4" "$(os alice security group rule list "$default" -f value -c ID | wc -l)"
check "default ingress is from the group itself" "$default $default" \
	"$(os alice security group rule list "$default" --ingress -f value -c 'Remote Security Group' | sort | xargs)"
check "still one default group" "1" "$(os alice security group list -f value -c Name | grep -cx default)"

# Groups: create, show, set, list.
web=$(os alice security group create web --description "web tier" -f value -c id)
check "group created" "web tier" "$(os alice security group show web -f value -c description)"
check "new group has the two egress rules" "egress egress" \
	"$(os alice security group rule list web -f value -c Direction | xargs)"
os alice security group set web --name web2 --description "front"
check "group renamed" "front" "$(os alice security group show web2 -f value -c description)"
check "stateful by default" "True" "$(os alice security group show web2 -f value -c stateful)"
check "two groups listed" "default web2" "$(os alice security group list -f value -c Name | sort | xargs)"

# Rules. (`show -f value` prints the chosen columns in alphabetical order.)
ssh=$(os alice security group rule create web2 --protocol tcp --dst-port 22 --remote-ip 203.0.113.9/24 -f value -c id)
check "tcp 22 rule" "22 22 tcp" "$(os alice security group rule show "$ssh" -f value -c protocol -c port_range_min -c port_range_max | xargs)"
check "remote prefix kept as given" "203.0.113.9/24" "$(os alice security group rule show "$ssh" -f value -c remote_ip_prefix)"
os alice security group rule create web2 --protocol udp --dst-port 5000:5100 -f value -c id >/dev/null
check "udp range" "5000 5100" "$(os alice security group rule list web2 --protocol udp -f value -c 'Port Range' | tr ':' ' ')"
icmp=$(os alice security group rule create web2 --protocol icmp --icmp-type 8 --icmp-code 0 -f value -c id)
check "icmp echo rule" "0 8 icmp" "$(os alice security group rule show "$icmp" -f value -c protocol -c port_range_min -c port_range_max | xargs)"
v6=$(os alice security group rule create web2 --ethertype IPv6 --protocol ipv6-icmp --icmp-type 128 -f value -c id)
check "ICMPv6 echo rule" "IPv6 128 ipv6-icmp" "$(os alice security group rule show "$v6" -f value -c protocol -c ether_type -c port_range_min | xargs)"
peer=$(os alice security group rule create web2 --protocol tcp --dst-port 5432 --remote-group default -f value -c id)
check "remote group rule" "$default" "$(os alice security group rule show "$peer" -f value -c remote_group_id)"
check "rules of web2" "7" "$(os alice security group rule list web2 -f value -c ID | wc -l)"
refused "duplicate rule refused" "already exists" os alice security group rule create web2 --protocol tcp --dst-port 22 --remote-ip 203.0.113.9/24
refused "protocol 300 refused" "protocol 300 not supported" os alice security group rule create web2 --protocol 300
refused "IPv6 protocol on IPv4 refused" "Invalid ethertype IPv4 for protocol ipv6-icmp" os alice security group rule create web2 --ethertype IPv4 --protocol ipv6-icmp
refused "ICMP type out of range refused" "must be 0 to 255" os alice security group rule create web2 --protocol icmp --icmp-type 300
refused "ports for a portless protocol refused" "Ports cannot be specified" os alice security group rule create web2 --protocol gre --dst-port 5
refused "prefix of the other family refused" "Conflicting value ethertype" os alice security group rule create web2 --ethertype IPv6 --remote-ip 10.0.0.0/8
os alice security group rule delete "$ssh"
check "rule deleted" "6" "$(os alice security group rule list web2 -f value -c ID | wc -l)"

# The default group stays the default.
refused "member cannot delete the default group" "default security group" os alice security group delete default
refused "member cannot rename the default group" "default security group" os alice security group set "$default" --name mine
refused "no second group named default" "already exists" os alice security group create default

# Ports join groups.
os alice network create sg-net -f value -c id >/dev/null
os alice subnet create --network sg-net --subnet-range 10.80.0.0/24 sg-sub -f value -c id >/dev/null
check "a port gets the default group" "$default" "$(os alice port create --network sg-net p1 -f json -c security_group_ids | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["security_group_ids"]))')"
os alice port create --network sg-net --security-group web2 p2 -f value -c id >/dev/null
check "a port in the group asked for" "$web" "$(os alice port show p2 -f json -c security_group_ids | python3 -c 'import json,sys; print(",".join(json.load(sys.stdin)["security_group_ids"]))')"
refused "a group in use is kept" "in use" os alice security group delete web2
refused "port security stays while groups do" "security group" os alice port set --disable-port-security p2
os alice port set --no-security-group --disable-port-security p2
check "port without port security" "False" "$(os alice port show p2 -f value -c port_security_enabled)"
os alice security group delete web2
check "group deleted" "default" "$(os alice security group list -f value -c Name | xargs)"

# Another project sees nothing of it.
refused "another project's group is not found" "No SecurityGroup found\|could not be found\|does not exist" os bob security group show "$default"
check "bob's own default group only" "default" "$(os bob security group list -f value -c Name | xargs)"
check "bob's default is another group" "1" "$(os bob security group list -f value -c ID | grep -vcx "$default")"

# The admin may delete a default group no port uses; it comes back on use.
os alice port delete p1
os admin security group delete "$default"
check "default group made again" "1" "$(os alice security group list -f value -c ID | grep -vcx "$default")"
check "quota listed" "10 100" "$(/usr/bin/python3 -c "
import openstack
q = openstack.connect(cloud='alice').network.get_quota('$alice_project')
print(q.security_groups, q.security_group_rules)")"

cli_report cli-secgroups
