// Package e2e holds Fizz's end-to-end tests: real nodes on 127.0.0.1 started
// by test/harness, driven over real sockets by test/pusherclient (the
// WebSocket side, as pusher-js speaks it) and pusher-http-go (the HTTP API,
// as a Laravel or Go backend calls it). Each test starts its own node, so no
// state leaks between tests. The client helpers (harness.Dial, Subscribe,
// Expect, Flush…) and the webhook receiver (test/hookrecv) are shared with
// test/cluster.
package e2e
