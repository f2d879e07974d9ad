package cluster_test

import (
	"testing"

	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/test/harness"
)

// TestRedisClusterReshard: on a Redis Cluster, the slot of the shard
// channel that carries a channel's events moves to another master while
// two nodes serve it. The old owner drops the nodes' subscription; they
// reconnect, subscribe where the slot is now, and events cross nodes
// again, in order.
func TestRedisClusterReshard(t *testing.T) {
	t.Parallel()
	rc := harness.StartRedisCluster(t)
	cl := &cluster{channel: "fizz-test-reshard", shards: rc}
	cl.redis = harness.NoRedisServer(t, "the reshard test has no single redis-server")
	a, b := cl.start(t, "A", nil), cl.start(t, "B", nil)
	waitUp(t, a, b)

	const feed = "reshard-feed"
	onA, onB := harness.Dial(t, a), harness.Dial(t, b)
	harness.Subscribe(t, onA, feed)
	harness.Subscribe(t, onB, feed)
	waitCrossDelivery(t, a, onB, feed)
	waitCrossDelivery(t, b, onA, feed)

	shard := scaling.ShardChannels(cl.channel, scaling.ClusterShards)[scaling.ShardOf(harness.AppID, feed, scaling.ClusterShards)]
	slot := int(scaling.KeySlot(shard))
	to := rc.MoveSlot(slot)
	t.Logf("slot %d (shard channel %s) moved to %s", slot, shard, to)

	took := waitCrossDelivery(t, a, onB, feed)
	waitCrossDelivery(t, b, onA, feed)
	waitUp(t, a, b)
	t.Logf("events cross nodes again %s after the move", took)
	harness.Flush(t, a, feed, onA, onB)
}
