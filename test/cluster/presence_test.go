package cluster_test

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

const (
	memberAdded   = pusher.EventMemberAdded
	memberRemoved = pusher.EventMemberRemoved
)

// memberEvents takes every member_added and member_removed on channel
// from c's inbox and returns the user ids, in arrival order.
func memberEvents(t testing.TB, c *pusherclient.Client, channel string) (added, removed []string) {
	t.Helper()
	for range len(c.Pending()) {
		f, err := c.ExpectFunc(func(f pusherclient.Frame) bool {
			return f.Channel == channel && (f.Event == memberAdded || f.Event == memberRemoved)
		}, 0)
		if err != nil {
			break
		}
		if f.Event == memberAdded {
			added = append(added, memberID(t, f))
		} else {
			removed = append(removed, memberID(t, f))
		}
	}
	return added, removed
}

// requireNoMemberEvents flushes through n and requires that none of the
// clients heard a member event.
func requireNoMemberEvents(t testing.TB, n *node, channel string, clients ...*pusherclient.Client) {
	t.Helper()
	harness.Flush(t, n, channel, clients...)
	for _, c := range clients {
		added, removed := memberEvents(t, c, channel)
		require.Empty(t, added, "member_added on socket %s", c.SocketID)
		require.Empty(t, removed, "member_removed on socket %s", c.SocketID)
	}
}

// requireMemberEvent flushes through n and requires that every client
// heard exactly one member event, event, for user.
func requireMemberEvent(t testing.TB, n *node, channel, event, user string, clients ...*pusherclient.Client) {
	t.Helper()
	for _, c := range clients {
		require.Equal(t, user, memberID(t, harness.Expect(t, c, event, channel)), "%s on socket %s", event, c.SocketID)
	}
	requireNoMemberEvents(t, n, channel, clients...)
}

// requireCounts checks user_count and the users of channel through every node.
func requireCounts(t testing.TB, nodes []*node, channel string, users ...string) {
	t.Helper()
	for _, n := range nodes {
		assert.Equal(t, len(users), userCount(t, n, channel), "user_count through %s", n)
		assert.Equal(t, users, channelUsers(t, n, channel), "users through %s", n)
	}
}

// runPresence is the presence scenario over nodes A, B, C (the same node
// three times when scaling is off).
func runPresence(t *testing.T, nodes []*node) {
	a, b, c := nodes[0], nodes[1], nodes[2]
	const channel = "presence-across"

	alice := harness.Dial(t, a)
	assert.Equal(t, []string{"alice"}, join(t, alice, channel, "alice"))

	bob := harness.Dial(t, b)
	assert.Equal(t, []string{"alice", "bob"}, join(t, bob, channel, "bob"), "bob on B lists alice on A")
	requireMemberEvent(t, c, channel, memberAdded, "bob", alice)
	requireNoMemberEvents(t, a, channel, bob)

	carol := harness.Dial(t, c)
	assert.Equal(t, []string{"alice", "bob", "carol"}, join(t, carol, channel, "carol"), "carol on C lists every node's members")
	requireMemberEvent(t, b, channel, memberAdded, "carol", alice, bob)

	// alice's second socket, on another node, is no new member.
	alice2 := harness.Dial(t, c)
	assert.Equal(t, []string{"alice", "bob", "carol"}, join(t, alice2, channel, "alice"))
	everyone := []*pusherclient.Client{alice, bob, carol, alice2}
	requireNoMemberEvents(t, a, channel, everyone...)
	requireCounts(t, nodes, channel, "alice", "bob", "carol")

	// alice leaves A but stays on C: nobody hears of it.
	require.NoError(t, alice.Unsubscribe(channel))
	require.NoError(t, alice.Ping())
	requireNoMemberEvents(t, b, channel, bob, carol, alice2)
	requireCounts(t, nodes, channel, "alice", "bob", "carol")

	// Her last socket goes: one member_removed on every node.
	require.NoError(t, alice2.Close())
	requireMemberEvent(t, a, channel, memberRemoved, "alice", bob, carol)
	requireCounts(t, nodes, channel, "bob", "carol")

	// She comes back on A: one member_added, and a late subscriber on
	// each node sees the same list.
	assert.Equal(t, []string{"alice", "bob", "carol"}, join(t, alice, channel, "alice"))
	requireMemberEvent(t, c, channel, memberAdded, "alice", bob, carol)
	for _, n := range nodes {
		late := harness.Dial(t, n)
		assert.Equal(t, []string{"alice", "bob", "carol"}, join(t, late, channel, "bob"), "a late subscriber on %s", n)
		require.NoError(t, late.Close())
	}
	requireNoMemberEvents(t, a, channel, alice, bob, carol)
	requireCounts(t, nodes, channel, "alice", "bob", "carol")
}

// TestPresenceAcrossNodes: the member list and the member events are
// those of the whole cluster, each user once.
func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	runPresence(t, startNodes(t, true, 3, nil))
}

// TestPresenceSingleNode is the same scenario on one node without Redis.
func TestPresenceSingleNode(t *testing.T) {
	t.Parallel()
	n := startSingle(t, "A", nil)
	runPresence(t, []*node{n, n, n})
}

// TestPresenceNodeKill: members whose only sockets were on a node killed
// with SIGKILL leave every other node's view within about a lease, each
// announced once; a member who also has a socket on a surviving node
// stays, unannounced.
func TestPresenceNodeKill(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	a, b := cl.start(t, "A", nil), cl.start(t, "B", nil)
	p := cl.startProcess(t, "P", nil)
	waitUp(t, a, b, p)
	const channel = "presence-kill"

	obsA, obsB := harness.Dial(t, a), harness.Dial(t, b)
	join(t, obsA, channel, "obsA")
	join(t, obsB, channel, "obsB")
	for _, user := range []string{"gone1", "gone2", "both"} {
		join(t, harness.Dial(t, p), channel, user)
	}
	join(t, harness.Dial(t, a), channel, "both")
	observers := []*pusherclient.Client{obsA, obsB}
	harness.Flush(t, a, channel, observers...)
	memberEvents(t, obsA, channel)
	memberEvents(t, obsB, channel)
	requireCounts(t, []*node{a, b}, channel, "both", "gone1", "gone2", "obsA", "obsB")

	p.proc.Kill()
	killed := time.Now()
	if !cl.redis.Real() {
		// miniredis has no clock of its own: keys expire only when a test
		// moves its time. Expire the dead node's lease by hand instead.
		require.NoError(t, cl.redis.Client(t).Del(t.Context(), cl.channel+":lease:"+processNodeID(t, p)).Err())
	}
	for _, o := range observers {
		gone := map[string]bool{}
		for range 2 {
			f, err := o.Expect(memberRemoved, channel, wait)
			require.NoError(t, err, "member_removed after the kill")
			gone[memberID(t, f)] = true
		}
		assert.Equal(t, map[string]bool{"gone1": true, "gone2": true}, gone)
	}
	took := time.Since(killed).Round(time.Millisecond)
	t.Logf("the killed node's members were announced gone %s after the kill (lease %s)", took, lease)
	assert.Less(t, took, 2*lease, "members of a killed node go within about a lease")

	// Once the dead node is off the node list nobody can reap it again;
	// then exactly one member_removed per departed user, none for "both".
	nodesKey := cl.channel + ":nodes"
	rc := cl.redis.Client(t)
	eventually(t, wait, "the dead node leaves "+nodesKey, func() (bool, string) {
		n, err := rc.SCard(t.Context(), nodesKey).Result()
		return err == nil && n == 2, fmt.Sprint(n, err)
	})
	requireNoMemberEvents(t, b, channel, observers...)
	requireCounts(t, []*node{a, b}, channel, "both", "obsA", "obsB")
	for _, n := range []*node{a, b} {
		fresh := harness.Dial(t, n)
		assert.Equal(t, []string{"both", "obsA", "obsB"}, join(t, fresh, channel, "obsA"), "a fresh subscriber on %s", n)
	}
}

var nodeIDPattern = regexp.MustCompile(`msg="redis link up".* node=([0-9a-f]+)`)

// processNodeID returns the node id a process node logged when its Redis
// link came up.
func processNodeID(t testing.TB, n *node) string {
	t.Helper()
	m := nodeIDPattern.FindStringSubmatch(n.proc.Output())
	require.NotNil(t, m, "the node id in the log of %s:\n%s", n, n.proc.Output())
	return m[1]
}
