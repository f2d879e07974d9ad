// Package channels owns each app's channels on this node: who is subscribed
// to what, presence members, the last event of cache channels and the index
// of sockets by user. It mirrors Reverb's ChannelManager.
//
// Concurrency: Manager.mu guards the map of apps. Each app's state has its
// own lock, taken for writing by every change of membership, so a channel is
// created and removed atomically with its first and last subscriber. Each
// Channel has a lock for its subscriber snapshot. Lock order: Manager.mu,
// then appState.mu, then Channel.mu, then connection.Conn's own lock. No
// lock is held while sending: broadcasts copy a snapshot first, and sends
// only queue bytes.
//
// The package imports connection, pusher and apps.
package channels
