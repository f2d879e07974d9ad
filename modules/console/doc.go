// Package console owns the data of the debug console: the live feed of
// what the nodes of the cluster see (connections, subscriptions, events,
// member changes, webhooks), and the per-second samples of each app's
// connections and messages over the last hour.
//
// The feed costs nothing while nobody watches. A hook point (in handlers,
// membership, webhooks) calls Feed.Watching, one atomic load, and builds and
// emits an Event only when it reports true. It is true on a node while a
// console is open somewhere in the cluster: the node serving a console
// publishes a watch envelope (KindWatch) every AnnounceEvery through the
// scaling PubSubProvider, and every node, that one included, keeps emitting
// for WatchFresh after the last announcement it heard.
//
// Emitted events wait in a bounded queue (QueueSize; past it they are
// counted as dropped) for the feed's publisher, which sends them in batches,
// one envelope (KindEvents) per batch, at most every BatchWait. Every node
// hands the batches it receives to its feed's goroutine (a bounded inbox:
// the delivery loop never decodes one), which gives them to its own
// viewers, each through a bounded channel: a viewer that does not keep up
// loses events, and is told how many. So a hook never waits, on one node or many, and the envelopes
// travel the same path as every other cluster message (Local loops them
// back on one node).
//
// Samples keeps, per app, one Sample a second for the last hour (a ring of
// History entries): this node's open sockets and the events it dispatched
// that second. The metrics package answers them in its cluster query, so a
// console sums every node's samples.
//
// Concurrency: Feed and Samples are safe for concurrent use. Feed.mu guards
// the viewers; Samples.mu the rings; neither is held while calling out
// (Feed.Run publishes without a lock). Feed.Run and Samples.Run are the
// only goroutines, each run by the fx app (lifecycle.Loop) until it stops.
//
// The package imports apps, connection, lifecycle, stats and scaling; it is
// imported by membership, webhooks, metrics, handlers and app.
package console
