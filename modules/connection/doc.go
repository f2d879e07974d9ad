// Package connection owns one client socket (Conn): its outbound queue
// (outbox.go), the writer that drains it (write.go), its liveness timer,
// the Writers pool that runs writers, and the Registry of every live
// socket on this node.
//
// Concurrency: a Conn is shared by its reader (the WebSocket handler
// goroutine), broadcasters calling Send from any goroutine, its liveness
// timer and the Registry. The outbound queue and the writer's state sit
// behind the outbox's own lock; the user id and close callbacks behind
// Conn.mu; the activity clock is atomic; the reader alone touches the
// fields documented as its own. At most one writer runs per Conn: the
// push that finds the queue idle starts it, on the pool or on a goroutine
// of its own (Conn.spawn, the one place such a goroutine starts), and it
// exits when the queue is empty, so an idle socket costs no goroutine.
// The pool runs jobs and knows nothing of Conn.
//
// Locks are never nested: the Registry, a Conn, its outbox and the pool
// each take only their own. Nothing holds a lock while writing to the
// network.
//
// The package imports apps and pusher only.
package connection
