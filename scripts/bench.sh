#!/bin/sh
# Runs vland's API benchmark against a server it starts itself, after
# printing what machine the figures come from. Builds nothing: `make bench`
# builds the binary first. See BENCHMARKS.md.
#
# usage: scripts/bench.sh path/to/vland [extra `vland bench api` flags]
# env:   BENCH_CLIENTS (16), BENCH_PORTS (10000), BENCH_NETWORKS (4),
#        BENCH_LISTS (50), BENCH_ARGS (more flags, e.g. "--json")
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

echo "== vland bench api"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
exec "$bin" bench api \
	--clients "${BENCH_CLIENTS:-16}" \
	--ports "${BENCH_PORTS:-10000}" \
	--networks "${BENCH_NETWORKS:-4}" \
	--lists "${BENCH_LISTS:-50}" \
	${BENCH_ARGS:-} "$@"
