#!/bin/sh
# Runs vland's benchmarks after printing what machine the figures come
# from: the API benchmark against a server it starts itself, then (as root)
# the data-plane and DHCP benchmarks, each on a dev cluster it builds and
# removes itself.
# Builds nothing: `make bench` builds the binary first. See BENCHMARKS.md.
#
# usage: scripts/bench.sh path/to/vland [extra `vland bench api` flags]
# env:   BENCH_ONLY (api, lists, dataplane, dhcp, metadata, router or secgroup: run just that one)
#        api:       BENCH_CLIENTS (16), BENCH_PORTS (10000), BENCH_NETWORKS (4),
#                   BENCH_LISTS (50), BENCH_ARGS (more flags, e.g. "--json")
#        dataplane: BENCH_VMS (100), BENCH_SYNC_PORTS (1000),
#                   BENCH_IPERF_SECONDS (10), BENCH_DP_ARGS (more flags,
#                   e.g. "--runs 3" or "--json")
#        dhcp:      BENCH_DHCP_VMS (100), BENCH_DHCP_NETWORKS (50),
#                   BENCH_DHCP_SECONDS (10), BENCH_DHCP_ARGS (more flags)
#        metadata:  BENCH_MD_VMS (100), BENCH_MD_RATE (5000),
#                   BENCH_MD_ARGS (more flags, e.g. "--json")
#        router:    BENCH_ROUTERS (100), BENCH_ROUTER_FIPS (10),
#                   BENCH_ROUTER_TRIALS (50), BENCH_ROUTER_ARGS (more flags)
#        secgroup:  BENCH_SG_PORTS (100), BENCH_SG_RULES (10000),
#                   BENCH_SG_TRIALS (100), BENCH_SG_ARGS (more flags)
set -eu

if [ $# -lt 1 ] || [ ! -x "$1" ]; then
	echo "usage: $0 path/to/vland [flags]   (run 'make bench' to build it first)" >&2
	exit 2
fi
bin=$1
shift

echo "== machine"
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "cpus:    $(nproc)"
echo "model:   $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "memory:  $(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
echo "kernel:  $(uname -r)"
if command -v go >/dev/null 2>&1; then
	echo "go:      $(go version)"
fi
echo "binary:  $("$bin" version) ($bin)"
echo

status=0
if [ "${BENCH_ONLY:-api}" = api ]; then
	echo "== vland bench api"
	# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
	"$bin" bench api \
		--clients "${BENCH_CLIENTS:-16}" \
		--ports "${BENCH_PORTS:-10000}" \
		--networks "${BENCH_NETWORKS:-4}" \
		--lists "${BENCH_LISTS:-50}" \
		${BENCH_ARGS:-} "$@" || status=$?
	echo
fi

if [ "${BENCH_ONLY:-lists}" = lists ]; then
	echo "== vland bench lists"
	"$bin" bench lists --ports "${BENCH_LIST_PORTS:-10000}" --big-ports "${BENCH_BIG_PORTS:-100000}" || status=$?
	echo
fi

if [ "${BENCH_ONLY:-dataplane}" = dataplane ]; then
	echo "== vland bench dataplane"
	if [ "$(id -u)" -ne 0 ]; then
		echo "skipped: the data-plane benchmark needs root (it builds a dev cluster)"
	else
		# shellcheck disable=SC2086 # BENCH_DP_ARGS is a list of flags
		"$bin" bench dataplane \
			--vms "${BENCH_VMS:-100}" \
			--ports "${BENCH_SYNC_PORTS:-1000}" \
			--iperf-seconds "${BENCH_IPERF_SECONDS:-10}" \
			${BENCH_DP_ARGS:-} || status=$?
	fi
fi
if [ "${BENCH_ONLY:-dhcp}" = dhcp ]; then
	echo "== vland bench dhcp"
	if [ "$(id -u)" -ne 0 ]; then
		echo "skipped: the DHCP benchmark needs root (it builds a dev cluster)"
	else
		# shellcheck disable=SC2086 # BENCH_DHCP_ARGS is a list of flags
		"$bin" bench dhcp \
			--vms "${BENCH_DHCP_VMS:-100}" \
			--networks "${BENCH_DHCP_NETWORKS:-50}" \
			--seconds "${BENCH_DHCP_SECONDS:-10}" \
			${BENCH_DHCP_ARGS:-} || status=$?
	fi
fi
if [ "${BENCH_ONLY:-metadata}" = metadata ]; then
	echo "== vland bench metadata"
	if [ "$(id -u)" -ne 0 ]; then
		echo "skipped: the metadata benchmark needs root (it builds network namespaces)"
	else
		# shellcheck disable=SC2086 # BENCH_MD_ARGS is a list of flags
		"$bin" bench metadata \
			--vms "${BENCH_MD_VMS:-100}" \
			--rate "${BENCH_MD_RATE:-5000}" \
			${BENCH_MD_ARGS:-} || status=$?
	fi
fi
if [ "${BENCH_ONLY:-router}" = router ]; then
	echo "== vland bench router"
	if [ "$(id -u)" -ne 0 ]; then
		echo "skipped: the router benchmark needs root (it builds network namespaces)"
	else
		# shellcheck disable=SC2086 # BENCH_ROUTER_ARGS is a list of flags
		"$bin" bench router \
			--routers "${BENCH_ROUTERS:-100}" \
			--floating-ips "${BENCH_ROUTER_FIPS:-10}" \
			--trials "${BENCH_ROUTER_TRIALS:-50}" \
			${BENCH_ROUTER_ARGS:-} || status=$?
	fi
fi
if [ "${BENCH_ONLY:-secgroup}" = secgroup ]; then
	echo "== vland bench secgroup"
	if [ "$(id -u)" -ne 0 ]; then
		echo "skipped: the security-group benchmark needs root (it builds network namespaces)"
	else
		# shellcheck disable=SC2086 # BENCH_SG_ARGS is a list of flags
		"$bin" bench secgroup \
			--ports "${BENCH_SG_PORTS:-100}" \
			--rules "${BENCH_SG_RULES:-10000}" \
			--trials "${BENCH_SG_TRIALS:-100}" \
			${BENCH_SG_ARGS:-} || status=$?
	fi
fi
exit $status
