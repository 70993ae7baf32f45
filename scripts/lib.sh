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
