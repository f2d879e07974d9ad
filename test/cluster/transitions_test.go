package cluster_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// transitionsOf sums fizz_channel_transitions_total of kind over nodes:
// the cluster's count of that transition, each decided by one node.
func transitionsOf(t testing.TB, nodes []*node, kind string) int {
	t.Helper()
	return int(sumMetric(t, nodes, "fizz_channel_transitions_total", "kind", kind))
}

// atOnce runs f for each client on its own goroutine, released together,
// and fails on the first error.
func atOnce(t *testing.T, clients []*pusherclient.Client, f func(i int, c *pusherclient.Client) error) {
	t.Helper()
	start := make(chan struct{})
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			<-start
			errs[i] = f(i, c)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "client %d", i)
	}
}

// TestChannelTransitionsAreDecidedOnce: round after round, sockets on
// three nodes subscribe to a public and a presence channel all at once,
// then all leave at once (some by closing). However the changes interleave,
// the cluster decides each channel occupied once and vacated once per
// round, and each presence member added once and removed once, even the
// user with a socket on every node.
func TestChannelTransitionsAreDecidedOnce(t *testing.T) {
	t.Parallel()
	const (
		rounds  = 8
		perNode = 3
	)
	for _, scaled := range []bool{true, false} {
		t.Run(fmt.Sprintf("scaling=%v", scaled), func(t *testing.T) {
			nodes := startNodes(t, scaled, 3, nil)
			if !scaled {
				nodes = nodes[:1]
			}
			const public, presence = "occupancy", "presence-occupancy"
			users := map[string]bool{}
			for round := range rounds {
				var clients []*pusherclient.Client
				var ids []string
				for _, n := range nodes {
					for i := range perNode {
						clients = append(clients, harness.Dial(t, n))
						id := fmt.Sprintf("%s-%d", n, i)
						if i == 0 {
							id = "everywhere" // one user on every node
						}
						ids = append(ids, id)
						users[id] = true
					}
				}
				atOnce(t, clients, func(i int, c *pusherclient.Client) error {
					f, err := c.Subscribe(public, "", "")
					if err == nil && f.Event != "pusher_internal:subscription_succeeded" {
						err = fmt.Errorf("subscribe %s: %s", public, f)
					}
					if err == nil {
						f, err = trySubscribePresence(c, presence, ids[i])
					}
					if err == nil && f.Event != "pusher_internal:subscription_succeeded" {
						err = fmt.Errorf("subscribe %s: %s", presence, f)
					}
					return err
				})
				// Closing a socket leaves both channels; the others leave
				// one by one.
				atOnce(t, clients, func(i int, c *pusherclient.Client) error {
					if i%3 == 2 {
						return c.Close()
					}
					if err := c.Unsubscribe(public); err != nil {
						return err
					}
					if err := c.Unsubscribe(presence); err != nil {
						return err
					}
					return c.Ping()
				})
				for _, c := range clients {
					_ = c.Close()
				}
				want := 2 * (round + 1)
				eventually(t, wait, fmt.Sprintf("round %d: both channels vacated", round), func() (bool, string) {
					got := transitionsOf(t, nodes, "channel_vacated")
					return got == want, fmt.Sprint(got)
				})
				assert.Equal(t, want, transitionsOf(t, nodes, "channel_occupied"), "round %d: channels occupied", round)
				members := len(users) * (round + 1)
				eventually(t, wait, fmt.Sprintf("round %d: members removed", round), func() (bool, string) {
					got := transitionsOf(t, nodes, "member_removed")
					return got == members, fmt.Sprint(got)
				})
				assert.Equal(t, members, transitionsOf(t, nodes, "member_added"), "round %d: members added", round)
			}
			waitConnections(t, nodes[0], 0)
			assert.Equal(t, 2*rounds, transitionsOf(t, nodes, "channel_occupied"), "nothing decided late")
			assert.Equal(t, 2*rounds, transitionsOf(t, nodes, "channel_vacated"))
		})
	}
}
