package scaling_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
)

// The kinds of transitions, short.
const (
	occupied = scaling.ChannelOccupied
	vacated  = scaling.ChannelVacated
	added    = scaling.MemberAdded
	removed  = scaling.MemberRemoved
	count    = scaling.SubscriptionCount
)

// requireOneChange checks that ts are the transitions of one change of
// channel: the kinds in want, in order, all numbered with one Seq, with
// the subscription count wantCount and the user user. It returns the Seq.
func requireOneChange(t *testing.T, ts []scaling.Transition, channel, user string, want []scaling.TransitionKind, wantCount int) uint64 {
	t.Helper()
	require.Equal(t, want, kinds(ts), "the transitions of the change, in order")
	if len(ts) == 0 {
		return 0
	}
	seq := ts[0].Seq
	require.NotZero(t, seq, "a change is numbered")
	for _, tr := range ts {
		assert.Equal(t, seq, tr.Seq, "the transitions of one change share its Seq: %+v", tr)
		assert.Equal(t, testApp, tr.AppID)
		assert.Equal(t, channel, tr.Channel)
		switch tr.Kind {
		case added, removed:
			assert.Equal(t, user, tr.UserID)
		case count:
			assert.Equal(t, wantCount, tr.Count)
		default:
			assert.Empty(t, tr.UserID)
		}
	}
	return seq
}

// TestStatePresenceTransitions joins and leaves two presence channels:
// each change returns exactly the transitions it causes, in order, under
// one Seq that grows per channel and is never handed out again once a
// channel empties and fills again; JoinPresence returns the member list
// after the change with the change's Seq, and so does PresenceMembers;
// each member transition is published once, in the order of the changes,
// with the Seq that was returned.
func TestStatePresenceTransitions(t *testing.T) {
	const a, b = "presence-a", "presence-b"
	steps := []struct {
		channel     string
		user        string
		leave       bool
		want        []scaling.TransitionKind
		wantCount   int
		wantMembers []string
	}{
		{channel: a, user: "u1", want: []scaling.TransitionKind{occupied, added, count}, wantCount: 1, wantMembers: []string{"u1"}},
		{channel: a, user: "u1", want: []scaling.TransitionKind{count}, wantCount: 2, wantMembers: []string{"u1"}}, // a second socket
		{channel: b, user: "u1", want: []scaling.TransitionKind{occupied, added, count}, wantCount: 1, wantMembers: []string{"u1"}},
		{channel: a, user: "u2", want: []scaling.TransitionKind{added, count}, wantCount: 3, wantMembers: []string{"u1", "u2"}},
		{channel: a, user: "u1", leave: true, want: []scaling.TransitionKind{count}, wantCount: 2, wantMembers: []string{"u1", "u2"}}, // one socket of two
		{channel: a, user: "u1", leave: true, want: []scaling.TransitionKind{removed, count}, wantCount: 1, wantMembers: []string{"u2"}},
		{channel: a, user: "u9", leave: true, want: []scaling.TransitionKind{}, wantMembers: []string{"u2"}}, // never joined
		{channel: a, user: "u2", leave: true, want: []scaling.TransitionKind{removed, vacated, count}, wantCount: 0, wantMembers: []string{}},
		{channel: b, user: "u1", leave: true, want: []scaling.TransitionKind{removed, vacated, count}, wantCount: 0, wantMembers: []string{}},
		// Both channels are empty now; their numbers go on, never back.
		{channel: a, user: "u3", want: []scaling.TransitionKind{occupied, added, count}, wantCount: 1, wantMembers: []string{"u3"}},
		{channel: b, user: "u3", want: []scaling.TransitionKind{occupied, added, count}, wantCount: 1, wantMembers: []string{"u3"}},
	}
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.new(t).add(t)
			last := map[string]uint64{}   // channel -> Seq of its last change
			listed := map[string]uint64{} // channel -> Seq of its last member list
			var want []memberNews

			for i, st := range steps {
				var ts []scaling.Transition
				if st.leave {
					ts = s.mustLeave(t, st.channel, st.user)
				} else {
					var snap scaling.Snapshot
					snap, ts = s.mustJoin(t, st.channel, st.user)
					assert.Equal(t, st.wantMembers, ids(snap.Members), "step %d: the list after the join, the joiner in it", i)
					require.NotEmpty(t, ts, "step %d", i)
					assert.Equal(t, ts[0].Seq, snap.Seq, "step %d: the list is at the join's Seq", i)
				}
				seq := requireOneChange(t, ts, st.channel, st.user, st.want, st.wantCount)
				if seq != 0 {
					assert.Greater(t, seq, last[st.channel], "step %d: above the channel's last change", i)
					assert.Greater(t, seq, listed[st.channel], "step %d: above every list read before", i)
					last[st.channel] = seq
				}
				want = append(want, newsOf(ts)...)

				snap := s.members(t, st.channel)
				assert.Equal(t, st.wantMembers, ids(snap.Members), "step %d", i)
				assert.Equal(t, last[st.channel], snap.Seq, "step %d: the list's Seq is the channel's last change", i)
				listed[st.channel] = snap.Seq
			}

			assert.Equal(t, want, s.heardUntilFence(t), "each member transition is published once, in order, with its Seq")
		})
	}
}

// TestStatePresenceAcrossNodes: a user with sockets on two nodes is one
// member; the transitions are decided by whichever change makes them.
func TestStatePresenceAcrossNodes(t *testing.T) {
	const channel = "presence-nodes"
	steps := []struct {
		node      int
		leave     bool
		want      []scaling.TransitionKind
		wantCount int
	}{
		{node: 0, want: []scaling.TransitionKind{occupied, added, count}, wantCount: 1},
		{node: 1, want: []scaling.TransitionKind{count}, wantCount: 2},
		{node: 0, leave: true, want: []scaling.TransitionKind{count}, wantCount: 1},
		{node: 1, leave: true, want: []scaling.TransitionKind{removed, vacated, count}, wantCount: 0},
	}
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			c := impl.new(t)
			nodes := []*subject{c.add(t), c.add(t)}
			var want []memberNews
			var last uint64
			for i, st := range steps {
				var ts []scaling.Transition
				if st.leave {
					ts = nodes[st.node].mustLeave(t, channel, "u1")
				} else {
					_, ts = nodes[st.node].mustJoin(t, channel, "u1")
				}
				if seq := requireOneChange(t, ts, channel, "u1", st.want, st.wantCount); seq != 0 {
					assert.Greater(t, seq, last, "step %d", i)
					last = seq
				}
				want = append(want, newsOf(ts)...)
			}
			assert.ElementsMatch(t, want, published(t, impl.broadcast, nodes...), "one member_added, one member_removed")
		})
	}
}

// TestStateMembersLimit: a new user beyond the limit is refused and
// changes nothing; a member's second socket is no new member.
func TestStateMembersLimit(t *testing.T) {
	const channel = "presence-full"
	tests := []struct {
		name    string
		give    string // the user joining a channel that has u1 and u2
		limit   int
		want    []scaling.TransitionKind
		wantErr error
	}{
		{name: "a new user beyond the limit", give: "u3", limit: 2, want: []scaling.TransitionKind{}, wantErr: scaling.ErrMembersLimit},
		{name: "a member's second socket when full", give: "u1", limit: 2, want: []scaling.TransitionKind{count}},
		{name: "room left", give: "u3", limit: 3, want: []scaling.TransitionKind{added, count}},
		{name: "no limit", give: "u3", limit: 0, want: []scaling.TransitionKind{added, count}},
	}
	for _, impl := range stateImpls {
		for _, tt := range tests {
			t.Run(impl.name+"/"+tt.name, func(t *testing.T) {
				s := impl.new(t).add(t)
				for _, u := range []string{"u1", "u2"} {
					_, _, err := s.join(channel, u, nil, tt.limit)
					require.NoError(t, err)
				}
				heardBefore := s.heardUntilFence(t)
				before := s.members(t, channel)

				snap, ts, err := s.join(channel, tt.give, nil, tt.limit)

				require.ErrorIs(t, err, tt.wantErr)
				assert.Equal(t, tt.want, kinds(ts))
				after := s.members(t, channel)
				heardAfter := s.heardUntilFence(t)
				if tt.wantErr != nil {
					assert.Equal(t, before, after, "a refused join changes nothing, not even the Seq")
					assert.Equal(t, heardBefore, heardAfter, "and publishes nothing")
					return
				}
				assert.Equal(t, after, snap)
				assert.Greater(t, snap.Seq, before.Seq)
				assert.Len(t, heardAfter, len(heardBefore)+len(newsOf(ts)))
			})
		}
	}
}

// TestStateUserInfo: a member's user_info goes round trip, JSON null when
// none was given, in the member list, the transition and the event; apps
// do not share channels.
func TestStateUserInfo(t *testing.T) {
	const channel = "presence-info"
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.new(t).add(t)
			_, ann, err := s.join(channel, "1", json.RawMessage(`{"name":"Ann"}`), 0)
			require.NoError(t, err)
			snap, anon, err := s.join(channel, "2", nil, 0)
			require.NoError(t, err)

			members := s.members(t, channel).Members
			assert.JSONEq(t, `{"name":"Ann"}`, string(members["1"]))
			assert.JSONEq(t, `null`, string(members["2"]))
			assert.Equal(t, members, snap.Members, "the join's list has the same user_info")
			require.Equal(t, []scaling.TransitionKind{added, count}, kinds(anon))
			assert.JSONEq(t, `null`, string(anon[0].Info))
			require.Equal(t, []scaling.TransitionKind{occupied, added, count}, kinds(ann))
			assert.JSONEq(t, `{"name":"Ann"}`, string(ann[1].Info))
			news := s.heardUntilFence(t)
			require.Len(t, news, 2)
			assert.JSONEq(t, `{"name":"Ann"}`, news[0].UserInfo)
			assert.JSONEq(t, `null`, news[1].UserInfo)

			other, err := s.state.PresenceMembers(t.Context(), "app-2", channel)
			require.NoError(t, err)
			assert.Empty(t, other.Members, "apps do not share channels")
		})
	}
}

// TestStateSetSubscriptions: counts are absolute and add up across nodes;
// the channel is occupied when the first goes above 0 and vacated when
// the last goes to 0; writing a count again changes nothing; count
// changes publish no member event.
func TestStateSetSubscriptions(t *testing.T) {
	const channel = "news"
	steps := []struct {
		node      int
		give      int
		want      []scaling.TransitionKind
		wantCount int
	}{
		{node: 0, give: 3, want: []scaling.TransitionKind{occupied, count}, wantCount: 3},
		{node: 0, give: 3, want: []scaling.TransitionKind{}},
		{node: 0, give: 5, want: []scaling.TransitionKind{count}, wantCount: 5},
		{node: 1, give: 2, want: []scaling.TransitionKind{count}, wantCount: 7},
		{node: 1, give: 2, want: []scaling.TransitionKind{}},
		{node: 0, give: 0, want: []scaling.TransitionKind{count}, wantCount: 2},
		{node: 0, give: 0, want: []scaling.TransitionKind{}},
		{node: 1, give: 0, want: []scaling.TransitionKind{vacated, count}, wantCount: 0},
		{node: 1, give: 0, want: []scaling.TransitionKind{}},
		// Empty again: the numbers go on.
		{node: 1, give: 1, want: []scaling.TransitionKind{occupied, count}, wantCount: 1},
	}
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			c := impl.new(t)
			nodes := []*subject{c.add(t), c.add(t)}
			var last uint64
			for i, st := range steps {
				ts := nodes[st.node].mustSetSubs(t, channel, st.give)
				if seq := requireOneChange(t, ts, channel, "", st.want, st.wantCount); seq != 0 {
					assert.Greater(t, seq, last, "step %d", i)
					last = seq
				}
			}
			assert.Empty(t, published(t, impl.broadcast, nodes...), "count changes publish no member event")
		})
	}
}

// TestStateSetSubscriptionsOfSeveralChannels: one call writes several
// channels, each a change of its own.
func TestStateSetSubscriptionsOfSeveralChannels(t *testing.T) {
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			s := impl.new(t).add(t)
			s.mustSetSubs(t, "news-2", 1)

			ts, err := s.setSubs(
				scaling.ChannelCount{AppID: testApp, Channel: "news-1", Subscriptions: 2},
				scaling.ChannelCount{AppID: testApp, Channel: "news-2", Subscriptions: 0},
				scaling.ChannelCount{AppID: testApp, Channel: "news-3", Subscriptions: 0}, // no subscriber before or after
			)

			require.NoError(t, err)
			byChannel := map[string][]scaling.Transition{}
			for _, tr := range ts {
				byChannel[tr.Channel] = append(byChannel[tr.Channel], tr)
			}
			require.Len(t, byChannel, 2, "%+v", ts)
			requireOneChange(t, byChannel["news-1"], "news-1", "", []scaling.TransitionKind{occupied, count}, 2)
			requireOneChange(t, byChannel["news-2"], "news-2", "", []scaling.TransitionKind{vacated, count}, 0)
		})
	}
}

// change is one numbered change TestStateMembersAndSeqAreAtomic made.
type change struct {
	seq   uint64
	user  string
	added bool
}

// TestStateMembersAndSeqAreAtomic joins and leaves users on two nodes
// concurrently while reading member lists: each list, read alone or
// returned by a join, must be exactly the result of the changes numbered
// up to its Seq; the numbers must be distinct; and each change must be
// published once, in order.
func TestStateMembersAndSeqAreAtomic(t *testing.T) {
	const channel = "presence-atomic"
	const users, rounds = 6, 25
	for _, impl := range stateImpls {
		t.Run(impl.name, func(t *testing.T) {
			c := impl.new(t)
			nodes := []*subject{c.add(t), c.add(t)}
			var mu sync.Mutex
			var changes []change
			var snaps []scaling.Snapshot
			var wg sync.WaitGroup
			for u := range users {
				user := fmt.Sprintf("u%d", u)
				s := nodes[u%len(nodes)]
				wg.Go(func() {
					for range rounds {
						snap, joined, err := s.join(channel, user, nil, 0)
						if !assert.NoError(t, err) || !assert.Contains(t, snap.Members, user) {
							return
						}
						left, err := s.leave(channel, user)
						if !assert.NoError(t, err) {
							return
						}
						in, out := newsOf(joined), newsOf(left)
						if !assert.Len(t, in, 1) || !assert.Len(t, out, 1) {
							return
						}
						assert.Greater(t, out[0].Seq, in[0].Seq, "a user's changes are numbered in order")
						mu.Lock()
						changes = append(changes, change{in[0].Seq, user, true}, change{out[0].Seq, user, false})
						snaps = append(snaps, snap)
						mu.Unlock()
					}
				})
			}
			done := make(chan struct{})
			var reader sync.WaitGroup
			reader.Go(func() {
				for {
					// Read before looking at done: the writers may all
					// finish before this goroutine first runs.
					snap, err := nodes[0].state.PresenceMembers(t.Context(), testApp, channel)
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					snaps = append(snaps, snap)
					mu.Unlock()
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
			require.False(t, t.Failed())

			sort.Slice(changes, func(i, j int) bool { return changes[i].seq < changes[j].seq })
			for i := 1; i < len(changes); i++ {
				require.Less(t, changes[i-1].seq, changes[i].seq, "every change has its own number")
			}
			for _, snap := range snaps {
				want := map[string]bool{}
				for _, ch := range changes {
					if ch.seq <= snap.Seq {
						want[ch.user] = ch.added
					}
				}
				got := map[string]bool{}
				for id := range snap.Members {
					got[id] = true
				}
				for id, in := range want {
					if !in {
						delete(want, id)
					}
				}
				require.Equal(t, want, got, "the list at seq %d", snap.Seq)
			}

			var news []memberNews
			for _, n := range published(t, impl.broadcast, nodes...) {
				if n.Channel == channel {
					news = append(news, n)
				}
			}
			require.Len(t, news, len(changes), "each change is published once")
			if impl.broadcast {
				assert.True(t, sort.SliceIsSorted(news, func(i, j int) bool { return news[i].Seq < news[j].Seq }),
					"published in the order of the changes")
			}
			sort.Slice(news, func(i, j int) bool { return news[i].Seq < news[j].Seq })
			for i, ch := range changes {
				assert.Equal(t, ch.seq, news[i].Seq)
				assert.Equal(t, ch.user, news[i].UserID)
				assert.Equal(t, ch.added, news[i].Added)
			}
			t.Logf("%d changes, %d member lists checked", len(changes), len(snaps))
		})
	}
}
