package scaling

import "time"

// Config is the scaling part of Fizz's configuration.
type Config struct {
	// Enabled joins the cluster over Redis; otherwise Local is used.
	Enabled bool
	// Channel is the shared pub/sub channel and the prefix of every key.
	Channel string
	// RedisURL locates Redis: redis:// or rediss://, with user, password and db.
	// With RedisSentinels or RedisCluster it gives only the credentials (and
	// the db with Sentinel): its host and port are ignored.
	RedisURL string
	// RedisSentinels lists Sentinel host:port addresses; the master named
	// RedisMaster is found through them and followed across failovers.
	RedisSentinels []string
	RedisMaster    string
	// RedisCluster lists seed host:port addresses of a Redis Cluster:
	// events go over sharded pub/sub and every key carries one hash tag.
	RedisCluster []string
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
