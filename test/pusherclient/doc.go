// Package pusherclient is a small Pusher Channels protocol 7 WebSocket client
// for Fizz's end-to-end tests. It speaks the protocol the way pusher-js does
// (pusher:subscribe, client events, pusher:ping and pusher:pong), keeps every
// frame the server sends in an unbounded inbox, and records the close code
// and reason when the server closes the socket.
//
// Tests synchronise with the server through Expect, which polls the inbox
// against a deadline, and never by sleeping. A client dialled with
// Options.Paused reads nothing until Resume, so the server's queue for it
// fills up as it would for a slow consumer.
//
// Concurrency: every method is safe for concurrent use. Each Client owns one
// reader goroutine (started by Dial or Resume), which Close stops and waits
// for. Writes are serialised by a mutex.
//
// The package imports modules/pusher for the channel auth signature and
// github.com/fasthttp/websocket for the transport.
package pusherclient
