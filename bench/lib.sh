# bench/lib.sh: helpers the bench scripts source (from the repository's
# root). wait_listening reads $server (the pid of the server started last)
# and $tmp/server.log (its log).

# free_port prints a loopback port nothing answers on.
free_port() {
	local p
	for _ in $(seq 1 50); do
		p=$((20000 + RANDOM % 20000))
		if ! (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free port found" >&2
	return 1
}

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
