#!/usr/bin/env bash
# bench/console.sh: does an open console slow delivery? It runs the
# 10,000-socket fizz-bench against a fresh Fizz node, alternately with
# nobody watching and with a viewer (curl -N) on the console feed, PAIRS
# times, and prints deliveries/s of every run, the medians and their ratio.
# Everything it starts is stopped on exit. The machine's other load moves
# single runs a lot: alternate, take several pairs, compare the medians.
#
#   bench/console.sh                # 3 pairs, N=10000, 300 events, 4 sources
#   PAIRS=5 bench/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."

pairs=${PAIRS:-3}
n=${BENCH_N:-10000}
events=${BENCH_EVENTS:-300}
tmp=$(mktemp -d)
server="" viewer="" port="" mport=""

cleanup() {
	[[ -n $viewer ]] && kill "$viewer" 2>/dev/null || true
	if [[ -n $server ]]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
ulimit -n 20000

go build -o "$tmp/fizz" .
go build -o "$tmp/fizz-bench" ./cmd/fizz-bench

# free_port and wait_listening.
# shellcheck source=bench/lib.sh
source bench/lib.sh

# start_node starts a fresh node on free ports, setting server, port and
# mport; it tries again when a port was taken meanwhile (other runs share
# the machine).
start_node() {
	for _ in 1 2 3 4 5; do
		port=$(free_port)
		mport=$(free_port)
		[[ $mport == "$port" ]] && continue
		FIZZ_SERVER_HOST=127.0.0.1 FIZZ_SERVER_PORT=$port FIZZ_METRICS_PORT=$mport FIZZ_LOG_LEVEL=warn \
			FIZZ_APP_ID=bench-app FIZZ_APP_KEY=bench-key FIZZ_APP_SECRET=bench-secret \
			"$tmp/fizz" >"$tmp/server.log" 2>&1 &
		server=$!
		if wait_listening "$port" 2>/dev/null && wait_listening "$mport" 2>/dev/null; then
			return 0
		fi
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
		server=""
	done
	echo "could not start a node" >&2
	return 1
}

# run WATCH: one fizz-bench run on a fresh node, with a viewer when WATCH
# is 1; prints deliveries/s.
run() {
	local rate
	start_node
	if [[ $1 == 1 ]]; then
		curl -sN "http://127.0.0.1:$mport/console/feed?app=bench-app" >"$tmp/feed.out" &
		viewer=$!
		sleep 0.5
	fi
	"$tmp/fizz-bench" -targets "127.0.0.1:$port" -app-id bench-app -app-key bench-key -app-secret bench-secret \
		-n "$n" -c 1 -events "$events" -sources 4 -pid "$server" -timeout 120s -json >"$tmp/report.json" 2>/dev/null || true
	rate=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["delivery"]["per_second"]))' "$tmp/report.json")
	if [[ -n $viewer ]]; then
		kill "$viewer" 2>/dev/null || true
		wait "$viewer" 2>/dev/null || true
		viewer=""
		echo "  viewer read $(grep -c '^data: ' "$tmp/feed.out") feed events, $(grep -c '"type":"dropped"' "$tmp/feed.out") dropped markers" >&2
	fi
	kill "$server" 2>/dev/null || true
	wait "$server" 2>/dev/null || true
	server=""
	echo "$rate"
}

off=() on=()
for i in $(seq 1 "$pairs"); do
	# Odd pairs run without the viewer first, even pairs with it first.
	if ((i % 2)); then
		a=$(run 0)
		b=$(run 1)
	else
		b=$(run 1)
		a=$(run 0)
	fi
	off+=("$a") on+=("$b")
	echo "pair $i: nobody watching $a deliveries/s, console open $b deliveries/s, ratio $(python3 -c "print(round($b/$a, 3))")"
done
python3 - "${off[*]}" "${on[*]}" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
mo, mw = statistics.median(off), statistics.median(on)
print(f"median: nobody watching {mo:.0f}, console open {mw:.0f}, ratio {mw/mo:.3f}")
PY
