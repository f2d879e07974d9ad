package scaling_test

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
)

// fakeShare is a ShareSource whose share the test sets.
type fakeShare struct {
	mu    sync.Mutex
	share scaling.Share
}

func (f *fakeShare) WithShare(fn func(scaling.Share)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.share)
}

func (f *fakeShare) set(share scaling.Share) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.share = share
}

// presence is a share of one socket per user on channel, with the largest
// Seq the node has seen there.
func presence(channel string, seen uint64, users ...string) scaling.Share {
	share := scaling.Share{Connections: map[string]int{"app-1": len(users)}}
	for _, u := range users {
		share.Presence = append(share.Presence, scaling.PresenceShare{AppID: "app-1", Channel: channel, UserID: u, Sockets: 1, Seq: seen})
	}
	return share
}

// running is a RedisState's Run in the background, with what it announced.
type running struct {
	cancel  context.CancelFunc
	done    chan struct{}
	changes chan scaling.PresenceChange
	calls   atomic.Int64 // announce calls, with or without changes
}

// run runs s.Run until stop (or the end of the test).
func run(t *testing.T, s *scaling.RedisState, source scaling.ShareSource) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{}), changes: make(chan scaling.PresenceChange, 64)}
	go func() {
		defer close(r.done)
		s.Run(ctx, source, func(_ context.Context, changes []scaling.PresenceChange) {
			r.calls.Add(1)
			for _, ch := range changes {
				r.changes <- ch
			}
		})
	}()
	t.Cleanup(r.stop)
	return r
}

// stop ends Run (which drops the node's lease) and waits for it.
func (r *running) stop() {
	r.cancel()
	<-r.done
}

// next returns the next change announced.
func (r *running) next(t *testing.T) scaling.PresenceChange {
	t.Helper()
	select {
	case ch := <-r.changes:
		return ch
	case <-time.After(stateWait):
		require.FailNow(t, "no presence change was announced")
		return scaling.PresenceChange{}
	}
}

// listed waits until the node is on the node list, which its first
// assert does.
func (r *redisStates) listed(t *testing.T, node string, want bool) {
	t.Helper()
	rc := r.redis.Client(t)
	require.Eventually(t, func() bool {
		in, err := rc.SIsMember(context.Background(), r.prefix+":nodes", node).Result()
		return err == nil && in == want
	}, stateWait, 10*time.Millisecond, "node %s listed: %v", node, want)
}

// leaseGone waits until the node's lease is gone.
func (r *redisStates) leaseGone(t *testing.T, node string) {
	t.Helper()
	rc := r.redis.Client(t)
	require.Eventually(t, func() bool {
		n, err := rc.Exists(context.Background(), r.prefix+":lease:"+node).Result()
		return err == nil && n == 0
	}, stateWait, 10*time.Millisecond, "the lease of %s is gone", node)
}

// members returns the member list of channel and its Seq.
func members(t *testing.T, s scaling.State, channel string) ([]string, uint64) {
	t.Helper()
	m, seq, err := s.PresenceMembers(context.Background(), "app-1", channel)
	require.NoError(t, err)
	return ids(m), seq
}

// join joins user and returns the Seq of the change, which must be one.
func join(t *testing.T, s scaling.State, channel, user string) uint64 {
	t.Helper()
	added, seq, err := s.JoinPresence(context.Background(), "app-1", channel, user, json.RawMessage(`{"n":1}`), 0)
	require.NoError(t, err)
	require.True(t, added)
	require.NotZero(t, seq)
	return seq
}

// TestRedisStateReapNumbersChanges: a survivor reaps a dead node; each
// member who left is announced with a number of its own, above every
// number handed out before; the member list reflects them. When the node
// comes back, the members it restores are announced with newer numbers.
func TestRedisStateReapNumbersChanges(t *testing.T) {
	const channel = "presence-reap"
	states := newRedisStates(t)
	dead, survivor := states.node(t, "dead", nil), states.node(t, "survivor", nil)
	before := max(join(t, dead, channel, "gone1"), join(t, dead, channel, "gone2"))
	before = max(before, join(t, survivor, channel, "stays"))
	deadShare := &fakeShare{share: presence(channel, before, "gone1", "gone2")}
	d := run(t, dead, deadShare)
	states.listed(t, "dead", true)
	d.stop()
	states.leaseGone(t, "dead")

	s := run(t, survivor, &fakeShare{share: presence(channel, before, "stays")})
	reaped := map[string]uint64{}
	for range 2 {
		ch := s.next(t)
		assert.False(t, ch.Added)
		assert.Greater(t, ch.Seq, before, "a reap is a change after every earlier one")
		reaped[ch.UserID] = ch.Seq
	}
	require.Contains(t, reaped, "gone1")
	require.Contains(t, reaped, "gone2")
	assert.NotEqual(t, reaped["gone1"], reaped["gone2"], "each change has its own number")
	got, seq := members(t, survivor, channel)
	assert.Equal(t, []string{"stays"}, got)
	assert.Equal(t, max(reaped["gone1"], reaped["gone2"]), seq, "the list reflects the reap")

	// The dead node was only paused: it re-asserts its share, and its
	// members are announced back, numbered after the reap.
	back := run(t, dead, deadShare)
	for range 2 {
		ch := back.next(t)
		assert.True(t, ch.Added, "%s is announced back", ch.UserID)
		assert.Greater(t, ch.Seq, seq)
		assert.JSONEq(t, `null`, string(ch.Info), "the share's user_info")
	}
	got, after := members(t, survivor, channel)
	assert.Equal(t, []string{"gone1", "gone2", "stays"}, got)
	assert.Greater(t, after, seq)
}

// TestRedisStateAfterDataLoss: Redis loses every key while the nodes run.
// The numbers never go back: a join, the re-assert that restores a node's
// share and the members it restores are numbered above everything handed
// out before, even when Redis's clock is behind the numbers the node saw.
func TestRedisStateAfterDataLoss(t *testing.T) {
	tests := []struct {
		name string
		// ahead is how far the largest number the node saw is ahead of
		// the last one Redis handed out (a Redis clock that stepped back).
		ahead uint64
	}{
		{name: "same clock", ahead: 0},
		{name: "the clock stepped back an hour", ahead: uint64(time.Hour / time.Microsecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const channel = "presence-loss"
			ctx := context.Background()
			states := newRedisStates(t)
			a, b := states.node(t, "a", nil), states.node(t, "b", nil)
			seen := join(t, a, channel, "alice") + tt.ahead
			share := &fakeShare{share: presence(channel, seen, "alice")}
			r := run(t, a, share)
			states.listed(t, "a", true)
			rc := states.redis.Client(t)

			require.NoError(t, rc.FlushAll(ctx).Err())
			got, _ := members(t, b, channel)
			require.Empty(t, got, "Redis lost the member list")

			// A's next heartbeat finds its lease gone and re-asserts.
			require.Eventually(t, func() bool {
				got, _ := members(t, b, channel)
				return len(got) == 1
			}, stateWait, 10*time.Millisecond, "A re-asserts alice")
			got, restored := members(t, b, channel)
			assert.Equal(t, []string{"alice"}, got)
			assert.Greater(t, restored, seen, "the re-assert is numbered above every number A saw")
			bob := join(t, b, channel, "bob")
			assert.Greater(t, bob, restored)
			select {
			case ch := <-r.changes:
				assert.Failf(t, "a plain data loss announces nobody", "%+v", ch)
			default:
			}

			ttl, err := rc.PTTL(ctx, states.prefix+":presence:app-1:"+channel+":seq").Result()
			require.NoError(t, err)
			assert.Positive(t, ttl, "the counter sits beside the member keys and expires")
			assert.LessOrEqual(t, ttl, time.Hour)
		})
	}
}

// leftDuringOutage sets up node a, whose member "leaver" left while its
// link (up) was down so that the leave could not be written, and Redis
// then came back empty with only node other's member "stays". It returns
// the nodes, a's share and the Seq of the leaver's join; the link is
// still down.
func leftDuringOutage(t *testing.T, channel string, up *atomic.Bool) (a, other *scaling.RedisState, share *fakeShare, before uint64) {
	t.Helper()
	ctx := context.Background()
	states := newRedisStates(t)
	up.Store(true)
	a = states.node(t, "a", up.Load)
	other = states.node(t, "other", nil)
	share = &fakeShare{share: presence(channel, 0, "leaver")}
	before = join(t, a, channel, "leaver")
	join(t, other, channel, "stays")

	up.Store(false)
	removed, seq, err := a.LeavePresence(ctx, "app-1", channel, "leaver")
	require.Error(t, err, "the link is down")
	assert.False(t, removed)
	assert.Zero(t, seq)
	share.set(scaling.Share{})
	require.NoError(t, states.redis.Client(t).FlushAll(ctx).Err())
	join(t, other, channel, "stays")
	return a, other, share, before
}

// TestRedisStateLeaveDuringOutage: a leave that could not be written is
// announced after the re-assert, numbered above what was handed out.
func TestRedisStateLeaveDuringOutage(t *testing.T) {
	const channel = "presence-outage"
	var up atomic.Bool
	a, other, share, before := leftDuringOutage(t, channel, &up)
	up.Store(true)

	r := run(t, a, share)
	ch := r.next(t)
	assert.Equal(t, "leaver", ch.UserID)
	assert.False(t, ch.Added)
	_, listed := members(t, other, channel)
	assert.Greater(t, ch.Seq, before)
	assert.Equal(t, listed, ch.Seq, "the announcement is the channel's latest change")
}

// TestRedisStateAnnouncesAfterEveryHeartbeat: Redis answers again (it
// came back empty) before this node's own pub/sub link is back. The leave
// that could not be written is handed to announce once, right after the
// re-assert, while the link is still down: the announcer cannot publish it
// yet. Run must call announce again after later heartbeats, with nothing
// new, so that the announcer publishes it once the link is up.
func TestRedisStateAnnouncesAfterEveryHeartbeat(t *testing.T) {
	const channel = "presence-link"
	var up atomic.Bool
	a, other, share, before := leftDuringOutage(t, channel, &up)

	r := run(t, a, share)
	ch := r.next(t)
	assert.Equal(t, "leaver", ch.UserID)
	assert.False(t, ch.Added)
	_, listed := members(t, other, channel)
	assert.Greater(t, ch.Seq, before)
	assert.Equal(t, listed, ch.Seq, "the announcement is the channel's latest change")

	calls := r.calls.Load()
	require.Eventually(t, func() bool { return r.calls.Load() >= calls+2 }, stateWait, time.Millisecond,
		"announce is called after later heartbeats too")
	assert.Empty(t, r.changes, "the change is handed over once")
}
