package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/hookrecv"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// named returns the events named name on channel ("" for any channel).
func named(evs []hookrecv.Event, name, channel string) []hookrecv.Event {
	var out []hookrecv.Event
	for _, e := range evs {
		if e.Name == name && (channel == "" || e.Channel == channel) {
			out = append(out, e)
		}
	}
	return out
}

// has returns a condition for WaitFor: at least n events named name on
// channel.
func has(name, channel string, n int) func([]hookrecv.Event) bool {
	return func(evs []hookrecv.Event) bool { return len(named(evs, name, channel)) >= n }
}

// all returns a condition that holds when every one of conds does.
func all(conds ...func([]hookrecv.Event) bool) func([]hookrecv.Event) bool {
	return func(evs []hookrecv.Event) bool {
		for _, c := range conds {
			if !c(evs) {
				return false
			}
		}
		return true
	}
}

// onKey returns the names of the events about channel (and user, for
// member events; "" for channel events), in the order they came.
func onKey(evs []hookrecv.Event, channel, user string, names ...string) []string {
	out := []string{}
	for _, e := range evs {
		if e.Channel == channel && e.UserID == user && slices.Contains(names, e.Name) {
			out = append(out, e.Name)
		}
	}
	return out
}

// occupancyNames and memberNames are the event names of the two kinds of key.
var (
	occupancyNames = []string{pusher.WebhookChannelOccupied, pusher.WebhookChannelVacated}
	memberNames    = []string{pusher.WebhookMemberAdded, pusher.WebhookMemberRemoved}
)

// waitHooksIdle waits until the node holds no webhook event: every event
// read from the outbox is sent (or given up) to every webhook.
func waitHooksIdle(t testing.TB, n *harness.Node) {
	t.Helper()
	require.Eventually(t, func() bool { return n.Metric(t, "fizz_webhook_queue") == 0 }, wait, 5*time.Millisecond,
		"fizz_webhook_queue never went back to 0")
}

// hooked starts a node whose app sends every webhook to r.
func hooked(t testing.TB, r *hookrecv.Receiver, mutate func(*app.Config)) *harness.Node {
	return harness.Start(t, func(c *app.Config) {
		c.Apps[0].Webhooks = []apps.Webhook{{URL: r.URL()}}
		c.Webhooks.LeaveDelay = 100 * time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
}

// hookTypes is an app's one webhook to r, for the event names given.
func hookTypes(r *hookrecv.Receiver, names ...string) func(*app.Config) {
	return func(c *app.Config) { c.Apps[0].Webhooks = []apps.Webhook{{URL: r.URL(), EventTypes: names}} }
}

// TestWebhookEventsAndHeaders: each of the seven event types arrives with
// Pusher's fields, in a POST that pusher-http-go validates (key and
// signature), with the content type, the id header and the webhook's own
// headers; without batching, one event per POST.
func TestWebhookEventsAndHeaders(t *testing.T) {
	t.Parallel()
	r := hookrecv.New(t)
	n := hooked(t, r, func(c *app.Config) {
		c.Apps[0].Webhooks[0].Headers = map[string]string{"X-Custom": "custom-value", "Authorization": "Bearer token"}
	})
	public, private, presence, cache := unique("news-"), unique("private-chat-"), unique("presence-room-"), unique("cache-")

	c1, c2, c3 := harness.Dial(t, n), harness.Dial(t, n), harness.Dial(t, n)
	harness.Subscribe(t, c1, public)
	got := r.WaitFor("occupied and the count of "+public, all(
		has(pusher.WebhookChannelOccupied, public, 1), has(pusher.WebhookSubscriptionCount, public, 1)))
	occupied := named(got, pusher.WebhookChannelOccupied, public)[0]
	assert.Equal(t, map[string]json.RawMessage{"name": json.RawMessage(`"channel_occupied"`), "channel": json.RawMessage(`"` + public + `"`)},
		occupied.Raw, "channel_occupied has name and channel only")
	count := named(got, pusher.WebhookSubscriptionCount, public)[0]
	require.NotNil(t, count.SubscriptionCount, "subscription_count has its field: %v", count.Raw)
	assert.Equal(t, 1, *count.SubscriptionCount)

	// Presence: a string and a numeric user id; the channel's own
	// occupied and vacated.
	require.Equal(t, pusher.EventSubscriptionSucceeded, harness.JoinPresence(t, c2, presence, "u-1", map[string]string{"name": "One"}).Event)
	require.Equal(t, pusher.EventSubscriptionSucceeded, harness.JoinPresence(t, c3, presence, 42, nil).Event)
	r.WaitFor("two members and occupied", all(has(pusher.WebhookMemberAdded, presence, 2), has(pusher.WebhookChannelOccupied, presence, 1)))

	// Client events: a JSON string and an object as data, on a private and
	// a presence channel.
	harness.Subscribe(t, c1, private)
	require.NoError(t, c1.Trigger("client-typing", private, "a string, as sent"))
	require.NoError(t, c2.Send("client-said", presence, json.RawMessage(`{"text":"hello","n":[1,2]}`)))

	// A cache channel with nothing cached.
	f := harness.Subscribe(t, c1, cache)
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event)
	harness.Expect(t, c1, pusher.EventCacheMiss, cache)

	got = r.WaitFor("client events and cache_miss", all(
		has(pusher.WebhookClientEvent, private, 1), has(pusher.WebhookClientEvent, presence, 1), has(pusher.WebhookCacheMiss, cache, 1)))
	typing := named(got, pusher.WebhookClientEvent, private)[0]
	assert.Equal(t, "client-typing", typing.Event)
	assert.Equal(t, "a string, as sent", typing.Data, "a JSON string is sent as that string")
	assert.Equal(t, c1.SocketID, typing.SocketID)
	assert.NotContains(t, typing.Raw, "user_id", "no user_id on a private channel: %v", typing.Raw)
	said := named(got, pusher.WebhookClientEvent, presence)[0]
	assert.Equal(t, "client-said", said.Event)
	assert.Equal(t, `{"text":"hello","n":[1,2]}`, said.Data, "data is the JSON the client sent, as a string")
	assert.True(t, isJSONString(said.Raw["data"]), "data is a JSON string: %s", said.Raw["data"])
	assert.Equal(t, c2.SocketID, said.SocketID)
	assert.Equal(t, "u-1", said.UserID, "user_id on a presence channel")
	miss := named(got, pusher.WebhookCacheMiss, cache)[0]
	assert.Equal(t, map[string]json.RawMessage{"name": json.RawMessage(`"cache_miss"`), "channel": json.RawMessage(`"` + cache + `"`)}, miss.Raw)

	// Leaving: member_removed per user, then vacated; the public channel's
	// vacated and its last count, 0.
	require.NoError(t, c2.Unsubscribe(presence))
	require.NoError(t, c3.Close())
	require.NoError(t, c1.Unsubscribe(public))
	got = r.WaitFor("members removed, channels vacated, count 0", all(
		has(pusher.WebhookMemberRemoved, presence, 2), has(pusher.WebhookChannelVacated, presence, 1),
		has(pusher.WebhookChannelVacated, public, 1),
		func(evs []hookrecv.Event) bool {
			counts := named(evs, pusher.WebhookSubscriptionCount, public)
			if len(counts) == 0 {
				return false
			}
			last := counts[len(counts)-1]
			return last.SubscriptionCount != nil && *last.SubscriptionCount == 0
		}))
	added := map[string]bool{}
	for _, e := range named(got, pusher.WebhookMemberAdded, presence) {
		added[e.UserID] = true
		assert.True(t, isJSONString(e.Raw["user_id"]), "user_id is a string: %s", e.Raw["user_id"])
	}
	assert.Equal(t, map[string]bool{"u-1": true, "42": true}, added, "member_added user ids")
	removed := map[string]bool{}
	for _, e := range named(got, pusher.WebhookMemberRemoved, presence) {
		removed[e.UserID] = true
	}
	assert.Equal(t, added, removed, "member_removed user ids")
	for _, user := range []string{"u-1", "42"} {
		assert.Equal(t, memberNames, onKey(got, presence, user, memberNames...), "member events of %s", user)
	}
	for _, ch := range []string{public, presence} {
		assert.Equal(t, occupancyNames, onKey(got, ch, "", occupancyNames...), "occupancyNames events of %s", ch)
	}
	assert.Len(t, named(got, pusher.WebhookChannelVacated, public)[0].Raw, 2, "channel_vacated has name and channel only")

	// Every POST: signed (checked by the receiver), its headers, one event.
	for _, p := range r.Posts() {
		assert.Equal(t, http.StatusOK, p.Status)
		assert.Equal(t, "application/json", p.Header.Get("Content-Type"), "POST %d", p.N)
		assert.Equal(t, harness.AppKey, p.Header.Get("X-Pusher-Key"), "POST %d", p.N)
		assert.Equal(t, pusher.WebhookSignature(harness.AppSecret, p.Body), p.Header.Get("X-Pusher-Signature"), "POST %d", p.N)
		assert.NotEmpty(t, p.Header.Get("X-Fizz-Webhook-Id"), "POST %d", p.N)
		assert.Equal(t, "custom-value", p.Header.Get("X-Custom"), "POST %d", p.N)
		assert.Equal(t, "Bearer token", p.Header.Get("Authorization"), "POST %d", p.N)
		assert.Len(t, p.Events, 1, "POST %d: one event per POST without batching: %s", p.N, p.Body)
		var body struct {
			TimeMs int64 `json:"time_ms"`
		}
		require.NoError(t, json.Unmarshal(p.Body, &body))
		assert.WithinDuration(t, p.At, time.UnixMilli(body.TimeMs), 5*time.Second, "POST %d: time_ms", p.N)
	}
	ids := map[string]bool{}
	for _, e := range r.Accepted() {
		assert.False(t, ids[e.ID], "id %s sent twice with a 200", e.ID)
		ids[e.ID] = true
	}
}

// TestWebhookFilters: event_types and the channel name prefix and suffix
// filters; several webhooks of one app each get exactly what they want.
func TestWebhookFilters(t *testing.T) {
	t.Parallel()
	ref, prefixed, suffixed, members := hookrecv.New(t), hookrecv.New(t), hookrecv.New(t), hookrecv.New(t)
	n := harness.Start(t, func(c *app.Config) {
		c.Webhooks.LeaveDelay = 50 * time.Millisecond
		c.Apps[0].Webhooks = []apps.Webhook{
			{URL: ref.URL()},
			{URL: prefixed.URL(), EventTypes: []string{pusher.WebhookChannelOccupied}, Filter: apps.WebhookFilter{ChannelNameStartsWith: "private-"}},
			{URL: suffixed.URL(), EventTypes: []string{pusher.WebhookChannelOccupied, pusher.WebhookMemberAdded, pusher.WebhookClientEvent},
				Filter: apps.WebhookFilter{ChannelNameEndsWith: "-room"}},
			{URL: members.URL(), EventTypes: []string{pusher.WebhookMemberAdded, pusher.WebhookMemberRemoved},
				Filter: apps.WebhookFilter{ChannelNameStartsWith: "presence-", ChannelNameEndsWith: "-room"}},
		}
	})
	const (
		both      = "private-a-room" // private- and -room
		onlyStart = "private-b"
		onlyEnd   = "lobby-room"
		neither   = "plain"
		presRoom  = "presence-p-room"
		presOther = "presence-q"
	)
	c := harness.Dial(t, n)
	for _, ch := range []string{both, onlyStart, onlyEnd, neither} {
		harness.Subscribe(t, c, ch)
	}
	for _, ch := range []string{presRoom, presOther} {
		require.Equal(t, pusher.EventSubscriptionSucceeded, harness.JoinPresence(t, c, ch, "u1", nil).Event)
	}
	require.NoError(t, c.Trigger("client-x", both, "hi"))
	require.NoError(t, c.Trigger("client-y", onlyStart, "hi"))
	require.NoError(t, c.Close())
	// The reference webhook wants everything: once it has the last
	// vacated of each channel and the node holds nothing, every webhook
	// has had its events.
	chans := []string{both, onlyStart, onlyEnd, neither, presRoom, presOther}
	var conds []func([]hookrecv.Event) bool
	for _, ch := range chans {
		conds = append(conds, has(pusher.WebhookChannelVacated, ch, 1))
	}
	conds = append(conds, has(pusher.WebhookClientEvent, both, 1), has(pusher.WebhookClientEvent, onlyStart, 1),
		has(pusher.WebhookMemberRemoved, presRoom, 1), has(pusher.WebhookMemberRemoved, presOther, 1))
	ref.WaitFor("every event at the reference webhook", all(conds...))
	waitHooksIdle(t, n)

	assert.ElementsMatch(t, []string{"channel_occupied:" + both, "channel_occupied:" + onlyStart}, names(prefixed.Accepted()))
	assert.ElementsMatch(t, []string{
		"channel_occupied:" + both, "channel_occupied:" + onlyEnd, "channel_occupied:" + presRoom,
		"member_added:" + presRoom + ":u1", "client_event:" + both + ":client-x",
	}, names(suffixed.Accepted()))
	assert.ElementsMatch(t, []string{"member_added:" + presRoom + ":u1", "member_removed:" + presRoom + ":u1"}, names(members.Accepted()))
	for _, ch := range chans {
		assert.Equal(t, occupancyNames, onKey(ref.Accepted(), ch, "", occupancyNames...), "the reference webhook: %s", ch)
	}
}

// names returns each event's String, subscription counts left out.
func names(evs []hookrecv.Event) []string {
	out := []string{}
	for _, e := range evs {
		if e.Name != pusher.WebhookSubscriptionCount {
			out = append(out, e.String())
		}
	}
	return out
}

// TestWebhookBatching: with batching, the events of a burst come
// together, at most 100 per POST; without, one per POST.
func TestWebhookBatching(t *testing.T) {
	t.Parallel()
	const channels = 130 // 130 occupied and 130 counts: over two full batches
	for _, batching := range []bool{true, false} {
		t.Run(fmt.Sprintf("batching=%v", batching), func(t *testing.T) {
			t.Parallel()
			r := hookrecv.New(t)
			n := hooked(t, r, func(c *app.Config) {
				c.Apps[0].WebhookBatching = batching
				c.Webhooks.BatchWindow = time.Second
			})
			c := harness.Dial(t, n)
			prefix := unique("batch-")
			for i := range channels {
				require.NoError(t, c.SendSubscribe(fmt.Sprintf("%s-%d", prefix, i), "", ""))
			}
			for i := range channels {
				harness.Expect(t, c, pusher.EventSubscriptionSucceeded, fmt.Sprintf("%s-%d", prefix, i))
			}
			got := r.Wait(2 * channels)
			assert.Len(t, named(got, pusher.WebhookChannelOccupied, ""), channels)
			assert.Len(t, named(got, pusher.WebhookSubscriptionCount, ""), channels)
			posts := r.Posts()
			sizes := make([]int, len(posts))
			total := 0
			for i, p := range posts {
				sizes[i] = len(p.Events)
				total += len(p.Events)
				assert.Len(t, p.IDs, len(p.Events), "one id per event")
			}
			t.Logf("%d events in %d POSTs: %v", total, len(posts), sizes)
			assert.Equal(t, 2*channels, total)
			if !batching {
				for i, s := range sizes {
					assert.Equal(t, 1, s, "POST %d without batching", i)
				}
				return
			}
			assert.LessOrEqual(t, slices.Max(sizes), 100, "at most 100 events per POST")
			assert.Equal(t, 100, slices.Max(sizes), "a burst of %d events within the window fills a POST", 2*channels)
			assert.LessOrEqual(t, len(posts), 6, "a burst comes in few POSTs: %v", sizes)
		})
	}
}

// TestWebhookRetry: a 500 or a timeout is retried with back-off, the same
// events under the same id, and counted; what still fails after the retry
// window is given up and counted, and later events go on.
func TestWebhookRetry(t *testing.T) {
	t.Parallel()
	t.Run("after 500", func(t *testing.T) {
		t.Parallel()
		r := hookrecv.New(t)
		r.SetAnswer(func(p *hookrecv.Post) (int, time.Duration) {
			if p.N < 2 {
				return http.StatusInternalServerError, 0
			}
			return http.StatusOK, 0
		})
		n := harness.Start(t, hookTypes(r, pusher.WebhookChannelOccupied))
		ch := unique("retry-")
		harness.Subscribe(t, harness.Dial(t, n), ch)
		got := r.Wait(1)
		assert.Equal(t, []string{"channel_occupied:" + ch}, names(got))
		posts := r.Posts()
		require.Len(t, posts, 3)
		for i, p := range posts {
			assert.Equal(t, got[0].ID, strings.Join(p.IDs, ","), "POST %d carries the same id", i)
			assert.Equal(t, []int{500, 500, 200}[i], p.Status)
		}
		gap1, gap2 := posts[1].At.Sub(posts[0].At), posts[2].At.Sub(posts[1].At)
		t.Logf("retried after %s, then %s", gap1, gap2)
		assert.GreaterOrEqual(t, gap1, 900*time.Millisecond, "first back-off about 1s")
		assert.GreaterOrEqual(t, gap2, 1900*time.Millisecond, "second back-off about 2s")
		assert.Equal(t, 2.0, n.Metric(t, "fizz_webhook_retries_total", "app", harness.AppID))
		assert.Equal(t, 2.0, n.Metric(t, "fizz_webhooks_sent_total", "event", "channel_occupied", "status", "500"))
		// The receiver records the event before it answers: the sender
		// counts the 200 a moment after the test sees it.
		n.WaitMetric(t, 1, "fizz_webhooks_sent_total", "event", "channel_occupied", "status", "200")
		assert.Zero(t, n.Metric(t, "fizz_webhooks_dropped_total"))
	})
	t.Run("after a timeout", func(t *testing.T) {
		t.Parallel()
		r := hookrecv.New(t)
		r.SetAnswer(func(p *hookrecv.Post) (int, time.Duration) {
			if p.N == 0 {
				return http.StatusOK, 2 * time.Second // far past the timeout
			}
			return http.StatusOK, 0
		})
		n := harness.Start(t, func(c *app.Config) {
			hookTypes(r, pusher.WebhookChannelOccupied)(c)
			c.Webhooks.Timeout = 200 * time.Millisecond
		})
		ch := unique("timeout-")
		harness.Subscribe(t, harness.Dial(t, n), ch)
		got := r.Wait(1)
		assert.Equal(t, []string{"channel_occupied:" + ch}, names(got))
		posts := r.Posts()
		require.Len(t, posts, 2)
		assert.Equal(t, 0, posts[0].Status, "the first POST was abandoned by the sender")
		assert.Equal(t, posts[0].IDs, posts[1].IDs, "the retry carries the same id")
		assert.Equal(t, 1.0, n.Metric(t, "fizz_webhook_retries_total"))
		assert.Equal(t, 1.0, n.Metric(t, "fizz_webhooks_sent_total", "status", "timeout"))
		n.WaitMetric(t, 1, "fizz_webhooks_sent_total", "status", "200")
	})
	t.Run("given up", func(t *testing.T) {
		t.Parallel()
		r := hookrecv.New(t)
		r.SetAnswer(func(*hookrecv.Post) (int, time.Duration) { return http.StatusInternalServerError, 0 })
		n := harness.Start(t, func(c *app.Config) {
			hookTypes(r, pusher.WebhookChannelOccupied)(c)
			c.Webhooks.RetryFor = time.Second
			c.Webhooks.LeaveDelay = 0
		})
		ch := unique("giveup-")
		c := harness.Dial(t, n)
		harness.Subscribe(t, c, ch)
		require.Eventually(t, func() bool {
			return n.Metric(t, "fizz_webhooks_dropped_total", "app", harness.AppID, "reason", "retry_window") == 1
		}, wait, 5*time.Millisecond, "the event is given up after the retry window")
		posts := r.Posts()
		require.GreaterOrEqual(t, len(posts), 2, "tried again within the window")
		for _, p := range posts {
			assert.Equal(t, posts[0].IDs, p.IDs)
		}
		assert.Empty(t, r.Accepted())
		tried := len(posts)
		// Later events go, on another key and on the same key.
		r.SetAnswer(nil)
		other := unique("giveup-later-")
		harness.Subscribe(t, c, other)
		require.NoError(t, c.Unsubscribe(ch))
		require.Eventually(t, func() bool { return n.Metric(t, "fizz_channel_transitions_total", "kind", "channel_vacated") == 1 },
			wait, time.Millisecond, "vacated")
		harness.Subscribe(t, c, ch)
		got := r.WaitFor("later events", all(has(pusher.WebhookChannelOccupied, other, 1), has(pusher.WebhookChannelOccupied, ch, 1)))
		assert.ElementsMatch(t, []string{"channel_occupied:" + other, "channel_occupied:" + ch}, names(got))
		assert.Len(t, r.Posts(), tried+2, "nothing more of the event given up")
		assert.Equal(t, 1.0, n.Metric(t, "fizz_webhooks_dropped_total"))
	})
}

// TestWebhookLeaveDelay: a leave undone within the leave delay sends
// nothing, for channels and presence members; a real leave sends its
// vacated or member_removed once the delay is over; and what a receiver
// hears of one channel alternates.
func TestWebhookLeaveDelay(t *testing.T) {
	t.Parallel()
	const delay = 300 * time.Millisecond
	r := hookrecv.New(t)
	n := harness.Start(t, func(c *app.Config) {
		hookTypes(r, append(slices.Clone(occupancyNames), memberNames...)...)(c)
		c.Webhooks.LeaveDelay = delay
	})
	public, presence := unique("flap-"), unique("presence-flap-")
	c1 := harness.Dial(t, n)
	harness.Subscribe(t, c1, public)
	require.Equal(t, pusher.EventSubscriptionSucceeded, harness.JoinPresence(t, c1, presence, "u1", nil).Event)
	r.WaitFor("occupied and added", all(has(pusher.WebhookChannelOccupied, public, 1), has(pusher.WebhookChannelOccupied, presence, 1),
		has(pusher.WebhookMemberAdded, presence, 1)))

	// A page reload: the socket goes, a new one comes back at once (once
	// the node has decided the leave: a real flap).
	vacated := func() float64 { return n.Metric(t, "fizz_channel_transitions_total", "kind", "channel_vacated") }
	reload := time.Now()
	require.NoError(t, c1.Close())
	require.Eventually(t, func() bool { return vacated() == 2 }, wait, time.Millisecond, "both channels vacated")
	c2 := harness.Dial(t, n)
	harness.Subscribe(t, c2, public)
	require.Equal(t, pusher.EventSubscriptionSucceeded, harness.JoinPresence(t, c2, presence, "u1", nil).Event)
	// And a flap by unsubscribing and subscribing again (a public
	// channel's count is written a moment after the unsubscription: wait
	// for it, or the two changes may be written as one).
	require.NoError(t, c2.Unsubscribe(public))
	require.Eventually(t, func() bool { return vacated() == 3 }, wait, time.Millisecond, "vacated again")
	harness.Subscribe(t, c2, public)
	took := time.Since(reload)
	require.Less(t, took, delay, "the test's flap must be within the leave delay")

	// The real leave, whose vacated and member_removed come after the
	// delay, and after whatever the flaps would have sent on their keys.
	leave := time.Now()
	require.NoError(t, c2.Close())
	got := r.WaitFor("the real leave", all(has(pusher.WebhookChannelVacated, public, 1), has(pusher.WebhookChannelVacated, presence, 1),
		has(pusher.WebhookMemberRemoved, presence, 1)))
	assert.Equal(t, occupancyNames, onKey(got, public, "", occupancyNames...), "%s: no vacated/occupied for the flaps", public)
	assert.Equal(t, occupancyNames, onKey(got, presence, "", occupancyNames...), "%s: no vacated/occupied for the flaps", presence)
	assert.Equal(t, memberNames, onKey(got, presence, "u1", memberNames...), "no member_removed/member_added for the reload")
	for _, e := range got {
		if e.Name == pusher.WebhookChannelVacated || e.Name == pusher.WebhookMemberRemoved {
			assert.GreaterOrEqual(t, e.At.Sub(leave), delay-5*time.Millisecond, "%s waited the leave delay", e)
		}
	}

	// Real leaves, one after the other: occupied and vacated alternate.
	const rounds = 3
	for i := range rounds {
		c := harness.Dial(t, n)
		harness.Subscribe(t, c, public)
		require.NoError(t, c.Unsubscribe(public))
		require.NoError(t, c.Ping())
		r.WaitFor(fmt.Sprintf("round %d vacated", i), has(pusher.WebhookChannelVacated, public, i+2))
	}
	want := []string{}
	for range rounds + 1 {
		want = append(want, occupancyNames...)
	}
	assert.Equal(t, want, onKey(r.Accepted(), public, "", occupancyNames...))
}

// TestWebhookSubscriptionCountPacing: a channel's subscription_count goes
// at most once a second, and the last count always goes, even when the
// counts change while one is being sent.
func TestWebhookSubscriptionCountPacing(t *testing.T) {
	t.Parallel()
	r := hookrecv.New(t)
	// The first POST takes a while: the next counts come meanwhile.
	r.SetAnswer(func(p *hookrecv.Post) (int, time.Duration) {
		if p.N == 0 {
			return http.StatusOK, 300 * time.Millisecond
		}
		return http.StatusOK, 0
	})
	n := harness.Start(t, hookTypes(r, pusher.WebhookSubscriptionCount))
	ch := unique("counted-")
	var clients []*pusherclient.Client
	for i := range 3 {
		c := harness.Dial(t, n)
		harness.Subscribe(t, c, ch)
		clients = append(clients, c)
		if i == 0 {
			// The next counts come while the first is being sent (before,
			// they could come first, within the webhook batch window, and
			// the first POST carried 2 or 3).
			require.Eventually(t, func() bool { return r.Waiting() == 1 }, harness.Wait, time.Millisecond, "the first count's POST")
		}
	}
	got := r.WaitFor("the last count, 3", func(evs []hookrecv.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].SubscriptionCount != nil && *evs[len(evs)-1].SubscriptionCount == 3
	})
	for _, c := range clients[1:] {
		require.NoError(t, c.Close())
	}
	got = r.WaitFor("the last count, 1", func(evs []hookrecv.Event) bool {
		return len(evs) > len(got) && evs[len(evs)-1].SubscriptionCount != nil && *evs[len(evs)-1].SubscriptionCount == 1
	})
	counts := []int{}
	for _, e := range got {
		require.NotNil(t, e.SubscriptionCount, "%v", e.Raw)
		counts = append(counts, *e.SubscriptionCount)
	}
	t.Logf("counts %v", counts)
	posts := r.Posts()
	for i := 1; i < len(posts); i++ {
		assert.GreaterOrEqual(t, posts[i].At.Sub(posts[i-1].At), 950*time.Millisecond,
			"subscription_count %d came %s after the one before (counts %v)", i, posts[i].At.Sub(posts[i-1].At), counts)
	}
	assert.Equal(t, 1, counts[0])
}

// TestWebhookSlowReceiverDoesNotSlowDelivery: with a receiver that takes
// two seconds per POST and many webhooks pending, events reach sockets,
// subscriptions succeed and the HTTP API answers as promptly as ever.
func TestWebhookSlowReceiverDoesNotSlowDelivery(t *testing.T) {
	t.Parallel()
	const slow = 2 * time.Second
	// Generous: a functional bound, far below what waiting on the
	// receiver would cost.
	const prompt = time.Second
	r := hookrecv.New(t)
	r.SetAnswer(func(*hookrecv.Post) (int, time.Duration) { return http.StatusOK, slow })
	n := hooked(t, r, func(c *app.Config) { c.Apps[0].ClientEventsPerSecond = 0 })
	t.Cleanup(r.ReleaseAll) // before the node stops, so that it does not wait on the receiver

	// Many webhooks pending: more than the POSTs in flight at a time.
	busy := harness.Dial(t, n)
	prefix := unique("slow-")
	for i := range 60 {
		require.NoError(t, busy.SendSubscribe(fmt.Sprintf("%s-%d", prefix, i), "", ""))
	}
	for i := range 60 {
		harness.Expect(t, busy, pusher.EventSubscriptionSucceeded, fmt.Sprintf("%s-%d", prefix, i))
	}
	require.Eventually(t, func() bool { return r.Waiting() > 0 }, wait, 5*time.Millisecond, "POSTs held by the receiver")

	feed := unique("private-feed-")
	sub, talker := harness.Dial(t, n), harness.Dial(t, n)
	start := time.Now()
	harness.Subscribe(t, sub, feed)
	harness.Subscribe(t, talker, feed)
	assert.Less(t, time.Since(start), prompt, "subscriptions while webhooks are pending")
	for i := range 20 {
		start := time.Now()
		trigger(t, n, feed, "tick", fmt.Sprint(i))
		harness.Expect(t, sub, "tick", feed)
		assert.Less(t, time.Since(start), prompt, "trigger %d reached the subscriber", i)
		start = time.Now()
		require.NoError(t, talker.Trigger("client-tick", feed, fmt.Sprint(i)))
		harness.Expect(t, sub, "client-tick", feed)
		assert.Less(t, time.Since(start), prompt, "client event %d reached the subscriber", i)
	}
	assert.Positive(t, r.Waiting(), "webhooks were still pending throughout")
	assert.Less(t, len(r.Accepted()), 120+2, "the receiver had not answered most webhooks yet")
}

// TestWebhookLeaveAfterTheDelayIsNotUndone: a channel that stayed empty
// longer than the leave delay was really vacated, even when its webhooks
// were held up by a failing receiver meanwhile: the occupied that follows
// does not undo the vacated, and the receiver hears occupied, vacated,
// occupied, vacated.
func TestWebhookLeaveAfterTheDelayIsNotUndone(t *testing.T) {
	t.Parallel()
	const delay = 200 * time.Millisecond
	r := hookrecv.New(t)
	// The first occupied fails twice: it is retried after 1s and 2s.
	r.SetAnswer(func(p *hookrecv.Post) (int, time.Duration) {
		if p.N < 2 {
			return http.StatusInternalServerError, 0
		}
		return http.StatusOK, 0
	})
	n := harness.Start(t, func(c *app.Config) {
		hookTypes(r, occupancyNames...)(c)
		c.Webhooks.LeaveDelay = delay
	})
	vacated := func() float64 { return n.Metric(t, "fizz_channel_transitions_total", "kind", "channel_vacated") }
	ch := unique("held-")
	c := harness.Dial(t, n)
	harness.Subscribe(t, c, ch)
	require.NoError(t, c.Unsubscribe(ch))
	require.Eventually(t, func() bool { return vacated() == 1 }, wait, time.Millisecond, "vacated")
	emptied := time.Now()
	// The first retry comes a second after the first attempt: by then the
	// channel has been empty for longer than the leave delay.
	require.Eventually(t, func() bool { return len(r.Posts()) >= 2 }, wait, time.Millisecond, "the first retry")
	empty := time.Since(emptied)
	require.Greater(t, empty, delay, "the channel stayed empty past the leave delay")
	harness.Subscribe(t, c, ch)
	// A last leave, so that a sequence that alternates ends with vacated.
	require.NoError(t, c.Unsubscribe(ch))
	require.Eventually(t, func() bool { return vacated() == 2 }, wait, time.Millisecond, "vacated again")
	got := r.WaitFor("both vacated", has(pusher.WebhookChannelVacated, ch, 2))
	assert.Equal(t, []string{pusher.WebhookChannelOccupied, pusher.WebhookChannelVacated, pusher.WebhookChannelOccupied, pusher.WebhookChannelVacated},
		onKey(got, ch, "", occupancyNames...), "the channel was empty for %s, more than the leave delay of %s", empty, delay)
}

// TestWebhookFlapsLeaveNothingHeld: leaves undone within the leave delay
// leave nothing behind: fizz_webhook_queue (the events the node holds,
// which also bounds what it reads from the outbox) is back to 0, not
// below it.
func TestWebhookFlapsLeaveNothingHeld(t *testing.T) {
	t.Parallel()
	r := hookrecv.New(t)
	n := harness.Start(t, func(c *app.Config) {
		hookTypes(r, occupancyNames...)(c)
		c.Webhooks.LeaveDelay = 5 * time.Second
	})
	vacated := func() float64 { return n.Metric(t, "fizz_channel_transitions_total", "kind", "channel_vacated") }
	ch := unique("flaps-")
	c := harness.Dial(t, n)
	harness.Subscribe(t, c, ch)
	r.WaitFor("occupied", has(pusher.WebhookChannelOccupied, ch, 1))
	const flaps = 3
	for i := range flaps {
		require.NoError(t, c.Unsubscribe(ch))
		require.Eventually(t, func() bool { return vacated() == float64(i+1) }, wait, time.Millisecond, "flap %d: vacated", i)
		harness.Subscribe(t, c, ch)
	}
	// A barrier on another key: its occupied is sent once the flaps'
	// events are taken in.
	other := unique("flaps-other-")
	harness.Subscribe(t, c, other)
	r.WaitFor("the other channel's occupied", has(pusher.WebhookChannelOccupied, other, 1))
	n.WaitMetric(t, 2, "fizz_webhooks_sent_total", "status", "200")
	assert.Eventually(t, func() bool { return n.Metric(t, "fizz_webhook_queue") == 0 }, time.Second, time.Millisecond,
		"fizz_webhook_queue after %d undone leaves: %v", flaps, n.Metric(t, "fizz_webhook_queue"))
	assert.GreaterOrEqual(t, n.Metric(t, "fizz_webhook_queue"), 0.0, "fizz_webhook_queue after %d undone leaves", flaps)
	assert.Equal(t, []string{pusher.WebhookChannelOccupied}, onKey(r.Accepted(), ch, "", occupancyNames...))
}
