package cluster_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// TestRedisDataLoss: redis-server restarts empty while the nodes run.
// Within a few lease periods each node re-asserts its share, so the
// member list a fresh subscriber gets, user_count, the users and the
// connection quota are right again, without restarting Fizz.
func TestRedisDataLoss(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	quota := func(c *app.Config) { c.Apps[0].MaxConnections = 5 }
	a, b := cl.start(t, "A", quota), cl.start(t, "B", quota)
	nodes := []*node{a, b}
	waitUp(t, nodes...)
	const channel = "presence-dataloss"
	want := []string{"alice", "bob", "carol"}

	alice, carolA := harness.Dial(t, a), harness.Dial(t, a)
	bob, carolB := harness.Dial(t, b), harness.Dial(t, b)
	join(t, alice, channel, "alice")
	join(t, bob, channel, "bob")
	join(t, carolA, channel, "carol")
	join(t, carolB, channel, "carol")
	observers := []*pusherclient.Client{alice, bob}
	harness.Flush(t, a, channel, observers...)
	for _, o := range observers {
		memberEvents(t, o, channel)
	}
	requireCounts(t, nodes, channel, want...)
	const sockets = 4

	cl.redis.Restart()
	restarted := time.Now()

	// A fresh subscriber's list comes from Redis: poll until it is whole
	// on both nodes. The probe is a member of its own, left out here.
	for _, n := range nodes {
		eventually(t, 6*lease+wait, fmt.Sprintf("a fresh subscriber on %s lists every member", n), func() (bool, string) {
			probe, err := pusherclient.Dial(n.wsURL)
			if err != nil {
				return false, err.Error()
			}
			defer probe.Close()
			f, err := trySubscribePresence(probe, channel, "probe")
			if err != nil || f.Event != "pusher_internal:subscription_succeeded" {
				return false, fmt.Sprint(f, err)
			}
			ids := slices.DeleteFunc(members(t, f), func(id string) bool { return id == "probe" })
			return slices.Equal(ids, want), fmt.Sprint(ids)
		})
	}
	t.Logf("the member list was whole again %s after Redis restarted empty (lease %s)", time.Since(restarted).Round(time.Millisecond), lease)
	waitConnections(t, a, sockets)
	requireCounts(t, nodes, channel, want...)

	// The quota counts the sockets that were open before the restart:
	// one more fits, then none on either node.
	admitEventually(t, b)
	requireRefused(t, a)
	requireRefused(t, b)

	// The observers' lists never lost anyone, and re-asserting announces
	// nobody: the clients never saw these members leave.
	harness.Flush(t, b, channel, observers...)
	for _, o := range observers {
		view := map[string]bool{"alice": true, "bob": true, "carol": true}
		added, removed := memberEvents(t, o, channel)
		for _, id := range added {
			view[id] = true
		}
		for _, id := range removed {
			delete(view, id)
		}
		delete(view, "probe")
		assert.Equal(t, want, sorted(view), "the view of socket %s", o.SocketID)
		again := slices.DeleteFunc(slices.Clone(added), func(id string) bool { return id == "probe" })
		assert.Empty(t, again, "socket %s heard member_added for members it had all along", o.SocketID)
		require.NotContains(t, removed, "alice")
		require.NotContains(t, removed, "bob")
		require.NotContains(t, removed, "carol")
	}
}
