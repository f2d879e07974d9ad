#!/usr/bin/env bash
# bench/run.sh: the short load run behind `task bench`. It builds Fizz,
# fizz-bench and the reference fan-out fixture (bench/refserver), starts each
# server in turn on a free loopback port, runs fizz-bench against it with the
# server's pid (so the report has CPU per delivery and RSS per socket), and
# stops the server. Everything it starts is stopped on exit.
#
#   bench/run.sh                    # N=1000 sockets, 200 events, rate 0
#   BENCH_N=10000 bench/run.sh      # more sockets (raise ulimit -n first)
#   BENCH_REFS=0 bench/run.sh       # Fizz only
#   bench/run.sh -c 10 -rate 100    # extra flags go to every fizz-bench run
set -euo pipefail
cd "$(dirname "$0")/.."

n=${BENCH_N:-1000}
events=${BENCH_EVENTS:-200}
refs=${BENCH_REFS:-1}
tmp=$(mktemp -d)
server=""

cleanup() {
	if [[ -n $server ]]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

# Sockets need file descriptors in both processes.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "building into $tmp"
go build -o "$tmp/fizz" .
go build -o "$tmp/fizz-bench" ./cmd/fizz-bench
go build -o "$tmp/refserver" ./bench/refserver

# free_port: bench/ports.sh
source bench/ports.sh

# wait_listening waits up to 10 s for the port to accept connections.
wait_listening() {
	for _ in $(seq 1 100); do
		if (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$server" 2>/dev/null; then
			echo "the server exited; its log:" >&2
			cat "$tmp/server.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "nothing listening on port $1 after 10 s" >&2
	return 1
}

stop_server() {
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=""
}

status=0
# bench NAME PORT: run fizz-bench against the server just started.
bench() {
	echo
	echo "== $1"
	wait_listening "$2"
	"$tmp/fizz-bench" -targets "127.0.0.1:$2" -app-id bench-app -app-key bench-key -app-secret bench-secret \
		-n "$n" -events "$events" -pid "$server" -timeout 60s "${@:3}" 2>/dev/null || status=$?
	stop_server
}

port=$(free_port)
metrics_port=$(free_port)
while [[ $metrics_port == "$port" ]]; do metrics_port=$(free_port); done
FIZZ_SERVER_HOST=127.0.0.1 FIZZ_SERVER_PORT=$port FIZZ_METRICS_PORT=$metrics_port \
	FIZZ_APP_ID=bench-app FIZZ_APP_KEY=bench-key FIZZ_APP_SECRET=bench-secret \
	"$tmp/fizz" >"$tmp/server.log" 2>&1 &
server=$!
bench "fizz (pid $server)" "$port" "$@"

if [[ $refs != 0 ]]; then
	for mode in coalesce frame; do
		port=$(free_port)
		"$tmp/refserver" -mode "$mode" -addr "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
		server=$!
		bench "reference fixture, -mode $mode (pid $server)" "$port" "$@"
	done
fi
exit "$status"
