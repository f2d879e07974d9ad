package scaling_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/test/harness"
)

// stateWait bounds every wait for the shared state's upkeep.
const stateWait = 10 * time.Second

// testLease is the lease of the RedisStates under test: short, so that a
// heartbeat comes every 200 ms.
const testLease = 600 * time.Millisecond

// redisStates makes RedisStates of several nodes over one private Redis,
// under a prefix of their own.
type redisStates struct {
	redis  *harness.Redis
	prefix string
}

func newRedisStates(t *testing.T) *redisStates {
	t.Helper()
	return &redisStates{redis: harness.StartRedis(t), prefix: "fizz-state-test"}
}

// node returns the RedisState of node; link (nil: always up) is its link.
func (r *redisStates) node(t *testing.T, node string, link func() bool) *scaling.RedisState {
	t.Helper()
	return scaling.NewRedisState(r.redis.Client(t), r.prefix, node, testLease, link, slog.New(slog.DiscardHandler))
}

// stateImpls are the State implementations every test of the contract runs on.
var stateImpls = []struct {
	name string
	new  func(t *testing.T) scaling.State
}{
	{name: "local", new: func(*testing.T) scaling.State { return scaling.NewLocalState() }},
	{name: "redis", new: func(t *testing.T) scaling.State { return newRedisStates(t).node(t, "n1", nil) }},
}

// seqStep is one change asked of the state in TestStateSeq.
type seqStep struct {
	channel string
	user    string
	leave   bool
	changed bool // whether the member set changes, so a Seq is due
}

func TestStateSeq(t *testing.T) {
	const a, b = "presence-a", "presence-b"
	steps := []seqStep{
		{channel: a, user: "u1", changed: true},
		{channel: a, user: "u1"}, // a second socket: no change
		{channel: b, user: "u1", changed: true},
		{channel: a, user: "u2", changed: true},
		{channel: a, user: "u1", leave: true}, // one socket of two
		{channel: a, user: "u1", leave: true, changed: true},
		{channel: a, user: "u9", leave: true}, // never joined
		{channel: a, user: "u2", leave: true, changed: true},
		{channel: b, user: "u1", leave: true, changed: true},
		// Both channels are empty now; their numbers go on, never back.
		{channel: a, user: "u3", changed: true},
		{channel: b, user: "u3", changed: true},
	}
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			ctx := context.Background()
			s := impl.new(t)
			last := map[string]uint64{}   // channel -> Seq of its last change
			listed := map[string]uint64{} // channel -> Seq of its last member list
			members := map[string]map[string]bool{a: {}, b: {}}

			for i, st := range steps {
				var changed bool
				var seq uint64
				var err error
				if st.leave {
					changed, seq, err = s.LeavePresence(ctx, "app-1", st.channel, st.user)
				} else {
					changed, seq, err = s.JoinPresence(ctx, "app-1", st.channel, st.user, nil, 0)
				}
				require.NoError(t, err, "step %d", i)
				require.Equal(t, st.changed, changed, "step %d", i)
				if !st.changed {
					assert.Zero(t, seq, "step %d changes no member set", i)
				} else {
					assert.Greater(t, seq, listed[st.channel], "step %d: above every list read before", i)
					assert.Greater(t, seq, last[st.channel], "step %d: above the channel's last change", i)
					last[st.channel] = seq
					members[st.channel][st.user] = !st.leave
				}

				for _, ch := range []string{a, b} {
					got, at, err := s.PresenceMembers(ctx, "app-1", ch)
					require.NoError(t, err)
					assert.Equal(t, sorted(members[ch]), ids(got), "step %d, %s", i, ch)
					assert.GreaterOrEqual(t, at, last[ch], "step %d: the list of %s reflects its last change", i, ch)
					listed[ch] = at
				}
			}
		})
	}
}

// change is one numbered change TestStateMembersAndSeqAreAtomic made.
type change struct {
	seq   uint64
	user  string
	added bool
}

// snapshot is one member list and its Seq.
type snapshot struct {
	members map[string]json.RawMessage
	seq     uint64
}

// TestStateMembersAndSeqAreAtomic joins and leaves users concurrently
// while reading member lists: each list must be exactly the result of the
// changes numbered up to its Seq, and the numbers must be distinct.
func TestStateMembersAndSeqAreAtomic(t *testing.T) {
	const channel = "presence-atomic"
	const users, rounds = 4, 25
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			ctx := context.Background()
			s := impl.new(t)
			var mu sync.Mutex
			var changes []change
			var wg sync.WaitGroup
			for u := range users {
				user := fmt.Sprintf("u%d", u)
				wg.Go(func() {
					for range rounds {
						added, seq, err := s.JoinPresence(ctx, "app-1", channel, user, nil, 0)
						assert.NoError(t, err)
						assert.True(t, added)
						removed, seq2, err := s.LeavePresence(ctx, "app-1", channel, user)
						assert.NoError(t, err)
						assert.True(t, removed)
						assert.Greater(t, seq2, seq, "a user's changes are numbered in order")
						mu.Lock()
						changes = append(changes, change{seq, user, true}, change{seq2, user, false})
						mu.Unlock()
					}
				})
			}
			var snaps []snapshot
			done := make(chan struct{})
			var reader sync.WaitGroup
			reader.Go(func() {
				for {
					// Read before looking at done: the writers may all
					// finish before this goroutine first runs.
					m, seq, err := s.PresenceMembers(ctx, "app-1", channel)
					if !assert.NoError(t, err) {
						return
					}
					snaps = append(snaps, snapshot{m, seq})
					select {
					case <-done:
						return
					default:
					}
				}
			})
			wg.Wait()
			close(done)
			reader.Wait()

			sort.Slice(changes, func(i, j int) bool { return changes[i].seq < changes[j].seq })
			for i := 1; i < len(changes); i++ {
				require.Less(t, changes[i-1].seq, changes[i].seq, "every change has its own number")
			}
			require.NotEmpty(t, snaps)
			for _, snap := range snaps {
				want := map[string]bool{}
				for _, ch := range changes {
					if ch.seq <= snap.seq {
						want[ch.user] = ch.added
					}
				}
				require.Equal(t, sorted(want), ids(snap.members), "the list at seq %d", snap.seq)
			}
			t.Logf("%d changes, %d member lists checked", len(changes), len(snaps))
		})
	}
}

// ids returns the user ids of a member list, sorted.
func ids(members map[string]json.RawMessage) []string {
	return append([]string{}, slices.Sorted(maps.Keys(members))...)
}

// sorted returns the keys of a set, sorted.
func sorted(set map[string]bool) []string {
	out := []string{}
	for k, in := range set {
		if in {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
