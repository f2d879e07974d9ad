// Package dispatcher is Fizz's EventDispatcher: every event (an HTTP
// trigger, a batch item, a client event, a presence change) is published
// through scaling.PubSubProvider, and every node, the publisher included,
// delivers what it receives to its own subscribers. One code path serves
// one node or many.
//
// Dispatcher holds no mutable state of its own; it is safe for concurrent
// use. It imports scaling, channels, connection, pusher and stats.
package dispatcher
