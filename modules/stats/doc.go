// Package stats owns Fizz's Prometheus metrics: the Stats value that holds
// every collector of the node, the Gauges computed at scrape time from the
// node's registries, and the Server that serves them on /metrics on a
// listener of its own (FIZZ_METRICS_HOST/FIZZ_METRICS_PORT, off when the
// port is 0). Every name starts with fizz_, besides the Go runtime (go_*)
// and process (process_*) collectors. No global registry is used: each
// Stats has its own *prometheus.Registry.
//
// The rest of Fizz reports to it in two ways. The edge (handlers) and the
// domain modules that may import stats (dispatcher, metrics) call the small
// methods of *Stats, which are safe on a nil *Stats. The packages that must
// not import stats (connection, scaling) declare an Observer interface that
// *Stats implements; fx hands *Stats to their constructors as that Observer
// (a socket gets it from the WebSocket handler that makes it).
//
// Hot path: counters are atomic. Nothing done once per delivery or per
// frame looks up a label: per-frame and per-batch counts are unlabelled,
// and labelled counts (per app, close code, route) are taken once per
// socket, event, HTTP request or rare failure.
//
// The Server also serves what is mounted on it with Handle before Start
// (the debug console); OnShutdown lets such routes end their streams when
// it stops.
//
// Concurrency: Stats, Gauges and Server are safe for concurrent use. Server
// runs one serving goroutine between Start and Stop. No lock of this
// package is held while calling out, except that Gauges.Collect takes the
// connection Registry's and channels Manager's own locks through their
// methods.
//
// The package imports prometheus/client_golang, apps, channels, connection,
// server (for its ListenError), scaling and prometheus/client_model; it is
// imported by handlers, dispatcher, metrics, membership, webhooks, console
// and app.
package stats
