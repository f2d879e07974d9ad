// Package metrics answers questions about the whole cluster: connection
// counts, occupied channels, subscription and user counts, presence members.
// It mirrors Reverb's MetricsHandler: the asker publishes a query envelope,
// every node (the asker included) answers from its own state on the
// asker's reply channel, and the asker merges the answers, waiting for as
// many as Publish reported receivers, at most the configured timeout.
//
// Concurrency: Handler.mu guards the map of pending queries; each pending
// query has its own lock. Handler is safe for concurrent use. It imports
// scaling, channels, connection, console (whose per-second samples a query
// may ask for) and stats.
package metrics
