#!/usr/bin/env bash
# bench/topologies.sh: two Fizz nodes on one Redis against two Fizz nodes
# on a three-master Redis Cluster (sharded pub/sub), many channels. For
# each shape it starts the Redis servers and the two nodes on free loopback
# ports, runs fizz-bench over both nodes (triggers round-robin), and reports
# deliveries/s, the nodes' CPU per delivery (fizz-bench's -pid), Redis CPU
# per event (utime+stime of every redis-server from /proc, over the events
# phase) and the commands each Redis server ran in that phase (INFO
# commandstats; commands inside scripts count too), so the spread over the
# shards shows. Everything it starts is stopped on exit.
#
#   bench/topologies.sh                       # N=2000 sockets, 200 channels, 4000 events
#   BENCH_N=4000 BENCH_EVENTS=8000 bench/topologies.sh
#   bench/topologies.sh -rate 500             # extra flags go to fizz-bench
#
# Both shapes run on one machine: compare the ratio and the spread, not
# absolute speeds.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${BENCH_N:-2000}
channels=${BENCH_CHANNELS:-200}
events=${BENCH_EVENTS:-4000}
tmp=$(mktemp -d)
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

for bin in redis-server redis-cli; do
	command -v "$bin" >/dev/null || { echo "$bin is not on PATH" >&2; exit 1; }
done

echo "building into $tmp"
go build -o "$tmp/fizz" .
go build -o "$tmp/fizz-bench" ./cmd/fizz-bench

# free_port from bench/lib.sh; wait_listening is this script's own: it
# waits longer, and shows the logs of every process it started.
source bench/lib.sh

wait_listening() {
	for _ in $(seq 1 300); do
		(: </dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listening on port $1 after 30 s; the logs:" >&2
	tail -n 5 "$tmp"/*.log "$tmp"/*/log >&2 2>/dev/null || true
	return 1
}

# redis PORT [ARGS…]: start a redis-server on PORT, its pid in $redis_pid.
redis() {
	local port=$1 dir
	dir=$(mktemp -d -p "$tmp")
	redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --logfile "$dir/log" "${@:2}" &
	redis_pid=$!
	pids+=("$redis_pid")
	wait_listening "$port"
}

# cpu_ticks PID…: utime+stime of the pids, in clock ticks.
cpu_ticks() {
	local total=0 f
	for p in "$@"; do
		read -ra f <"/proc/$p/stat"
		total=$((total + f[13] + f[14]))
	done
	echo "$total"
}

# commands PORT: the calls of each command since CONFIG RESETSTAT, one line.
commands() {
	redis-cli -p "$1" info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ {sub("cmdstat_", "", $1); total += $3; out = out " " $1 "=" $3} END {print "total=" total " |" out}'
}

# run NAME REDIS_PORTS… -- ENV…: two nodes with ENV, fizz-bench over them.
run() {
	local name=$1
	shift
	local ports=()
	while [[ $1 != -- ]]; do ports+=("$1"); shift; done
	shift
	local redis_pids=("${shape_pids[@]}")
	local a b ma mb
	a=$(free_port); b=$(free_port); ma=$(free_port); mb=$(free_port)
	local node_pids=()
	for pair in "$a:$ma" "$b:$mb"; do
		env FIZZ_SERVER_HOST=127.0.0.1 FIZZ_SERVER_PORT="${pair%%:*}" FIZZ_METRICS_PORT="${pair##*:}" \
			FIZZ_APP_ID=bench-app FIZZ_APP_KEY=bench-key FIZZ_APP_SECRET=bench-secret FIZZ_APP_CLIENT_EVENTS_PER_SECOND=0 \
			FIZZ_SCALING_ENABLED=true FIZZ_LOG_LEVEL=warn "$@" "$tmp/fizz" >"$tmp/$name-${pair%%:*}.log" 2>&1 &
		node_pids+=($!)
		pids+=($!)
	done
	wait_listening "$a"; wait_listening "$b"
	for port in "$a" "$b"; do
		for _ in $(seq 1 100); do
			[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/up") == 200 ]] && break
			sleep 0.1
		done
	done
	local before="" after
	local -A pid_before=()
	echo
	echo "== $name: two nodes, $n sockets, $channels channels, $events events"
	# The Redis figures cover the events phase only: they start when
	# fizz-bench says it is triggering (the sockets are subscribed).
	while IFS= read -r line; do
		echo "$line"
		if [[ -z $before && $line == triggering* ]]; then
			for p in "${ports[@]}"; do redis-cli -p "$p" config resetstat >/dev/null; done
			before=$(cpu_ticks "${redis_pids[@]}")
			for p in "${redis_pids[@]}"; do pid_before[$p]=$(cpu_ticks "$p"); done
		fi
	done < <("$tmp/fizz-bench" -targets "127.0.0.1:$a,127.0.0.1:$b" -trigger rr -trigger-process -app-id bench-app -app-key bench-key -app-secret bench-secret \
		-n "$n" -c "$channels" -events "$events" -pid "${node_pids[0]},${node_pids[1]}" -timeout 120s "${extra[@]}" 2>&1 || true)
	after=$(cpu_ticks "${redis_pids[@]}")
	local hz
	hz=$(getconf CLK_TCK)
	awk -v d="$((after - before))" -v hz="$hz" -v e="$events" -v name="$name" \
		'BEGIN {printf "redis CPU (%s): %.2f s over all servers, %.1f µs per event\n", name, d / hz, d / hz / e * 1e6}'
	for i in "${!ports[@]}"; do
		local pid=${redis_pids[$i]}
		awk -v d="$(($(cpu_ticks "$pid") - pid_before[$pid]))" -v hz="$hz" -v e="$events" -v port="${ports[$i]}" \
			'BEGIN {printf "redis :%s CPU %.2f s, %.1f µs per event; ", port, d / hz, d / hz / e * 1e6}'
		echo "commands: $(commands "${ports[$i]}")"
	done
	for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}

extra=("$@")

# One Redis.
single=$(free_port)
redis "$single"
shape_pids=("$redis_pid")
run single "$single" -- REDIS_URL="redis://127.0.0.1:$single/0"
kill "${shape_pids[@]}"

# A three-master Redis Cluster.
shape_pids=()
cluster_ports=()
for _ in 1 2 3; do
	p=$(free_port)
	bus=$(free_port)
	redis "$p" --cluster-enabled yes --cluster-config-file "$tmp/nodes-$p.conf" --cluster-port "$bus" --cluster-node-timeout 2000
	shape_pids+=("$redis_pid")
	cluster_ports+=("$p")
done
redis-cli --cluster create "${cluster_ports[@]/#/127.0.0.1:}" --cluster-yes >/dev/null
for _ in $(seq 1 100); do
	ok=1
	for p in "${cluster_ports[@]}"; do
		redis-cli -p "$p" cluster info | grep -q cluster_state:ok || ok=0
	done
	[[ $ok == 1 ]] && break
	sleep 0.1
done
seeds=$(printf '127.0.0.1:%s,' "${cluster_ports[@]}")
run cluster "${cluster_ports[@]}" -- FIZZ_REDIS_CLUSTER="${seeds%,}"
