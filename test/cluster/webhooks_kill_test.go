package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/hookrecv"
)

// Log lines of the node that sends the cluster's webhooks.
const (
	leadingLine    = "this node sends the cluster's webhooks"
	notLeadingLine = "this node no longer sends the cluster's webhooks"
)

// leads reports whether a process node's log says it sends the cluster's
// webhooks now.
func leads(n *node) bool {
	out := n.proc.Output()
	return strings.LastIndex(out, leadingLine) > strings.LastIndex(out, notLeadingLine)
}

// TestWebhooksSurviveLeaderKill: the node that sends the cluster's
// webhooks is killed with SIGKILL while the receiver answers 500 and
// webhooks it read are pending; once the receiver answers 200 again, a
// survivor takes the lead (within the lease and a few seconds) and every
// webhook arrives, under the outbox id it had before: none is lost.
func TestWebhooksSurviveLeaderKill(t *testing.T) {
	t.Parallel()
	r := hookrecv.New(t)
	r.Fail(true)
	cl := newCluster(t)
	hooks, err := json.Marshal([]map[string]any{{
		"url":         r.URL(),
		"event_types": []string{pusher.WebhookChannelOccupied, pusher.WebhookMemberAdded, pusher.WebhookClientEvent},
	}})
	require.NoError(t, err)
	env := map[string]string{
		"FIZZ_APP_WEBHOOKS":                 string(hooks),
		"FIZZ_WEBHOOK_LEAVE_DELAY":          "100ms",
		"FIZZ_WEBHOOK_TIMEOUT":              "2s",
		"FIZZ_WEBHOOK_RETRY_FOR":            "2m",
		"FIZZ_APP_CLIENT_EVENTS_PER_SECOND": "0",
	}
	nodes := []*node{cl.startProcess(t, "P", env), cl.startProcess(t, "Q", env), cl.startProcess(t, "R", env)}
	waitUp(t, nodes...)
	var leader *node
	eventually(t, wait, "one node leads the webhooks", func() (bool, string) {
		var leading []*node
		for _, n := range nodes {
			if leads(n) {
				leading = append(leading, n)
			}
		}
		if len(leading) == 1 {
			leader = leading[0]
		}
		return len(leading) == 1, fmt.Sprint(leading)
	})
	rdb := cl.redis.Client(t)
	leaderKey := cl.channel + ":wh:leader"
	ctx := context.Background()
	oldID, err := rdb.Get(ctx, leaderKey).Result()
	require.NoError(t, err, "the leader key %s", leaderKey)
	t.Logf("leader: %s (node id %s)", leader, oldID)

	// Events produced on every node, the leader too.
	want := map[string]bool{}
	for i := range 6 {
		n := nodes[i%len(nodes)]
		c := harness.Dial(t, n)
		public, private, user := fmt.Sprintf("kill-%d", i), fmt.Sprintf("private-kill-%d", i), fmt.Sprintf("ku%d", i)
		harness.Subscribe(t, c, public)
		join(t, c, "presence-kill", user)
		harness.Subscribe(t, c, private)
		require.NoError(t, c.Trigger("client-kill", private, fmt.Sprint(i)))
		require.NoError(t, c.Ping())
		want["channel_occupied:"+public] = true
		want["channel_occupied:"+private] = true
		want["member_added:presence-kill:"+user] = true
		want["client_event:"+private+":client-kill"] = true
	}
	want["channel_occupied:presence-kill"] = true
	missing := func(evs []hookrecv.Event) []string {
		seen := map[string]bool{}
		for _, e := range evs {
			seen[e.String()] = true
		}
		var out []string
		for w := range want {
			if !seen[w] {
				out = append(out, w)
			}
		}
		return out
	}
	// The leader has read them all: each was tried (and failed).
	eventually(t, wait, "every webhook tried by the leader", func() (bool, string) {
		m := missing(r.All())
		return len(m) == 0, fmt.Sprint(m)
	})
	require.Empty(t, r.Accepted())
	tried := map[string]string{}
	for _, e := range r.All() {
		tried[e.String()] = e.ID
	}

	leader.proc.Kill()
	r.Fail(false)
	took := eventually(t, lease+8*time.Second, "every webhook delivered after the kill", func() (bool, string) {
		m := missing(r.Accepted())
		return len(m) == 0, fmt.Sprintf("missing %v", m)
	})
	t.Logf("every webhook delivered %s after the kill (lease %s)", took, lease)
	for _, e := range r.Accepted() {
		if id, ok := tried[e.String()]; ok && want[e.String()] {
			assert.Equal(t, id, e.ID, "%s keeps its outbox id", e)
		}
	}
	newID, err := rdb.Get(ctx, leaderKey).Result()
	require.NoError(t, err)
	assert.NotEqual(t, oldID, newID, "a survivor leads")
	leading := 0
	for _, n := range nodes {
		if n != leader && leads(n) {
			leading++
		}
	}
	assert.Equal(t, 1, leading, "one survivor says it leads")
}

// TestWebhookUndoneForOneHookIsKeptForAnother: with two webhooks, one
// that wants channel_vacated (its leave delay undoes a flap) and one that
// wants channel_occupied only, the occupied that ends a flap is still owed
// to the second: it must stay in the outbox until that one has it, so
// that a leader killed meanwhile leaves it to the next. Both occupied
// events reach the second webhook.
func TestWebhookUndoneForOneHookIsKeptForAnother(t *testing.T) {
	t.Parallel()
	ra, rb := hookrecv.New(t), hookrecv.New(t)
	rb.Fail(true)
	cl := newCluster(t)
	hooks, err := json.Marshal([]map[string]any{
		{"url": ra.URL(), "event_types": []string{pusher.WebhookChannelOccupied, pusher.WebhookChannelVacated}},
		{"url": rb.URL(), "event_types": []string{pusher.WebhookChannelOccupied}, "filter": map[string]string{"channel_name_starts_with": "undone"}},
	})
	require.NoError(t, err)
	env := map[string]string{
		"FIZZ_APP_WEBHOOKS":        string(hooks),
		"FIZZ_WEBHOOK_LEAVE_DELAY": "10s",
		"FIZZ_WEBHOOK_RETRY_FOR":   "2m",
	}
	nodes := []*node{cl.startProcess(t, "P", env), cl.startProcess(t, "Q", env)}
	waitUp(t, nodes...)
	var leader, other *node
	eventually(t, wait, "one node leads the webhooks", func() (bool, string) {
		a, b := leads(nodes[0]), leads(nodes[1])
		leader, other = nodes[0], nodes[1]
		if b {
			leader, other = nodes[1], nodes[0]
		}
		return a != b, fmt.Sprintf("P %v, Q %v", a, b)
	})

	const ch, barrier = "undone", "barrier" // B does not want the barrier
	c := harness.Dial(t, other)             // survives the kill
	harness.Subscribe(t, c, ch)
	eventually(t, wait, "the first occupied: sent to A, tried on B", func() (bool, string) {
		return len(ra.Accepted()) == 1 && len(rb.All()) >= 1, fmt.Sprintf("A %v, B %v", ra.Accepted(), rb.All())
	})
	// A flap, within the leave delay: A hears nothing of it.
	require.NoError(t, c.Unsubscribe(ch))
	require.NoError(t, c.Ping())
	eventually(t, wait, ch+" vacated", func() (bool, string) {
		info, err := other.pusher.Channel(ch, pusherhttp.ChannelParams{})
		return err == nil && !info.Occupied, fmt.Sprint(info, err)
	})
	harness.Subscribe(t, c, ch)
	// A barrier: A's occupied of another channel, and that entry out of
	// the outbox, so that whatever the leader finished before it has left
	// the outbox too.
	harness.Subscribe(t, c, barrier)
	rdb := cl.redis.Client(t)
	stream := cl.channel + ":wh:" + harness.AppID
	eventually(t, wait, "the barrier sent and out of the outbox", func() (bool, string) {
		entries, err := rdb.XRange(context.Background(), stream, "-", "+").Result()
		if err != nil {
			return false, err.Error()
		}
		for _, e := range entries {
			if strings.Contains(fmt.Sprint(e.Values), barrier) {
				return false, fmt.Sprint(entries)
			}
		}
		return len(ra.Accepted()) == 2, fmt.Sprint(ra.Accepted(), entries)
	})

	leader.proc.Kill()
	rb.Fail(false)
	eventually(t, lease+8*time.Second, "both occupied at B after the kill", func() (bool, string) {
		got := 0
		for _, e := range rb.Accepted() {
			if e.Name == pusher.WebhookChannelOccupied && e.Channel == ch {
				got++
			}
		}
		return got >= 2, fmt.Sprintf("B accepted %v", rb.Accepted())
	})
}
