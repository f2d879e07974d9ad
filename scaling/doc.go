// Package scaling carries Fizz's cluster contract: the Envelope that travels
// between nodes, the PubSubProvider that publishes and delivers envelopes,
// and the Handler that consumes one kind of envelope.
//
// Two providers implement the contract: Local, an in-process loopback used
// when scaling is off, and Redis (pub/sub) when it is on. Both deliver every
// envelope to every node, the publisher included, in one order, on the
// provider's own goroutine. Consumers never know which one they have.
//
// scaling imports go-redis and the standard library, never modules/*.
package scaling
