package cluster_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/fizz-server/fizz/test/harness"
	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestClusterMetrics: every query of the HTTP API answers for the whole
// cluster, whichever node is asked, including one with no socket at all:
// counts are summed, user ids merged (a user on two nodes counts once),
// and a channel whose subscribers all live on another node is listed.
func TestClusterMetrics(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, true, 3, nil)
	a, b := nodes[0], nodes[1]
	const (
		room    = "presence-room"
		shared  = "public-shared" // subscribers on A and B
		onlyOnB = "public-only-b"
	)
	// A: u1 on the presence channel, one socket on shared.
	// B: u1 again and u2 on the presence channel (u2 also on shared), one
	// socket on onlyOnB. C: nothing.
	a1, a2 := harness.Dial(t, a), harness.Dial(t, a)
	b1, b2, b3 := harness.Dial(t, b), harness.Dial(t, b), harness.Dial(t, b)
	join(t, a1, room, "u1")
	harness.Subscribe(t, a2, shared)
	join(t, b1, room, "u1")
	join(t, b2, room, "u2")
	harness.Subscribe(t, b2, shared)
	harness.Subscribe(t, b3, onlyOnB)
	const sockets = 5

	for _, n := range nodes {
		t.Run("through "+n.name, func(t *testing.T) {
			userCountInfo := "user_count"
			list, err := n.pusher.Channels(pusherhttp.ChannelsParams{Info: &userCountInfo})
			require.NoError(t, err)
			assert.ElementsMatch(t, []string{room, shared, onlyOnB}, keys(list.Channels), "GET channels")
			assert.Equal(t, 2, list.Channels[room].UserCount, "GET channels: user_count of %s", room)

			prefix := "presence-"
			list, err = n.pusher.Channels(pusherhttp.ChannelsParams{FilterByPrefix: &prefix, Info: &userCountInfo})
			require.NoError(t, err)
			assert.Equal(t, []string{room}, keys(list.Channels), "GET channels?filter_by_prefix=presence-")

			var subs struct {
				Channels map[string]struct {
					SubscriptionCount int `json:"subscription_count"`
				} `json:"channels"`
			}
			apiJSON(t, n, http.MethodGet, "/channels", map[string]string{"info": "subscription_count"}, nil, &subs)
			assert.Equal(t, 2, subs.Channels[shared].SubscriptionCount, "GET channels?info=subscription_count: %s", shared)
			assert.Equal(t, 1, subs.Channels[onlyOnB].SubscriptionCount, "GET channels?info=subscription_count: %s", onlyOnB)

			both := "user_count,subscription_count"
			ch, err := n.pusher.Channel(room, pusherhttp.ChannelParams{Info: &both})
			require.NoError(t, err)
			assert.True(t, ch.Occupied)
			assert.Equal(t, 2, ch.UserCount, "GET channels/%s: user_count", room)
			assert.Equal(t, 3, ch.SubscriptionCount, "GET channels/%s: subscription_count", room)

			subCount := "subscription_count"
			ch, err = n.pusher.Channel(onlyOnB, pusherhttp.ChannelParams{Info: &subCount})
			require.NoError(t, err)
			assert.True(t, ch.Occupied, "GET channels/%s", onlyOnB)
			assert.Equal(t, 1, ch.SubscriptionCount, "GET channels/%s: subscription_count", onlyOnB)

			assert.Equal(t, []string{"u1", "u2"}, channelUsers(t, n, room), "GET channels/%s/users", room)
			assert.Equal(t, sockets, connections(t, n), "GET connections")

			trig, err := n.pusher.TriggerWithParams(room, "info", "x", pusherhttp.TriggerParams{Info: &both})
			require.NoError(t, err)
			require.Contains(t, trig.Channels, room)
			assert.Equal(t, 2, deref(trig.Channels[room].UserCount), "trigger info user_count")
			assert.Equal(t, 3, deref(trig.Channels[room].SubscriptionCount), "trigger info subscription_count")

			batch, err := n.pusher.TriggerBatch([]pusherhttp.Event{
				{Channel: room, Name: "info", Data: "x", Info: &both},
				{Channel: onlyOnB, Name: "info", Data: "x", Info: &subCount},
			})
			require.NoError(t, err)
			require.Len(t, batch.Batch, 2)
			assert.Equal(t, 2, deref(batch.Batch[0].UserCount), "batch info user_count")
			assert.Equal(t, 3, deref(batch.Batch[0].SubscriptionCount), "batch info subscription_count")
			assert.Equal(t, 1, deref(batch.Batch[1].SubscriptionCount), "batch info subscription_count of %s", onlyOnB)
		})
	}

	t.Run("a user leaving one node still counts once", func(t *testing.T) {
		require.NoError(t, a1.Unsubscribe(room))
		require.NoError(t, a1.Ping())
		for _, n := range nodes {
			assert.Equal(t, 2, userCount(t, n, room), "user_count through %s", n)
			assert.Equal(t, []string{"u1", "u2"}, channelUsers(t, n, room), "users through %s", n)
		}
		require.NoError(t, b1.Unsubscribe(room))
		require.NoError(t, b1.Ping())
		for _, n := range nodes {
			assert.Equal(t, 1, userCount(t, n, room), "user_count through %s", n)
			assert.Equal(t, []string{"u2"}, channelUsers(t, n, room), "users through %s", n)
		}
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func deref(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// rawChannel returns GET channels/{c} as raw JSON attributes.
func rawChannel(t testing.TB, n *node, channel string, info string) map[string]json.RawMessage {
	t.Helper()
	var out map[string]json.RawMessage
	var q map[string]string
	if info != "" {
		q = map[string]string{"info": info}
	}
	apiJSON(t, n, http.MethodGet, "/channels/"+channel, q, nil, &out)
	return out
}
