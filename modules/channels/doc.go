// Package channels owns each app's channels on this node: who is subscribed
// to what, presence members, the last event of cache channels and the index
// of sockets by user. It mirrors Reverb's ChannelManager.
//
// Concurrency: Manager.mu guards the map of apps. Each app's state has its
// own lock, taken for writing by every change of membership, so a channel is
// created and removed atomically with its first and last subscriber. Each
// Channel has a lock for its subscriber snapshot and the state of each
// subscription. Lock order: Manager.mu, then appState.mu, then Channel.mu,
// then the lock of a Conn's outbound queue. Regular broadcasts copy a
// snapshot of the subscribers and send without a lock. Presence member
// events (rare) and Ready send while holding Channel.mu, so that a
// subscription's member list and the member events around it are queued
// in one consistent order; sends only queue bytes and never block.
//
// The package imports connection and pusher.
package channels
