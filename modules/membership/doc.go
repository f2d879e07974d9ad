// Package membership is the one home of a socket's place in the cluster:
// admission (its app's connection quota), joining a channel, leaving one,
// and disconnecting. Each of these changes this node's channels
// (modules/channels) and the cluster's shared state (scaling.State)
// together, and the shared state decides the cluster-wide transitions the
// change causes (docs/architecture.md, "Transitions, decided once"):
// member transitions are published by the shared state itself; the others
// come back to the node that decided them, which alone counts them. The
// handlers parse a frame, call Membership and write the answer.
//
// Subscriptions to presence channels are written to the shared state one
// at a time, as they happen, because their answer (the member list) comes
// from it. Subscriptions to other channels change this node's channels; a
// counter then writes each touched channel's new count to the shared
// state from one goroutine, many channels in one round trip, and a
// subscription is answered once its count is written. Either way a socket joins this node's channels before
// the shared state hears of it and leaves them before too, so whoever
// hears of a change and asks any node finds it there.
//
// Membership also handles the presence envelopes the shared state
// publishes: each becomes member_added or member_removed for this node's
// subscribers, in step with each socket's member list
// (channels.Manager.BroadcastMember).
//
// Concurrency: Membership.mu is the share lock. Every change of this
// node's share (and its write to the shared state) runs under its read
// lock; WithShare, the re-assert of the whole share, takes it for
// writing, so it never overtakes a half-done change. Recover is always
// called without it. The counter's own lock only guards its set of
// touched channels. Lock order: Membership.mu, then the channels
// package's locks, then connection.Conn's.
//
// The package imports channels, connection, console, pusher, apps, stats and scaling.
package membership
