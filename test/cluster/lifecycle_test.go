package cluster_test

import (
	"testing"
	"time"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stopBudget is how long a graceful stop of an idle node may take. The
// shutdown grace is 0 in the tests; what remains is closing the Redis link.
const stopBudget = 5 * time.Second

// TestNodeStopsPromptly: a scaling node with a live Redis link stops
// within a few seconds (fx would give up after app.StopTimeout, 15 s, and
// leave the subscription goroutine running), and the node that stays
// sees the stopped node's members leave at once (the lease is dropped at
// shutdown), long before the lease would expire.
func TestNodeStopsPromptly(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, true, 2, nil)
	a, b := nodes[0], nodes[1]
	const channel = "presence-stop"
	obs := harness.Dial(t, a)
	join(t, obs, channel, "stays")
	leaver := harness.Dial(t, b)
	join(t, leaver, channel, "leaves")
	harness.Expect(t, obs, "pusher_internal:member_added", channel)

	start := time.Now()
	b.inproc.Stop()
	took := time.Since(start)
	t.Logf("stopping a scaling node took %s", took.Round(time.Millisecond))
	assert.Less(t, took, stopBudget, "graceful stop of a scaling node")

	f := harness.Expect(t, obs, "pusher_internal:member_removed", channel)
	require.Equal(t, "leaves", memberID(t, f))
	assert.Equal(t, []string{"stays"}, channelUsers(t, a, channel))
}
