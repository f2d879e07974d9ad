// Package connection owns one client socket (Conn): its outbound queue, the
// writer goroutine that drains it, its liveness timer, and the Registry of
// every live socket on this node.
//
// Concurrency: a Conn is shared by its reader (the WebSocket handler
// goroutine), broadcasters calling Send from any goroutine, its liveness
// timer and the Registry. All mutable state sits behind Conn.mu, except the
// activity clock (atomic) and the fields the reader alone touches
// (documented where declared). At most one writer goroutine runs per Conn;
// it is started by the Send that finds the queue idle and exits when the
// queue is empty, so an idle socket costs no goroutine of its own.
//
// Lock order: Registry.mu before Conn.mu. Nothing holds a lock while
// writing to the network.
//
// The package imports apps and pusher only.
package connection
