// Package fanout is a benchmark fixture, not part of Fizz: a minimal Pusher
// Channels fan-out server that fizz-bench drives in the same run as Fizz, so
// that Fizz's CPU time per delivery can be compared with a baseline that does
// only the essential work (docs/architecture.md, "The write path").
//
// It speaks just enough of protocol 7 for fizz-bench: it sends
// pusher:connection_established, answers pusher:subscribe on public channels
// with pusher_internal:subscription_succeeded, answers pusher:ping, and
// broadcasts what POST /apps/{id}/events triggers, without checking the
// signature. There are no private or presence channels, no limits other than
// the per-socket queue, no liveness checks and no cluster.
//
// Both modes do the same work per event: the event is encoded and framed
// once, and the same bytes are queued to every subscriber's bounded queue
// (QueueSize frames; a full queue closes the socket as a slow consumer). Each
// socket has one reader goroutine and one long-lived writer goroutine, the
// shape of the gorilla chat example. They differ only in how the writer
// drains the queue:
//
//   - Coalesce: everything queued is copied into one pooled buffer and sent
//     with one write (one syscall), as Fizz's writer does.
//   - Frame: one write per frame.
//
// Concurrency: Server.mu guards the channel and socket registries; a
// broadcast holds it for reading while it queues (never while writing to the
// network). Each socket's queue is guarded by its own mutex. Lock order:
// Server.mu before socket.mu.
package fanout
