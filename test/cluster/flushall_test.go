package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// flushAllWatch is how long TestRedisFlushAll keeps polling the member
// lists of the nodes after the first subscription that follows FLUSHALL:
// longer than a heartbeat (lease/3), so that a node that only repairs
// Redis at its heartbeat is caught answering wrong in between.
const flushAllWatch = lease

// TestRedisFlushAll: FLUSHALL empties Redis while the nodes run and their
// link stays up. The next subscriber's member list, the users and
// user_count through every node and the connection count are right at
// once, not after a heartbeat, and the members' sockets hear nobody leave
// or arrive again: only the newcomers arrive, once each.
func TestRedisFlushAll(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	nodes := []*node{cl.start(t, "A", nil), cl.start(t, "B", nil), cl.start(t, "C", nil)}
	waitUp(t, nodes...)
	a, b, c := nodes[0], nodes[1], nodes[2]
	const channel = "presence-flushall"

	// alice on A, bob on B, carol on A and on C, dave on C. Every socket
	// is also an observer of the channel.
	type member struct {
		id string
		c  *pusherclient.Client
		at *node
	}
	sockets := []member{{"alice", harness.Dial(t, a), a}, {"bob", harness.Dial(t, b), b}, {"carol", harness.Dial(t, a), a}, {"carol", harness.Dial(t, c), c}, {"dave", harness.Dial(t, c), c}}
	var observers []*pusherclient.Client
	for _, m := range sockets {
		join(t, m.c, channel, m.id)
		observers = append(observers, m.c)
	}
	harness.Flush(t, b, channel, observers...)
	for _, o := range observers {
		memberEvents(t, o, channel) // the members arriving: not what this test is about
	}
	truth := []string{"alice", "bob", "carol", "dave"}
	requireCounts(t, nodes, channel, truth...)
	waitConnections(t, a, len(sockets))

	rdb := cl.redis.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, rdb.FlushAll(ctx).Err(), "FLUSHALL")
	flushed := time.Now()

	// Right away, erin subscribes on B, then frank on C: each list is
	// every member still connected, the newcomers before it and itself.
	newcomers := []struct {
		id string
		at *node
	}{{"erin", b}, {"frank", c}}
	var fresh []*pusherclient.Client
	for _, nc := range newcomers {
		s := harness.Dial(t, nc.at)
		f, err := trySubscribePresence(s, channel, nc.id)
		require.NoError(t, err, "%s subscribes on %s after FLUSHALL", nc.id, nc.at)
		since := time.Since(flushed).Round(time.Millisecond)
		truth = append(truth, nc.id)
		assert.Equal(t, truth, members(t, f), "the member list of %s, who subscribed on %s %s after FLUSHALL (lease %s)", nc.id, nc.at, since, lease)
		require.NoError(t, s.Ping())
		fresh = append(fresh, s)
	}
	for _, n := range nodes {
		assert.Equal(t, len(sockets)+len(fresh), connections(t, n), "GET connections through %s right after the newcomers joined, %s after FLUSHALL",
			n, time.Since(flushed).Round(time.Millisecond))
	}

	// From then on, every node answers the truth at every moment.
	bad, first, polls := 0, "", 0
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for watchEnd := time.Now().Add(flushAllWatch); time.Now().Before(watchEnd); <-ticker.C {
		polls++
		for _, n := range nodes {
			users, count := channelUsers(t, n, channel), userCount(t, n, channel)
			if !slices.Equal(users, truth) || count != len(truth) {
				if bad == 0 {
					first = fmt.Sprintf("%s after FLUSHALL, through %s: users %v, user_count %d", time.Since(flushed).Round(time.Millisecond), n, users, count)
				}
				bad++
			}
		}
	}
	assert.Zero(t, bad, "answers of GET channels/%s/users or user_count other than %v in %d polls of the %d nodes over %s after the newcomers joined; the first: %s",
		channel, truth, polls, len(nodes), flushAllWatch, first)

	// Nobody left or came back for the clients: they heard the newcomers
	// arrive, once each, and nothing else.
	everyone := append(slices.Clone(observers), fresh...)
	harness.Flush(t, a, channel, everyone...)
	for i, m := range sockets {
		added, removed := memberEvents(t, observers[i], channel)
		assert.Equal(t, []string{"erin", "frank"}, added, "member_added heard by %s's socket on %s", m.id, m.at)
		assert.Empty(t, removed, "member_removed heard by %s's socket on %s", m.id, m.at)
	}
	added, removed := memberEvents(t, fresh[0], channel)
	assert.Equal(t, []string{"frank"}, added, "member_added heard by erin")
	assert.Empty(t, removed, "member_removed heard by erin")
	added, removed = memberEvents(t, fresh[1], channel)
	assert.Empty(t, added, "member_added heard by frank")
	assert.Empty(t, removed, "member_removed heard by frank")

	// A member who really leaves afterwards is announced once, as always.
	dave := sockets[len(sockets)-1].c
	require.NoError(t, dave.Unsubscribe(channel))
	require.NoError(t, dave.Ping())
	truth = slices.DeleteFunc(truth, func(id string) bool { return id == "dave" })
	requireMemberEvent(t, c, channel, memberRemoved, "dave", slices.DeleteFunc(everyone, func(s *pusherclient.Client) bool { return s == dave })...)
	requireCounts(t, nodes, channel, truth...)
	for _, n := range nodes {
		assert.Equal(t, len(sockets)+len(fresh), connections(t, n), "GET connections through %s at the end", n)
	}
}
