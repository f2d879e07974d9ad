package e2e

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// pair dials two sockets and joins both to channel (as users "1" and "2"
// on presence channels).
func pair(t testing.TB, n *harness.Node, channel string) (sender, receiver *pusherclient.Client) {
	t.Helper()
	sender, receiver = harness.Dial(t, n), harness.Dial(t, n)
	join(t, sender, channel, "1")
	join(t, receiver, channel, "2")
	return sender, receiver
}

// requireRelayed sends a client event from sender and requires that
// receiver gets it with the same data and sender does not.
func requireRelayed(t testing.TB, n *harness.Node, channel string, sender, receiver *pusherclient.Client) pusherclient.Frame {
	t.Helper()
	require.NoError(t, sender.Trigger("client-typing", channel, map[string]any{"who": "me", "n": 1}))
	f := harness.Expect(t, receiver, "client-typing", channel)
	assert.JSONEq(t, `{"who":"me","n":1}`, string(f.Data), "client event data is relayed as sent")
	harness.Flush(t, n, channel, sender, receiver)
	harness.RequireNone(t, sender, "client-typing", channel)
	require.NoError(t, sender.ExpectNone(pusher.EventError, 0))
	return f
}

// requireRefused sends a client event from sender and requires a
// pusher:error 4301 for it, with nothing relayed to receiver (nil when
// there is none).
func requireRefused(t testing.TB, n *harness.Node, channel string, sender, receiver *pusherclient.Client) {
	t.Helper()
	require.NoError(t, sender.Trigger("client-typing", channel, map[string]any{"who": "me"}))
	harness.RequireError(t, sender, pusher.CodeClientEventBlocked)
	harness.RequireOpen(t, sender)
	if receiver != nil {
		harness.Flush(t, n, channel, receiver)
		harness.RequireNone(t, receiver, "client-typing", channel)
	}
}

func TestClientEventsFromMembers(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil) // accept_client_events_from defaults to members

	t.Run("private channel: relayed, sender excluded", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "private-chat")
		f := requireRelayed(t, n, "private-chat", sender, receiver)
		assert.Empty(t, f.UserID, "no user_id off presence channels")
	})
	t.Run("private cache channel: relayed", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "private-cache-chat")
		requireRelayed(t, n, "private-cache-chat", sender, receiver)
	})
	t.Run("presence channel: relayed with the sender's user_id", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "presence-chat")
		f := requireRelayed(t, n, "presence-chat", sender, receiver)
		assert.Equal(t, "1", f.UserID)
		assert.True(t, isJSONString(rawField(t, f.Raw, "user_id")), "user_id is a string: %s", f.Raw)
	})
	t.Run("public channel: refused", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "public-chat")
		requireRefused(t, n, "public-chat", sender, receiver)
	})
	t.Run("public cache channel: refused", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "cache-chat")
		requireRefused(t, n, "cache-chat", sender, receiver)
	})
	t.Run("encrypted channel: refused", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "private-encrypted-chat")
		requireRefused(t, n, "private-encrypted-chat", sender, receiver)
	})
	t.Run("encrypted cache channel: refused", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "private-encrypted-cache-chat")
		requireRefused(t, n, "private-encrypted-cache-chat", sender, receiver)
	})
	t.Run("not subscribed: refused", func(t *testing.T) {
		t.Parallel()
		outsider := harness.Dial(t, n)
		_, receiver := pair(t, n, "private-closed")
		requireRefused(t, n, "private-closed", outsider, receiver)
	})
	t.Run("after unsubscribing: refused", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "private-left")
		require.NoError(t, sender.Unsubscribe("private-left"))
		requireRefused(t, n, "private-left", sender, receiver)
	})
	t.Run("no channel: refused", func(t *testing.T) {
		t.Parallel()
		c := harness.Dial(t, n)
		require.NoError(t, c.Trigger("client-nowhere", "", map[string]any{}))
		harness.RequireError(t, c, pusher.CodeClientEventBlocked)
		harness.RequireOpen(t, c)
	})
	t.Run("rate limit: 10 per second, then 4301", func(t *testing.T) {
		t.Parallel()
		sender, receiver := pair(t, n, "private-burst")
		const burst = 30
		for i := range burst {
			require.NoError(t, sender.Trigger("client-burst", "private-burst", map[string]int{"i": i}))
		}
		barrier(t, sender) // every event of the burst has been handled
		refused := 0
		for _, f := range sender.Pending() {
			if f.Event == pusher.EventError {
				e, err := f.PusherError()
				require.NoError(t, err)
				require.Equal(t, pusher.CodeClientEventBlocked, e.Code, "%s", f)
				refused++
			}
		}
		assert.Positive(t, refused, "a burst of %d must hit the limit of 10 per second", burst)
		harness.Flush(t, n, "private-burst", receiver)
		relayed := 0
		for _, f := range receiver.Pending() {
			if f.Event == "client-burst" {
				relayed++
			}
		}
		assert.GreaterOrEqual(t, relayed, 10, "the first 10 pass")
		assert.Equal(t, burst, relayed+refused, "each event is either relayed or refused")
		harness.RequireOpen(t, sender)
	})
}

func TestClientEventsFromAll(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].AcceptClientEventsFrom = apps.ClientEventsAll })
	tests := []struct {
		channel string
		relayed bool
	}{
		{channel: "public-chat", relayed: true},
		{channel: "cache-chat", relayed: true},
		{channel: "private-chat", relayed: true},
		{channel: "presence-chat", relayed: true},
		{channel: "private-encrypted-chat", relayed: false},
	}
	for _, tt := range tests {
		t.Run(tt.channel, func(t *testing.T) {
			t.Parallel()
			sender, receiver := pair(t, n, tt.channel)
			if tt.relayed {
				requireRelayed(t, n, tt.channel, sender, receiver)
				return
			}
			requireRefused(t, n, tt.channel, sender, receiver)
		})
	}
}

func TestClientEventsFromNone(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].AcceptClientEventsFrom = apps.ClientEventsNone })
	for _, channel := range []string{"private-chat", "presence-chat", "public-chat"} {
		t.Run(channel, func(t *testing.T) {
			t.Parallel()
			sender, receiver := pair(t, n, channel)
			requireRefused(t, n, channel, sender, receiver)
		})
	}
}
