package scaling_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/test/harness"
)

// byChannel groups transitions by channel, in order.
func byChannel(ts []scaling.Transition) map[string][]scaling.Transition {
	out := map[string][]scaling.Transition{}
	for _, tr := range ts {
		out[tr.Channel] = append(out[tr.Channel], tr)
	}
	return out
}

// requireChange checks the transitions of one change of channel that
// adds or removes several members, in any order: the kinds in want, in
// order, one Seq, the subscription count wantCount, and the users of the
// member transitions. It returns the Seq.
func requireChange(t *testing.T, ts []scaling.Transition, channel string, want []scaling.TransitionKind, wantCount int, wantUsers []string) uint64 {
	t.Helper()
	require.Equal(t, want, kinds(ts), "the transitions of %s: %+v", channel, ts)
	var users []string
	for _, tr := range ts {
		assert.Equal(t, ts[0].Seq, tr.Seq, "one change, one Seq: %+v", tr)
		assert.Equal(t, testApp, tr.AppID)
		assert.Equal(t, channel, tr.Channel)
		if tr.Kind == count {
			assert.Equal(t, wantCount, tr.Count)
		}
		if tr.Kind == added || tr.Kind == removed {
			users = append(users, tr.UserID)
		}
	}
	assert.ElementsMatch(t, wantUsers, users)
	require.NotZero(t, ts[0].Seq)
	return ts[0].Seq
}

// TestRedisStateReap: a node stops renewing its lease; one of the two
// survivors removes its share, once. The members it held are published
// gone once, by the reaper, and the channel transitions go to the
// reaper's decided callback, one Seq per channel. While reaped, the node
// finds its share lost. When it comes back (it was only paused) and
// re-asserts, its members are announced added again.
func TestRedisStateReap(t *testing.T) {
	const shared, solo, news = "presence-reap", "presence-solo", "news"
	c := newRedisCluster(t)
	dead, s1, s2 := c.running(t, nodeOptions{}), c.running(t, nodeOptions{}), c.running(t, nodeOptions{})
	var before uint64
	for _, u := range []string{"gone1", "gone2"} {
		snap, _ := dead.mustJoin(t, shared, u)
		before = max(before, snap.Seq)
	}
	snap, _ := s1.mustJoin(t, shared, "stays")
	before = max(before, snap.Seq)
	dead.mustJoin(t, solo, "alone")
	dead.mustSetSubs(t, news, 2)

	dead.stop() // drops the lease
	c.waitListed(t, dead.node, false)
	_, err := dead.state.PresenceMembers(t.Context(), testApp, shared)
	require.ErrorIs(t, err, scaling.ErrShareLost, "a reaped node's share is lost")

	// Let every survivor try to reap: two more heartbeats each.
	c.waitHeartbeats(t, s1.node, 2)
	c.waitHeartbeats(t, s2.node, 2)
	reaped := append(s1.decided.all(), s2.decided.all()...)
	got := byChannel(reaped)
	require.Len(t, got, 3, "the reap changed three channels, once: %+v", reaped)
	reapSeq := requireChange(t, got[shared], shared, []scaling.TransitionKind{removed, removed, count}, 1, []string{"gone1", "gone2"})
	assert.Greater(t, reapSeq, before, "the reap is a change after every earlier one")
	requireChange(t, got[solo], solo, []scaling.TransitionKind{removed, vacated, count}, 0, []string{"alone"})
	requireChange(t, got[news], news, []scaling.TransitionKind{vacated, count}, 0, nil)

	after := s1.members(t, shared)
	assert.Equal(t, []string{"stays"}, ids(after.Members))
	assert.Equal(t, reapSeq, after.Seq, "the list has the reap")
	heard := s1.heardUntilFence(t)
	var reapNews []memberNews
	for _, n := range heard {
		if !n.Added {
			reapNews = append(reapNews, n)
		}
	}
	assert.ElementsMatch(t, newsOf(reaped), reapNews, "each member of the dead node is published gone once")
	for _, e := range s1.heard.all() {
		if n := decodeNews(t, e); !n.Added && n.Channel != fenceChannel {
			assert.Contains(t, []string{s1.node, s2.node}, e.Origin, "published by the reaper")
		}
	}
	assert.Empty(t, dead.decided.all())

	// The node was only paused: it re-asserts its share, and what it
	// holds is announced back, numbered after the reap.
	heardBefore := len(heard)
	dead.run(t)
	require.Eventually(t, func() bool { return len(dead.decided.all()) > 0 }, stateWait, stateTick, "the node re-asserts")
	back := byChannel(dead.decided.all())
	require.Len(t, back, 3, "%+v", dead.decided.all())
	backSeq := requireChange(t, back[shared], shared, []scaling.TransitionKind{added, added, count}, 3, []string{"gone1", "gone2"})
	assert.Greater(t, backSeq, reapSeq)
	requireChange(t, back[solo], solo, []scaling.TransitionKind{occupied, added, count}, 1, []string{"alone"})
	requireChange(t, back[news], news, []scaling.TransitionKind{occupied, count}, 2, nil)
	assert.Equal(t, []string{"gone1", "gone2", "stays"}, ids(s2.members(t, shared).Members))
	backNews := s1.heardUntilFence(t)[heardBefore:]
	assert.ElementsMatch(t, newsOf(dead.decided.all()), backNews, "the members that came back are published added once")
	for _, n := range backNews {
		assert.JSONEq(t, `null`, n.UserInfo, "the share's user_info")
	}
}

// TestRedisStateDataLoss: Redis loses every key while three nodes run.
// Every change, and the read of a member list, then fails with
// ErrShareLost and changes nothing. Recover on the node that got the
// error has every node re-assert its share: the state is whole again
// without a member announced, since none ever left, and the numbers never
// go back, even when Redis's clock is behind the numbers the nodes saw.
func TestRedisStateDataLoss(t *testing.T) {
	const channel, news = "presence-loss", "news"
	tests := []struct {
		name string
		// ahead is how far the largest number node a saw is ahead of the
		// last one Redis handed out (a Redis clock that stepped back).
		ahead uint64
	}{
		{name: "same clock", ahead: 0},
		{name: "the clock stepped back an hour", ahead: uint64(time.Hour / time.Microsecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			c := newRedisCluster(t)
			// A long lease: no heartbeat makes the state whole before
			// the test has looked at it.
			opts := nodeOptions{lease: time.Minute}
			a, b, n3 := c.running(t, opts), c.running(t, opts), c.running(t, opts)
			_, ts := a.mustJoin(t, channel, "alice")
			seen := ts[0].Seq + tt.ahead
			a.share.saw(channel, seen)
			b.mustJoin(t, channel, "bob")
			n3.mustSetSubs(t, news, 2)
			for _, n := range []*redisNode{a, b} {
				ok, err := n.addConn(3)
				require.NoError(t, err)
				require.True(t, ok)
			}
			heardBefore := len(b.heardUntilFence(t))

			require.NoError(t, c.rc.FlushAll(ctx).Err())

			lost := []struct {
				name string
				op   func() error
			}{
				{name: "join", op: func() error { _, _, err := a.join(channel, "carol", nil, 0); return err }},
				{name: "leave", op: func() error { _, err := a.leave(channel, "alice"); return err }},
				{name: "members", op: func() error { _, err := a.state.PresenceMembers(ctx, testApp, channel); return err }},
				{name: "count", op: func() error {
					_, err := a.setSubs(scaling.ChannelCount{AppID: testApp, Channel: news, Subscriptions: 1})
					return err
				}},
				{name: "add connection", op: func() error { _, err := a.addConn(0); return err }},
				{name: "remove connection", op: func() error { return a.state.RemoveConnection(ctx, testApp) }},
			}
			for _, op := range lost {
				assert.ErrorIs(t, op.op(), scaling.ErrShareLost, op.name)
			}
			assert.Zero(t, c.keys(t), "nothing was written")

			require.NoError(t, a.state.Recover(ctx))

			assert.True(t, c.exists(t, c.prefix+":intact"), "the state is marked whole")
			got := b.members(t, channel)
			assert.Equal(t, []string{"alice", "bob"}, ids(got.Members), "every node's share is back")
			ok, err := a.addConn(3)
			require.NoError(t, err)
			assert.True(t, ok, "two sockets counted before, a third fits")
			ok, err = b.addConn(3)
			require.NoError(t, err)
			assert.False(t, ok, "the count of every node is back")
			ts = n3.mustSetSubs(t, news, 3)
			requireOneChange(t, ts, news, "", []scaling.TransitionKind{count}, 3)

			snap, ts := a.mustJoin(t, channel, "carol")
			requireOneChange(t, ts, channel, "carol", []scaling.TransitionKind{added, count}, 3)
			assert.Equal(t, []string{"alice", "bob", "carol"}, ids(snap.Members))
			assert.Greater(t, snap.Seq, seen, "numbered above every number the nodes saw")
			assert.Equal(t, []memberNews{newsOf(ts)[0]}, b.heardUntilFence(t)[heardBefore:],
				"no member that was there all along is announced")
			for _, n := range []*redisNode{a, b, n3} {
				for _, tr := range n.decided.all() {
					assert.Equal(t, count, tr.Kind, "a re-assert after a loss decides no member or occupancy change: %+v", tr)
				}
			}

			ttl, err := c.rc.PTTL(ctx, c.prefix+":ch:"+testApp+":"+channel+":seq").Result()
			require.NoError(t, err)
			assert.Positive(t, ttl, "the counter expires")
			assert.LessOrEqual(t, ttl, time.Hour)
		})
	}
}

// TestRedisStateHeartbeatRecovers: after a data loss nobody notices by a
// change, the heartbeat makes the state whole: the shares are back and
// nobody is announced.
func TestRedisStateHeartbeatRecovers(t *testing.T) {
	const channel = "presence-heartbeat"
	c := newRedisCluster(t)
	a, b := c.running(t, nodeOptions{}), c.running(t, nodeOptions{})
	a.mustJoin(t, channel, "alice")
	b.mustJoin(t, channel, "bob")
	heardBefore := len(a.heardUntilFence(t))

	require.NoError(t, c.rc.FlushAll(t.Context()).Err())

	c.waitIntact(t)
	require.Eventually(t, func() bool {
		snap, err := a.state.PresenceMembers(t.Context(), testApp, channel)
		return err == nil && len(snap.Members) == 2
	}, stateWait, stateTick, "both shares are back")
	assert.Empty(t, a.heardUntilFence(t)[heardBefore:], "no member is announced")
}

// TestRedisStateLeaveDuringOutage: a node's link is down when a member
// leaves, so the leave cannot be written; meanwhile Redis loses its data
// and comes back with the other node's share only. Once the node is back,
// the leave is announced, once, numbered as the channel's latest change.
func TestRedisStateLeaveDuringOutage(t *testing.T) {
	const channel = "presence-outage"
	c := newRedisCluster(t)
	proxy := startLinkProxy(t, c.rd.Addr)
	a, other := c.running(t, nodeOptions{url: proxy.URL()}), c.running(t, nodeOptions{})
	_, ts := a.mustJoin(t, channel, "leaver")
	before := ts[0].Seq
	other.mustJoin(t, channel, "stays")
	heardBefore := len(other.heardUntilFence(t))

	proxy.block()
	require.Eventually(t, func() bool { return !a.provider.Up() }, stateWait, stateTick, "a's link goes down")
	ts, err := a.leave(channel, "leaver")
	require.Error(t, err, "the link is down")
	assert.NotErrorIs(t, err, scaling.ErrShareLost)
	assert.Empty(t, ts)
	require.NoError(t, c.rc.FlushAll(t.Context()).Err())
	proxy.unblock()

	var gone []memberNews
	require.Eventually(t, func() bool {
		gone = nil
		for _, e := range other.heard.all()[heardBefore:] {
			if n := decodeNews(t, e); n.Channel == channel {
				gone = append(gone, n)
			}
		}
		return len(gone) > 0
	}, stateWait, stateTick, "the leave is announced")
	c.waitHeartbeats(t, a.node, 2)
	c.waitHeartbeats(t, other.node, 2)
	var news []memberNews
	for _, n := range other.heardUntilFence(t)[heardBefore:] {
		if n.Channel == channel {
			news = append(news, n)
		}
	}
	require.Len(t, news, 1, "announced once, nothing about the member that stayed: %v", news)
	assert.Equal(t, "leaver", news[0].UserID)
	assert.False(t, news[0].Added)
	assert.Greater(t, news[0].Seq, before)
	listed := other.members(t, channel)
	assert.Equal(t, []string{"stays"}, ids(listed.Members))
	assert.Equal(t, listed.Seq, news[0].Seq, "the announcement is the channel's latest change")
	assert.Equal(t, newsOf(a.decided.all()), news, "and it goes to a's decided callback")
}

// TestRedisStateLeaveDuringLinkBlip: a node's link drops for a moment
// while a member leaves; Redis keeps its data. The leave is announced
// once when the node is back, however it learns of it (the re-assert of
// its share or the leaves it remembered).
func TestRedisStateLeaveDuringLinkBlip(t *testing.T) {
	const channel = "presence-blip"
	c := newRedisCluster(t)
	proxy := startLinkProxy(t, c.rd.Addr)
	a, other := c.running(t, nodeOptions{url: proxy.URL()}), c.running(t, nodeOptions{})
	a.mustJoin(t, channel, "leaver")
	other.mustJoin(t, channel, "stays")
	heardBefore := len(other.heardUntilFence(t))

	proxy.block()
	require.Eventually(t, func() bool { return !a.provider.Up() }, stateWait, stateTick, "a's link goes down")
	_, err := a.leave(channel, "leaver")
	require.Error(t, err, "the link is down")
	proxy.unblock()

	require.Eventually(t, func() bool {
		snap, err := other.state.PresenceMembers(t.Context(), testApp, channel)
		_, in := snap.Members["leaver"]
		return err == nil && !in
	}, stateWait, stateTick, "the leaver is gone from the list")
	c.waitHeartbeats(t, a.node, 2)
	var news []memberNews
	for _, n := range other.heardUntilFence(t)[heardBefore:] {
		if n.Channel == channel {
			news = append(news, n)
		}
	}
	assert.Len(t, news, 1, "the leave is published once: %v", news)
	var decided []scaling.Transition
	for _, tr := range append(a.decided.all(), other.decided.all()...) {
		if tr.Kind == removed {
			decided = append(decided, tr)
		}
	}
	assert.Len(t, decided, 1, "and decided once in the cluster: %+v", decided)
}

// TestRedisStatePausedNodeRecovers: a node stops renewing its lease for a
// while (a long pause) and a survivor reaps it. Its next change finds its
// share lost; Recover has it re-assert (its members are announced back,
// since the reap announced them gone) and the change, tried again, works.
func TestRedisStatePausedNodeRecovers(t *testing.T) {
	const channel = "presence-paused"
	c := newRedisCluster(t)
	// A long lease: the paused node's own heartbeat does not come back
	// before the test asks it to recover.
	paused, survivor := c.running(t, nodeOptions{lease: time.Minute}), c.running(t, nodeOptions{})
	paused.mustJoin(t, channel, "u1")
	survivor.mustJoin(t, channel, "stays")
	heardBefore := len(survivor.heardUntilFence(t))

	require.NoError(t, c.rc.Del(t.Context(), c.prefix+":lease:"+paused.node).Err()) // the lease ran out
	c.waitListed(t, paused.node, false)
	_, err := paused.leave(channel, "u1")
	require.ErrorIs(t, err, scaling.ErrShareLost)
	require.NoError(t, paused.state.Recover(t.Context()))
	left := paused.mustLeave(t, channel, "u1")

	requireOneChange(t, left, channel, "u1", []scaling.TransitionKind{removed, count}, 1)
	var got []string
	var last uint64
	for _, n := range survivor.heardUntilFence(t)[heardBefore:] {
		got = append(got, fmt.Sprintf("%s added=%v", n.UserID, n.Added))
		assert.Greater(t, n.Seq, last)
		last = n.Seq
	}
	assert.Equal(t, []string{"u1 added=false", "u1 added=true", "u1 added=false"}, got,
		"reaped, back with the re-assert, then the leave")
	assert.Equal(t, left[0].Seq, last)
	assert.Equal(t, []string{"stays"}, ids(survivor.members(t, channel).Members))
}

// TestRedisStateRefusedJoinIsNoFailedWrite: a join refused because the
// channel is full wrote nothing and failed nothing, so the node's next
// heartbeats only renew its lease; they do not re-assert its whole share.
func TestRedisStateRefusedJoinIsNoFailedWrite(t *testing.T) {
	const channel = "presence-full"
	c := newRedisCluster(t)
	n := c.running(t, nodeOptions{})
	n.mustJoin(t, channel, "u1")
	c.waitHeartbeats(t, n.node, 2)
	asserted := n.share.asserts.Load()

	_, _, err := n.join(channel, "u2", nil, 1)
	require.ErrorIs(t, err, scaling.ErrMembersLimit)
	c.waitHeartbeats(t, n.node, 2)

	assert.Equal(t, asserted, n.share.asserts.Load(), "the share was re-asserted after a refused join")
}

// TestRedisStateLinkDown: while a node's link is down, its changes and
// Recover fail at once instead of waiting; once it is back, Recover works.
func TestRedisStateLinkDown(t *testing.T) {
	c := newRedisCluster(t)
	proxy := startLinkProxy(t, c.rd.Addr)
	a := c.running(t, nodeOptions{url: proxy.URL(), timeout: time.Minute})

	proxy.block()
	require.Eventually(t, func() bool { return !a.provider.Up() }, stateWait, stateTick, "the link goes down")
	recovered := make(chan error, 1)
	go func() { recovered <- a.state.Recover(context.Background()) }()
	select {
	case err := <-recovered:
		require.ErrorIs(t, err, scaling.ErrNotPublished, "nobody can be asked to re-assert")
	case <-time.After(stateWait):
		require.FailNow(t, "Recover waits while the link is down")
	}
	_, _, err := a.join("presence-down", "u1", nil, 0)
	require.Error(t, err)
	_, err = a.setSubs(scaling.ChannelCount{AppID: testApp, Channel: "news", Subscriptions: 1})
	require.Error(t, err)
	_, err = a.addConn(0)
	require.Error(t, err)

	proxy.unblock()
	require.Eventually(t, a.provider.Up, stateWait, stateTick, "the link comes back")
	require.NoError(t, c.rc.Del(t.Context(), c.prefix+":intact").Err())
	require.NoError(t, a.state.Recover(t.Context()))
	assert.True(t, c.exists(t, c.prefix+":intact"))
	a.mustJoin(t, "presence-down", "u1")
}

// TestRedisStateRecoverDoesNotWaitForever: a node that hears the request
// but does not run its state never answers; Recover carries on after the
// cluster timeout.
func TestRedisStateRecoverDoesNotWaitForever(t *testing.T) {
	c := newRedisCluster(t)
	a := c.running(t, nodeOptions{timeout: 300 * time.Millisecond})
	c.start(t, nodeOptions{}) // subscribed, never running

	require.NoError(t, c.rc.Del(t.Context(), c.prefix+":intact").Err())
	require.NoError(t, a.state.Recover(t.Context()))

	assert.True(t, c.exists(t, c.prefix+":intact"))
}

// TestRedisStateReloadsFlushedScripts: Redis forgot its scripts (SCRIPT
// FLUSH, as after a restart); the changes load them again.
func TestRedisStateReloadsFlushedScripts(t *testing.T) {
	c := newRedisCluster(t)
	s := c.add(t)
	s.mustSetSubs(t, "news", 1)
	s.mustJoin(t, "presence-scripts", "u1")

	require.NoError(t, c.rc.ScriptFlush(t.Context()).Err())

	ts := s.mustSetSubs(t, "news", 2)
	requireOneChange(t, ts, "news", "", []scaling.TransitionKind{count}, 2)
	_, ts = s.mustJoin(t, "presence-scripts", "u2")
	requireOneChange(t, ts, "presence-scripts", "u2", []scaling.TransitionKind{added, count}, 2)
	ts = s.mustLeave(t, "presence-scripts", "u2")
	requireOneChange(t, ts, "presence-scripts", "u2", []scaling.TransitionKind{removed, count}, 1)
}

// TestRedisStateReassertsAfterReconnect: a Sentinel failover promotes a
// replica that may lack the last writes, while the lease and the intact
// mark made it across. When the link comes back, the node re-asserts its
// share at once: what the new master lacks is written back.
func TestRedisStateReassertsAfterReconnect(t *testing.T) {
	c := newRedisCluster(t)
	if !c.rd.Real() {
		t.Skip("CLIENT KILL needs redis-server")
	}
	a := c.running(t, nodeOptions{lease: time.Minute}) // no heartbeat during the test
	a.mustJoin(t, "presence-failover", "u1")
	members := c.prefix + ":ch:" + testApp + ":presence-failover:members"
	require.True(t, c.exists(t, members))

	// The writes the replica never received.
	keys, err := c.rc.Keys(t.Context(), c.prefix+":ch:"+testApp+":presence-failover:*").Result() // no glob character in either
	require.NoError(t, err)
	require.NoError(t, c.rc.Del(t.Context(), keys...).Err())
	require.True(t, c.exists(t, c.prefix+":lease:"+a.node), "the lease made it across")
	// The failover: the node's subscription connection is cut.
	require.NoError(t, c.rc.ClientKillByFilter(t.Context(), "TYPE", "pubsub").Err())

	require.Eventually(t, func() bool { return c.exists(t, members) }, stateWait, stateTick,
		"the node re-asserts its share once its link is back")
	in, err := c.rc.HExists(t.Context(), members, "u1").Result()
	require.NoError(t, err)
	assert.True(t, in, "u1 is a member again")
}

// TestRedisPublishTimeoutIsNotDeliveredTwice: a PUBLISH sent to a stalled
// Redis times out, but Redis delivers it once it resumes; the publisher
// must not have delivered a local copy too.
func TestRedisPublishTimeoutIsNotDeliveredTwice(t *testing.T) {
	rd := harness.StartRedis(t)
	if !rd.Real() {
		t.Skip("pausing Redis needs redis-server")
	}
	cfg := scaling.Config{Enabled: true, RedisURL: rd.URL, Channel: "fizz-publish-timeout"}
	r, err := scaling.NewRedis(cfg, harness.Logger(t), nil)
	require.NoError(t, err)
	var got atomic.Int64
	require.NoError(t, r.Subscribe(context.Background(), func(_ context.Context, e scaling.Envelope) {
		if e.Kind == "probe" {
			got.Add(1)
		}
	}))
	t.Cleanup(func() { _ = r.Close() })
	require.Eventually(t, r.Up, stateWait, stateTick, "the link comes up")
	// A first PUBLISH leaves an open connection, so that the next one is
	// written to Redis at once rather than waiting for a new connection.
	_, err = r.Publish(context.Background(), scaling.Envelope{Kind: "warm-up"})
	require.NoError(t, err)

	paused := make(chan struct{})
	go func() {
		defer close(paused)
		rd.Pause(1500 * time.Millisecond) // longer than a command's timeout, shorter than the link's ping
	}()
	time.Sleep(100 * time.Millisecond) // the pause has begun
	_, err = r.Publish(context.Background(), scaling.Envelope{Kind: "probe"})
	require.Error(t, err, "no answer from a stalled Redis")
	assert.NotErrorIs(t, err, scaling.ErrLocalOnly, "not delivered locally")
	<-paused
	require.Eventually(t, func() bool { return got.Load() == 1 }, stateWait, stateTick, "Redis delivers it once it resumes")
	time.Sleep(200 * time.Millisecond) // a second copy would be here by now
	assert.Equal(t, int64(1), got.Load(), "delivered once")
}

// TestRedisWaiting: envelopes received while one is being handled are
// counted as waiting behind it, until they are handed over in turn.
func TestRedisWaiting(t *testing.T) {
	rd := harness.StartRedis(t)
	cfg := scaling.Config{Enabled: true, RedisURL: rd.URL, Channel: "fizz-waiting"}
	r, err := scaling.NewRedis(cfg, harness.Logger(t), nil)
	require.NoError(t, err)
	release := make(chan struct{})
	var got atomic.Int64
	require.NoError(t, r.Subscribe(context.Background(), func(_ context.Context, e scaling.Envelope) {
		if e.Kind == "probe" && got.Add(1) == 1 {
			<-release
		}
	}))
	t.Cleanup(func() { _ = r.Close() })
	require.Eventually(t, r.Up, stateWait, stateTick, "the link comes up")
	assert.Zero(t, r.Waiting())
	for range 3 {
		_, err := r.Publish(context.Background(), scaling.Envelope{Kind: "probe"})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return r.Waiting() == 2 }, stateWait, stateTick, "two wait behind the first")
	close(release)
	require.Eventually(t, func() bool { return got.Load() == 3 && r.Waiting() == 0 }, stateWait, stateTick)
}

// TestRedisRecoverWaitsForAReconnectingPeer: a node whose subscription
// is down when a recovery asks the cluster to re-assert misses the
// request; the recovery asks again until that peer (listed at the last
// reap) has answered, so the leaves it then announces reach the peer too.
// Without it the recovery went on at once, and a peer back a moment
// later kept a member whose leave it never heard.
func TestRedisRecoverWaitsForAReconnectingPeer(t *testing.T) {
	c := newRedisCluster(t)
	if !c.rd.Real() {
		t.Skip("CLIENT KILL needs redis-server")
	}
	a := c.running(t, nodeOptions{})
	b := c.running(t, nodeOptions{url: c.rd.URL + "?client_name=peer-b"})
	require.Eventually(t, func() bool { return slices.Contains(a.rs.Peers(), b.node) }, stateWait, stateTick,
		"a reap of A lists B")

	// B's subscription drops; its receive loop comes back after its
	// back-off (at least 100 ms).
	clients, err := c.rc.ClientList(context.Background()).Result()
	require.NoError(t, err)
	killed := 0
	for _, line := range strings.Split(clients, "\n") {
		if strings.Contains(line, " name=peer-b ") && !strings.Contains(line, " sub=0 ") {
			id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
			require.NoError(t, c.rc.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err())
			killed++
		}
	}
	require.Equal(t, 1, killed, "B's subscription connection:\n%s", clients)
	require.Eventually(t, func() bool { return !b.provider.Up() }, stateWait, stateTick, "B's link is down")

	ctx, cancel := context.WithTimeout(context.Background(), stateWait)
	defer cancel()
	start := time.Now()
	require.NoError(t, a.rs.Recover(ctx))
	assert.True(t, b.provider.Up(), "Recover returned after %s, before B was back", time.Since(start))
	t.Logf("Recover waited %s for B", time.Since(start).Round(time.Millisecond))
}
