package cluster_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// TestPresenceLeaveDuringOutage: a member leaves while Redis is down, and
// Redis comes back empty (a crash without persistence). The member's
// node told its own sockets at once; once the cluster is back the other
// nodes' sockets must hear it too, or their member lists keep a ghost
// that no later event removes.
func TestPresenceLeaveDuringOutage(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	a, b := cl.start(t, "A", nil), cl.start(t, "B", nil)
	waitUp(t, a, b)
	const channel = "presence-outage-leave"
	obsA, obsB := harness.Dial(t, a), harness.Dial(t, b)
	join(t, obsA, channel, "obsA")
	join(t, obsB, channel, "obsB")
	leaver := harness.Dial(t, a)
	join(t, leaver, channel, "leaver")
	harness.Flush(t, a, channel, obsA, obsB)
	memberEvents(t, obsA, channel)
	memberEvents(t, obsB, channel)

	cl.redis.Stop()
	waitHealth(t, http.StatusServiceUnavailable, a, b)
	require.NoError(t, leaver.Close())
	// Its leave cannot be written to Redis now; the node owes the cluster
	// a member_removed (docs/decisions.md: the leave marks it dirty). A
	// answers for itself alone while cut off: obsA is left.
	waitConnections(t, a, 1)

	cl.redis.Restart()
	back := time.Now()
	waitUp(t, a, b)
	// The node re-asserts within a lease/3 of Redis coming back; wait for
	// three leases in all.
	for i, o := range []*node{a, b} {
		obs := []*pusherclient.Client{obsA, obsB}[i]
		f, err := obs.ExpectFunc(pusherclient.Match(memberRemoved, channel), []time.Duration{2 * lease, lease}[i])
		if assert.NoError(t, err, "the socket on %s hears that leaver left during the outage", o) {
			assert.Equal(t, "leaver", memberID(t, f))
			t.Logf("the socket on %s heard it %s after Redis came back", o, time.Since(back).Round(time.Millisecond))
		}
	}
	for _, n := range []*node{a, b} {
		assert.Equal(t, []string{"obsA", "obsB"}, channelUsers(t, n, channel), "users through %s", n)
		eventually(t, 4*lease+wait, fmt.Sprintf("a fresh subscriber on %s", n), func() (bool, string) {
			fresh := harness.Dial(t, n)
			defer fresh.Close()
			f, err := trySubscribePresence(fresh, channel, "obsA")
			if err != nil || f.Event != "pusher_internal:subscription_succeeded" {
				return false, fmt.Sprint(f, err)
			}
			ids := members(t, f)
			return fmt.Sprint(ids) == "[obsA obsB]", fmt.Sprint(ids)
		})
	}
}
