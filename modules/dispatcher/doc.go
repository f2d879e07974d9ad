// Package dispatcher is Fizz's EventDispatcher: every event (an HTTP
// trigger, a batch item, a client event) is published through
// scaling.PubSubProvider, and every node, the publisher included, delivers
// what it receives to its own subscribers. One code path serves one node
// or many. (Presence member events are published by the shared state that
// decides them, and delivered by modules/membership.)
//
// Dispatcher holds no mutable state of its own; it is safe for concurrent
// use. It imports scaling, channels, connection, pusher and stats.
package dispatcher
