package cluster_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

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

// TestRedisClusterShardFailover: on a Redis Cluster with a replica per
// master, the master holding the shared state (the slot of {channel},
// where presence lives) is killed while two nodes serve members and
// events. The cluster promotes its replica; the nodes reconnect,
// re-assert their shares, and serve events across nodes again with exact
// presence.
func TestRedisClusterShardFailover(t *testing.T) {
	t.Parallel()
	rc := harness.StartRedisClusterWithReplicas(t)
	cl := &cluster{channel: "fizz-test-shardfail", shards: rc}
	cl.redis = harness.NoRedisServer(t, "the shard failover test has no single redis-server")
	a, b := cl.start(t, "A", nil), cl.start(t, "B", nil)
	nodes := []*node{a, b}
	waitUp(t, a, b)

	const feed, room = "shardfail-feed", "presence-shardfail"
	probeA, probeB := harness.Dial(t, a), harness.Dial(t, b)
	harness.Subscribe(t, probeA, feed)
	harness.Subscribe(t, probeB, feed)
	obsA, obsB := harness.Dial(t, a), harness.Dial(t, b)
	join(t, obsA, room, "obsA")
	join(t, obsB, room, "obsB")
	join(t, harness.Dial(t, a), room, "onA")
	join(t, harness.Dial(t, b), room, "onB")
	waitCrossDelivery(t, a, probeB, feed)
	waitCrossDelivery(t, b, probeA, feed)
	harness.Flush(t, a, room, obsA, obsB)
	memberEvents(t, obsA, room)
	memberEvents(t, obsB, room)
	requireCounts(t, nodes, room, "obsA", "obsB", "onA", "onB")

	slot := int(scaling.KeySlot("{" + cl.channel + "}"))
	killed := time.Now()
	old := rc.KillSlotOwner(slot)
	t.Logf("master %s of the state's slot %d killed", old, slot)
	now := rc.WaitSlotFailover(slot, old, wait)
	promoted := time.Since(killed)
	waitCrossDelivery(t, a, probeB, feed)
	gap := time.Since(killed)
	waitCrossDelivery(t, b, probeA, feed)
	waitUp(t, a, b)
	t.Logf("slot %d on %s %s after the kill; events cross nodes again %s after the kill", slot, now, promoted.Round(time.Millisecond), gap.Round(time.Millisecond))

	requireCounts(t, nodes, room, "obsA", "obsB", "onA", "onB")
	join(t, harness.Dial(t, b), room, "late")
	requireMemberEvent(t, a, room, memberAdded, "late", obsA, obsB)
	for _, n := range nodes {
		assert.Equal(t, []string{"late", "obsA", "obsB", "onA", "onB"}, join(t, harness.Dial(t, n), room, "obsA"), "a fresh subscriber on %s", n)
	}
}
