package cluster_test

import (
	"testing"
	"time"

	"github.com/fizz-server/fizz/app"
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
	cl := onTopology(t, "fizz-test-reshard", rc)
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

// TestRedisClusterShardFailover: on a Redis Cluster with a replica per
// master, the master holding the shared state (the slot of {channel},
// where presence lives) is killed while two nodes serve members and
// events. The cluster promotes its replica; the nodes reconnect,
// re-assert their shares, and serve events across nodes again with exact
// presence.
func TestRedisClusterShardFailover(t *testing.T) {
	t.Parallel()
	rc := harness.StartRedisClusterWithReplicas(t)
	cl := onTopology(t, "fizz-test-shardfail", rc)
	outlived := func(c *app.Config) { c.Scaling.Lease = scaling.DefaultLease } // the lease outlives the failover (see TestSentinelFailover)
	a, b := cl.start(t, "A", outlived), cl.start(t, "B", outlived)
	waitUp(t, a, b)
	const feed = "shardfail-feed"
	r := newRoom(t, a, b, "presence-shardfail", feed)

	slot := int(scaling.KeySlot("{" + cl.channel + "}"))
	killed := time.Now()
	old := rc.KillSlotOwner(slot)
	t.Logf("master %s of the state's slot %d killed", old, slot)
	now := rc.WaitSlotFailover(slot, old, wait)
	promoted := time.Since(killed)
	waitCrossDelivery(t, a, r.probeB, feed)
	gap := time.Since(killed)
	waitCrossDelivery(t, b, r.probeA, feed)
	waitUp(t, a, b)
	t.Logf("slot %d on %s %s after the kill; events cross nodes again %s after the kill", slot, now, promoted.Round(time.Millisecond), gap.Round(time.Millisecond))

	r.requireExact(t)
}
