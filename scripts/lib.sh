# Shared helpers for vland's scripts: start a throw-away server on loopback.

# free_port prints a free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_server BIN DIR PASSWORD: runs `vland server` in the background on a
# free loopback port with its state in DIR; sets VLAND_URL and VLAND_PID.
start_server() {
	local bin=$1 dir=$2 pass=$3 port
	port=$(free_port)
	"$bin" server --listen "127.0.0.1:$port" --data-dir "$dir" --admin-password "$pass" >"$dir/server.log" 2>&1 &
	VLAND_PID=$!
	VLAND_URL="http://127.0.0.1:$port"
	for _ in $(seq 1 300); do
		if curl -fsS "$VLAND_URL/" >/dev/null 2>&1; then
			return 0
		fi
		if ! kill -0 "$VLAND_PID" 2>/dev/null; then
			cat "$dir/server.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "server did not answer on $VLAND_URL" >&2
	return 1
}

# cli_setup NAME ADMIN_PASSWORD [USER...]: a throw-away server with its
# state in a temporary $dir (both removed when the script exits), and
# $dir/clouds.yaml (exported as OS_CLIENT_CONFIG_FILE) with cloud "admin"
# and, for each USER, cloud USER: user USER, password USER-pw, project
# p-USER (the script creates them). Defines the counters of check.
cli_setup() {
	local name=$1 pass=$2 u
	shift 2
	dir=$(mktemp -d "/tmp/vland-cli-$name.XXXXXX")
	trap 'cli_cleanup' EXIT
	start_server "$BIN" "$dir" "$pass"
	passed=0 failed=0
	{
		echo "clouds:"
		echo "  admin:"
		echo "    auth: {auth_url: \"$VLAND_URL/identity/v3\", username: admin, password: \"$pass\", project_name: admin, user_domain_name: Default, project_domain_name: Default}"
		echo "    identity_api_version: 3"
		for u in "$@"; do
			echo "  $u:"
			echo "    auth: {auth_url: \"$VLAND_URL/identity/v3\", username: $u, password: $u-pw, project_name: p-$u, user_domain_name: Default, project_domain_name: Default}"
			echo "    identity_api_version: 3"
		done
	} >"$dir/clouds.yaml"
	export OS_CLIENT_CONFIG_FILE=$dir/clouds.yaml
}

# cli_cleanup stops the server and removes $dir.
cli_cleanup() {
	[ -n "${VLAND_PID:-}" ] && kill "$VLAND_PID" 2>/dev/null && wait "$VLAND_PID" 2>/dev/null || true
	rm -rf "$dir"
}

# os CLOUD ARGS...: the openstack CLI as that cloud.
os() { local c=$1; shift; openstack --os-cloud "$c" "$@"; }

# check NAME EXPECTED ACTUAL: counts and prints one assertion.
check() {
	if [ "$2" == "$3" ]; then
		passed=$((passed + 1)); echo "ok   $1"
	else
		failed=$((failed + 1)); echo "FAIL $1: want '$2', got '$3'"
	fi
}

# refused NAME PATTERN CMD...: CMD must fail with PATTERN in its error.
refused() {
	local name=$1 pattern=$2
	shift 2
	if "$@" >/dev/null 2>"$dir/err"; then
		check "$name" "refused" "accepted"
	else
		check "$name" "1" "$(grep -c -m1 -- "$pattern" "$dir/err")"
	fi
}

# cli_report NAME: prints the tally; fails when an assertion failed.
cli_report() {
	echo "$1: $passed passed, $failed failed"
	[ "$failed" -eq 0 ]
}
