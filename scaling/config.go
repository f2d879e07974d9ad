package scaling

import "time"

// Config is the scaling part of Fizz's configuration.
type Config struct {
	// Enabled joins the cluster over Redis; otherwise Local is used.
	Enabled bool
	// Channel is the shared pub/sub channel and the prefix of every key.
	Channel string
	// RedisURL locates Redis: redis:// or rediss://, with user, password and db.
	RedisURL string
	// Timeout bounds the wait for other nodes' answers to a query.
	Timeout time.Duration
	// Lease is how long a silent node's share of the shared state
	// survives it (DefaultLease when zero).
	Lease time.Duration
	// Webhooks lists, per app id, the webhook event names some webhook of
	// the app wants: the shared state puts the transitions of those kinds
	// in the app's outbox, atomically with the change that decides them.
	Webhooks map[string][]string
	// SubscriptionCounts lists the apps whose non-presence channels
	// announce their subscription count to their subscribers: the shared
	// state publishes each new count (KindCount) with the change.
	SubscriptionCounts map[string]bool
}
