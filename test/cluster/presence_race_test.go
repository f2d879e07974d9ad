package cluster_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// raceRounds is how many rounds TestPresenceConcurrentJoins plays; each
// takes a few tens of milliseconds.
const raceRounds = 40

// raceSocket is one socket of TestPresenceConcurrentJoins.
type raceSocket struct {
	user   string
	node   *node
	client *pusherclient.Client
	left   bool
}

// raceOp is what one socket does when the round's start is given.
type raceOp struct {
	socket *raceSocket
	leave  bool // unsubscribe; else subscribe as socket.user
}

// do subscribes or unsubscribes, then pings: the server handles a socket's
// frames in order, so once the pong is back the member event the change
// caused has been published.
func (op raceOp) do(channel string) error {
	c := op.socket.client
	var err error
	if op.leave {
		err = c.Unsubscribe(channel)
	} else {
		data := harness.PresenceData(op.socket.user, userInfo(op.socket.user))
		err = c.SendSubscribe(channel, harness.Auth(c, channel, data), data)
	}
	if err != nil {
		return err
	}
	return c.Ping()
}

// runAtOnce runs every op on its own goroutine, released together.
func runAtOnce(t *testing.T, channel string, ops []raceOp) {
	t.Helper()
	clients := make([]*pusherclient.Client, len(ops))
	for i, op := range ops {
		clients[i] = op.socket.client
	}
	atOnce(t, clients, func(i int, _ *pusherclient.Client) error { return ops[i].do(channel) })
}

// replay checks what a socket heard on channel, in arrival order, against
// the member list it was given: one subscription_succeeded before any
// member event, no member_added for a member it knew, no member_removed
// for one it did not. It returns the socket's final view of the members.
func replay(t *testing.T, s *raceSocket, channel string) map[string]bool {
	t.Helper()
	var view map[string]bool
	for _, f := range takeAll(s.client, channel) {
		where := fmt.Sprintf("socket %s of %s on %s", s.client.SocketID, s.user, s.node)
		switch f.Event {
		case pusher.EventSubscriptionSucceeded:
			require.Nil(t, view, "%s: a second subscription_succeeded", where)
			view = map[string]bool{}
			for _, id := range members(t, f) {
				view[id] = true
			}
		case memberAdded:
			require.NotNil(t, view, "%s: member_added before subscription_succeeded: %s", where, f)
			id := memberID(t, f)
			require.False(t, view[id], "%s: member_added for %s, already in its member list %v", where, id, sorted(view))
			view[id] = true
		case memberRemoved:
			require.NotNil(t, view, "%s: member_removed before subscription_succeeded: %s", where, f)
			id := memberID(t, f)
			require.True(t, view[id], "%s: member_removed for %s, not in its member list %v", where, id, sorted(view))
			delete(view, id)
		}
	}
	require.NotNil(t, view, "socket %s of %s got no subscription_succeeded", s.client.SocketID, s.user)
	return view
}

// takeAll removes every pending frame on channel from c's inbox and
// returns them in arrival order.
func takeAll(c *pusherclient.Client, channel string) []pusherclient.Frame {
	var out []pusherclient.Frame
	for range len(c.Pending()) {
		f, err := c.ExpectFunc(func(f pusherclient.Frame) bool { return f.Channel == channel }, 0)
		if err != nil {
			break
		}
		out = append(out, f)
	}
	return out
}

// TestPresenceConcurrentJoins: round after round, two to four users join
// one presence channel at the same moment through three nodes (some on the
// same node, one user sometimes with two sockets), then one member leaves
// while another user joins. Every socket must hear each member exactly
// once: its member list, then only the changes that list does not have,
// so that its final view is the channel's true member set.
//
// It does not run in parallel with the other tests: its bursts of sockets
// would shift their timing (the outage tests race heartbeats against the
// Redis link coming back), and they would make its rounds less tight.
func TestPresenceConcurrentJoins(t *testing.T) {
	nodes := startNodes(t, true, 3, nil)
	for round := range raceRounds {
		channel := fmt.Sprintf("presence-race-%d", round)
		var sockets []*raceSocket
		open := func(user string, n *node) *raceSocket {
			s := &raceSocket{user: user, node: n, client: harness.Dial(t, n)}
			sockets = append(sockets, s)
			return s
		}

		// Phase 1: 2 to 4 users join at once; on even rounds the first
		// user opens a second socket on another node at the same time.
		users := 2 + round%3
		var joins []raceOp
		for i := range users {
			joins = append(joins, raceOp{socket: open(fmt.Sprintf("u%d", i), nodes[(round+i)%len(nodes)])})
		}
		if round%2 == 0 {
			joins = append(joins, raceOp{socket: open("u0", nodes[(round+1)%len(nodes)])})
		}
		runAtOnce(t, channel, joins)

		// Phase 2: the last user leaves while a newcomer joins.
		leaver := joins[users-1].socket
		leaver.left = true
		runAtOnce(t, channel, []raceOp{
			{socket: leaver, leave: true},
			{socket: open("late", nodes[(round+2)%len(nodes)])},
		})

		want := map[string]bool{"late": true}
		var stayed []*pusherclient.Client
		for _, s := range sockets {
			if !s.left {
				want[s.user] = true
				stayed = append(stayed, s.client)
			}
		}
		// Every member event published so far reaches the sockets before
		// the marker.
		harness.Flush(t, nodes[round%len(nodes)], channel, stayed...)
		for _, s := range sockets {
			view := replay(t, s, channel)
			if !s.left {
				assert.Equal(t, sorted(want), sorted(view), "the final view of socket %s of %s on %s", s.client.SocketID, s.user, s.node)
			}
		}
		for _, s := range sockets {
			require.NoError(t, s.client.Close())
		}
	}
}
