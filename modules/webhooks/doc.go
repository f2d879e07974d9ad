// Package webhooks sends each app's webhooks as Pusher does: a signed POST
// of {"time_ms", "events"} to every webhook that wants the event, retried
// with exponential back-off until Config.RetryFor, once for the whole
// cluster.
//
// The events come from the cluster's outbox (scaling.Outbox): the shared
// state puts there the transitions it decides (channel_occupied,
// channel_vacated, member_added, member_removed, subscription_count),
// atomically with the change; ClientEvent and CacheMiss put there the
// events no state change decides. One node at a time, the outbox's leader,
// runs the Sender; the others only produce. An event leaves the outbox
// once every webhook that wants it has a 2xx (or gave up), so a leader
// that dies leaves what it had not finished to the next.
//
// Order and flaps. The Sender keeps one queue per webhook and per order
// key, and sends a key's next event only once the one before it is done:
// a channel's occupied/vacated events are one key, each member of a
// channel is one key, each socket's client events on a channel are one
// key, a channel's subscription counts are one key. So what a receiver
// hears of one channel's occupancy, or of one member, alternates as the
// transitions did, retries included, while different keys go side by
// side. channel_vacated and member_removed wait Config.LeaveDelay (from
// the moment of the transition); the occupied or added event that undoes
// one while it waits drops both, so a page reload sends nothing. A
// channel's subscription_count goes at most once a second, the last count
// always.
//
// Concurrency: while leading, one goroutine reads the outbox and renews
// the lead, one schedules (it alone owns the queues), and each POST runs
// on a goroutine of its own, at most maxInFlight per webhook; all of them
// are waited for before Run returns. A slow or dead receiver only fills
// the Sender's bounded backlog; the outbox holds the rest (OutboxLimit),
// and nothing on the path of events to sockets waits for either.
//
// The package imports apps, console, pusher, stats and scaling.
package webhooks
