#!/usr/bin/env bash
# vland demo: a whole cloud on this machine (`vland dev up`: a server, one
# agent per simulated host, hosts and VMs as network namespaces), then the
# scenario: two projects each build 10.0.0.0/24 spanning two hosts with two
# VMs, and a connectivity matrix shows same-project pairs reachable across
# hosts over VXLAN and cross-project pairs isolated despite identical
# addresses; each project then gets a router to the external network
# (SNAT), a floating IP and a port forward, and the outside's echo server
# tells which source addresses crossed; a VM reads its user data from the
# metadata service. The cloud is removed at the end
# unless KEEP=1.
set -euo pipefail
BIN=${1:-bin/vland}
CLUSTER=${CLUSTER:-demo}
if [ "$(id -u)" != 0 ]; then
	echo "the demo builds network namespaces: run it as root" >&2
	exit 1
fi
cleanup() {
	if [ "${KEEP:-0}" = 1 ]; then
		echo
		echo "The cloud stays up (KEEP=1). Remove it with: $BIN dev down --cluster $CLUSTER"
	else
		"$BIN" dev down --cluster "$CLUSTER" >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "vland dev up: server, agents on compute1, compute2 and network1"
"$BIN" dev down --cluster "$CLUSTER" >/dev/null 2>&1 || true
"$BIN" dev up --cluster "$CLUSTER"
dir=$("$BIN" dev status --cluster "$CLUSTER" -f json | python3 -c 'import json,sys; print(json.load(sys.stdin)["dir"])')
export OS_CLIENT_CONFIG_FILE=$dir/clouds.yaml

step "the agents, as the openstack CLI sees them"
openstack --os-cloud "$CLUSTER-admin" network agent list -c Host -c "Agent Type" -c Alive -c State

step "two projects, identical networks, VMs on both compute hosts; who can ping whom; then routers, floating IPs, a port forward"
"$BIN" dev demo --cluster "$CLUSTER"

step "metadata: a VM asks 169.254.169.254 who it is and reads its user data"
"$BIN" dev vm exec --cluster "$CLUSTER" demo-vm1 -- curl -s http://169.254.169.254/openstack/latest/meta_data.json | python3 -c 'import json,sys; m=json.load(sys.stdin); print("meta_data.json: uuid", m["uuid"], "name", m["name"])'
echo "user_data of demo-vm1:"
"$BIN" dev vm exec --cluster "$CLUSTER" demo-vm1 -- curl -s http://169.254.169.254/openstack/latest/user_data
echo "EC2 local-ipv4 / public-ipv4 of demo-vm1: $("$BIN" dev vm exec --cluster "$CLUSTER" demo-vm1 -- curl -s http://169.254.169.254/latest/meta-data/local-ipv4) / $("$BIN" dev vm exec --cluster "$CLUSTER" demo-vm1 -- curl -s http://169.254.169.254/latest/meta-data/public-ipv4)"

step "routers and floating IPs, as each project sees them"
for p in demo alt; do
	echo "-- $CLUSTER-$p:"
	openstack --os-cloud "$CLUSTER-$p" router list -c Name -c Status -c State
	openstack --os-cloud "$CLUSTER-$p" floating ip list -c "Floating IP Address" -c "Fixed IP Address" -c Port
done

step "the ports, as each project sees them"
for p in demo alt; do
	echo "-- $CLUSTER-$p:"
	openstack --os-cloud "$CLUSTER-$p" port list -c Name -c "Fixed IP Addresses" -c Status
done
