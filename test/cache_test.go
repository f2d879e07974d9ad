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

// syncChannel is the public channel the cache tests flush through: once a
// marker triggered after an event arrives there, the node has handled the
// event (events are handled in publish order).
const syncChannel = "cache-test-sync"

// join subscribes c to any kind of channel as user id and returns the
// subscription_succeeded frame.
func join(t testing.TB, c *pusherclient.Client, channel string, id any) pusherclient.Frame {
	t.Helper()
	if pusher.KindOf(channel).Presence {
		f := harness.JoinPresence(t, c, channel, id, nil)
		require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "%s", f)
		return f
	}
	return harness.Subscribe(t, c, channel)
}

// TestCacheChannels covers the four kinds of cache channel: a new
// subscriber gets pusher:cache_miss while there is no event, the last event
// is kept with no subscriber at all and replayed to the next one, and a
// client event never replaces it. Client events are accepted from all, so
// that even the public cache- kind can try.
func TestCacheChannels(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].AcceptClientEventsFrom = apps.ClientEventsAll })
	syncer := harness.Dial(t, n)
	harness.Subscribe(t, syncer, syncChannel)
	tests := []string{"cache-", "private-cache-", "presence-cache-", "private-encrypted-cache-"}
	for _, prefix := range tests {
		t.Run(prefix, func(t *testing.T) {
			channel := unique(prefix + "scores-")
			kind := pusher.KindOf(channel)
			data := func(f pusherclient.Frame) string {
				if kind.Encrypted {
					return decrypt(t, f, n.MasterKey)
				}
				return f.Text()
			}

			first := harness.Dial(t, n)
			join(t, first, channel, "first")
			harness.Expect(t, first, pusher.EventCacheMiss, channel)

			// Leave: the channel has no subscriber when the events come.
			require.NoError(t, first.Unsubscribe(channel))
			barrier(t, first)
			trigger(t, n, channel, "score", map[string]int{"goals": 1})
			trigger(t, n, channel, "score", map[string]int{"goals": 2})
			harness.Flush(t, n, syncChannel, syncer)

			second := harness.Dial(t, n)
			join(t, second, channel, "second")
			f := harness.Expect(t, second, "score", channel)
			assert.JSONEq(t, `{"goals":2}`, data(f), "the last event is replayed")
			barrier(t, second)
			harness.RequireNone(t, second, pusher.EventCacheMiss, channel)
			harness.RequireNone(t, second, "score", channel) // only the last one

			if !kind.Encrypted {
				// A client event does not become the cached event.
				require.NoError(t, second.Trigger("client-guess", channel, map[string]int{"goals": 99}))
				barrier(t, second)
				harness.Flush(t, n, syncChannel, syncer)
			}

			third := harness.Dial(t, n)
			join(t, third, channel, "third")
			f = harness.Expect(t, third, "score", channel)
			assert.JSONEq(t, `{"goals":2}`, data(f))
			barrier(t, third)
			harness.RequireNone(t, third, "client-guess", channel)
			harness.RequireNone(t, third, pusher.EventCacheMiss, channel)
		})
	}
}

// TestPresenceCacheMemberEventsNotCached: member_added and member_removed
// are not events of the channel's last-event cache; a new member of a
// presence-cache- channel that never had an event gets pusher:cache_miss.
func TestPresenceCacheMemberEventsNotCached(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	const channel = "presence-cache-lobby"
	first, second, third := harness.Dial(t, n), harness.Dial(t, n), harness.Dial(t, n)

	join(t, first, channel, "first")
	harness.Expect(t, first, pusher.EventCacheMiss, channel)

	join(t, second, channel, "second") // first hears member_added
	harness.Expect(t, first, pusher.EventMemberAdded, channel)
	f, err := second.ExpectFunc(func(f pusherclient.Frame) bool {
		return f.Channel == channel && f.Event != pusher.EventSubscriptionSucceeded
	}, wait)
	require.NoError(t, err)
	assert.Equal(t, pusher.EventCacheMiss, f.Event, "the second member got %s instead of pusher:cache_miss", f)

	require.NoError(t, second.Close()) // first hears member_removed
	harness.Expect(t, first, pusher.EventMemberRemoved, channel)
	join(t, third, channel, "third")
	f, err = third.ExpectFunc(func(f pusherclient.Frame) bool {
		return f.Channel == channel && f.Event != pusher.EventSubscriptionSucceeded
	}, wait)
	require.NoError(t, err)
	assert.Equal(t, pusher.EventCacheMiss, f.Event, "the third member got %s instead of pusher:cache_miss", f)
}
