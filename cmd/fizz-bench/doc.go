// Command fizz-bench is a load tool for Fizz and other Pusher Channels
// protocol 7 servers on this machine (issue 6).
//
//	go run ./cmd/fizz-bench -targets 127.0.0.1:8080 -n 10000 -c 1 -events 200 -pid PID
//
// It opens -n WebSocket connections spread round-robin over -targets (one
// node or the nodes of a cluster) and over -sources local addresses
// (127.0.0.1 to 127.0.0.x), subscribes socket i to channel i mod -c, then
// triggers events through the signed HTTP API (POST /apps/{id}/events), event
// s on channel s mod -c. With -rate 0 it triggers as fast as the server takes
// them, with at most -concurrency requests and -window undelivered events in
// flight; with -rate R it triggers R events per second, open loop. Each
// event's data carries its sequence number and send time, and every socket
// records when it received each one.
//
// The report gives the connect rate, deliveries per second, end-to-end
// latency (p50, p95, p99, max), the fan-out time of one event (first to last
// receipt, median over events), missing and duplicate deliveries and, with
// -pid, the server's CPU time per delivery, its write syscalls per delivery
// (how well it coalesces frames) and RSS per subscribed socket from /proc
// (summed over several pids for a cluster; RSS per socket is meaningful on a
// freshly started server). -json prints it as JSON; -events-csv writes one
// line per event. bench/README.md has examples and measured figures.
// The exit status is 0, 1 when the run could not start, 2 for bad flags, and
// 3 when a delivery was missing or duplicated.
//
// Bounds: every phase ends by -timeout (default 60s); targets must be
// loopback addresses; -n must fit the process's open-file limit
// (RLIMIT_NOFILE) with room to spare; the records it keeps are capped.
//
// Concurrency: one reader goroutine per socket reads whole frames into a
// reused buffer and parses only the event name or the two numbers it needs;
// it also sends the subscribe frame and answers pusher:ping, so every write
// to a socket comes from its reader (the close frame at the end uses
// WriteControl, which is safe alongside). Trigger requests run on
// -concurrency worker goroutines, or with -trigger-process in a second
// fizz-bench process (this binary with FIZZ_BENCH_SENDER=1, fed jobs on its
// stdin, answering on its stdout), so that on a saturated machine they do not
// wait behind this process's socket readers; the goroutine running the events
// phase owns the bookkeeping. All of them end before the report is written.
package main
