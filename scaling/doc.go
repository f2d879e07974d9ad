// Package scaling carries Fizz's cluster contract: the Envelope that travels
// between nodes, the PubSubProvider that publishes and delivers envelopes,
// the Handler that consumes one kind of envelope, and the shared State that
// decides every cluster-wide transition of a channel.
//
// Two providers implement the contract: Local, an in-process loopback used
// when scaling is off, and Redis (pub/sub) when it is on. Both deliver every
// envelope to every node, the publisher included, in one order, on the
// provider's own goroutine. Consumers never know which one they have. The
// State goes with them: LocalState in memory, RedisState in Redis.
//
// Concurrency: LocalState has one lock and publishes member transitions
// while it holds it (Publish only queues). RedisState's assertMu orders
// re-asserts and is taken before the ShareSource's own lock (WithShare);
// recoverMu lets one Recover run at a time, and no goroutine holds it
// together with assertMu (the re-asserts a recovery waits for run on other
// goroutines); mu guards small fields only and is never held across I/O.
//
// scaling imports go-redis and the standard library, never modules/*.
package scaling
