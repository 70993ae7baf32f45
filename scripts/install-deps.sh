#!/bin/sh
# Installs the Debian packages vland's tests and demo use, only if missing.
set -eu
pkgs="python3-openstackclient iproute2 curl iputils-ping busybox udhcpc isc-dhcp-client iperf3 ethtool bind9-dnsutils cloud-init"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "installing:$missing"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
