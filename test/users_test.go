package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/jsclient"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// The frames of users, watchlists and subscription counts.
const (
	usersWatchlistEvent = "pusher_internal:watchlist_events"
	usersCountEvent     = "pusher_internal:subscription_count"
	usersSigninSuccess  = "pusher:signin_success"
)

// usersBurst is how many sockets subscribe at once in the count bursts.
const usersBurst = 500

// usersSigninData signs userData for c's socket with the app's secret,
// as a backend does for pusher:signin, and returns the frame's data.
func usersSigninData(a apps.App, c *pusherclient.Client, userData string) map[string]string {
	auth := a.Key + ":" + pusher.Sign(a.Secret, pusher.UserAuthMessage(c.SocketID, userData))
	return map[string]string{"user_data": userData, "auth": auth}
}

// usersSignin signs c in with userData and requires pusher:signin_success.
func usersSignin(t testing.TB, n *harness.Node, c *pusherclient.Client, userData string) {
	t.Helper()
	require.NoError(t, c.Send(pusher.EventSignin, "", usersSigninData(n.App, c, userData)))
	harness.Expect(t, c, usersSigninSuccess, "")
}

// usersWatchEvent is one entry of a watchlist_events frame.
type usersWatchEvent struct {
	Name    string   `json:"name"`
	UserIDs []string `json:"user_ids"`
}

// usersWatchFrame waits for the next watchlist_events frame of c and
// returns its events, each entry's users sorted.
func usersWatchFrame(t testing.TB, c *pusherclient.Client) []usersWatchEvent {
	t.Helper()
	f := harness.Expect(t, c, usersWatchlistEvent, "")
	var body struct {
		Events []usersWatchEvent `json:"events"`
	}
	require.NoError(t, f.DecodeData(&body))
	require.NotNil(t, body.Events, "events is a list, never null: %s", f)
	for _, e := range body.Events {
		sort.Strings(e.UserIDs)
	}
	return body.Events
}

// usersOne is the watchlist_events body of one event.
func usersOne(name string, ids ...string) []usersWatchEvent {
	return []usersWatchEvent{{Name: name, UserIDs: ids}}
}

// usersWaitConnections polls GET /apps/{id}/connections until it is want.
// A node signs a closed socket out before it uncounts it, so this is also
// a barrier for what the close announces.
func usersWaitConnections(t testing.TB, n *harness.Node, want int) {
	t.Helper()
	path := "/apps/" + n.App.ID + "/connections"
	deadline := time.Now().Add(wait)
	for {
		params := map[string]string{
			"auth_key":       n.App.Key,
			"auth_timestamp": strconv.FormatInt(time.Now().Unix(), 10),
			"auth_version":   "1.0",
		}
		params["auth_signature"] = pusher.SignRequest(n.App.Secret, http.MethodGet, path, params)
		q := url.Values{}
		for k, v := range params {
			q.Set(k, v)
		}
		resp, err := n.HTTP.Get(n.HTTPURL + path + "?" + q.Encode())
		require.NoError(t, err)
		var body struct {
			Connections *int `json:"connections"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NotNil(t, body.Connections)
		if *body.Connections == want {
			return
		}
		require.True(t, time.Now().Before(deadline), "want %d connections, have %d", want, *body.Connections)
		<-time.After(10 * time.Millisecond) // polling against the deadline
	}
}

// TestUsersWatchlistFrames checks the watchlist frames on the wire: the
// first list after pusher:signin_success ([] when nobody watched is
// online), one online or offline event per change, numbers as user ids,
// and the 100-entry limit.
func TestUsersWatchlistFrames(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)

	// User 7 signs in with a numeric id before anyone watches.
	seven := harness.Dial(t, n)
	usersSignin(t, n, seven, `{"id":7}`)

	w := harness.Dial(t, n)
	require.NoError(t, w.Send(pusher.EventSignin, "", usersSigninData(n.App, w, `{"id":"w","watchlist":["a",7,"b"]}`)))
	harness.Expect(t, w, usersSigninSuccess, "")
	require.Equal(t, usersOne("online", "7"), usersWatchFrame(t, w), "7, a number in the watchlist, is online already")

	nobody := harness.Dial(t, n)
	require.NoError(t, nobody.Send(pusher.EventSignin, "", usersSigninData(n.App, nobody, `{"id":"nobody","watchlist":["x","y"]}`)))
	harness.Expect(t, nobody, usersSigninSuccess, "")
	require.Equal(t, []usersWatchEvent{}, usersWatchFrame(t, nobody), "none of x, y is online")

	// Without a watchlist there is no watchlist frame.
	plain := harness.Dial(t, n)
	usersSignin(t, n, plain, `{"id":"plain"}`)

	a := harness.Dial(t, n)
	usersSignin(t, n, a, `{"id":"a"}`)
	require.Equal(t, usersOne("online", "a"), usersWatchFrame(t, w))
	a2 := harness.Dial(t, n)
	usersSignin(t, n, a2, `{"id":"a"}`)
	// Signed out before it is uncounted: once the count is down, a's
	// first socket's close has been handled, with a2 still open.
	require.NoError(t, a.Close())
	usersWaitConnections(t, n, 5)
	require.NoError(t, seven.Close())
	require.Equal(t, usersOne("offline", "7"), usersWatchFrame(t, w), "a's second socket and a's first closing change nothing")
	require.NoError(t, a2.Close())
	require.Equal(t, usersOne("offline", "a"), usersWatchFrame(t, w))
	b := harness.Dial(t, n)
	usersSignin(t, n, b, `{"id":"b"}`)
	require.Equal(t, usersOne("online", "b"), usersWatchFrame(t, w))
	harness.RequireOpen(t, plain)
	harness.RequireNone(t, plain, usersWatchlistEvent, "")
	harness.RequireOpen(t, nobody)
	harness.RequireNone(t, nobody, usersWatchlistEvent, "")

	// 101 entries are refused, naming the limit; the socket stays open
	// and not signed in; 100 are fine.
	ids := make([]string, 101)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%d", i)
	}
	big := harness.Dial(t, n)
	data, err := json.Marshal(map[string]any{"id": "big", "watchlist": ids})
	require.NoError(t, err)
	require.NoError(t, big.Send(pusher.EventSignin, "", usersSigninData(n.App, big, string(data))))
	msg := harness.RequireError(t, big, pusher.CodeGeneric)
	assert.Contains(t, msg, "100", "the error names the limit")
	harness.RequireOpen(t, big)
	harness.RequireNone(t, big, usersSigninSuccess, "")
	harness.RequireNone(t, big, usersWatchlistEvent, "")
	f, err := big.Subscribe("#server-to-user-big", "", "")
	require.NoError(t, err)
	require.NotEqual(t, pusher.EventSubscriptionSucceeded, f.Event, "not signed in as big: %s", f)

	data, err = json.Marshal(map[string]any{"id": "big", "watchlist": append(ids[:99], "b")})
	require.NoError(t, err)
	require.NoError(t, big.Send(pusher.EventSignin, "", usersSigninData(n.App, big, string(data))))
	harness.Expect(t, big, usersSigninSuccess, "")
	require.Equal(t, usersOne("online", "b"), usersWatchFrame(t, big))
}

// TestUsersSubscriptionCountPusherJS: pusher-js on one node sees the
// subscription count of a channel coalesced under a burst of 500
// subscriptions (about one event a second, the last one right), and again
// after many leave; a late subscriber is told the count at once; a
// presence channel gets none.
func TestUsersSubscriptionCountPusherJS(t *testing.T) {
	t.Parallel()
	jsclient.Require(t) // before starting nodes: skip or fail at once
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].SubscriptionCount = true })
	d := jsclient.Start(t)
	const channel, presence = "count-burst", "presence-no-count"

	d.Connect("w", n.HTTPURL, n.App.Key, n.App.Secret, jsclient.Cmd{"subscribe": []string{channel, presence}})
	d.WaitFor("w in "+channel, wait, "w", "subscribed", func(e jsclient.Event) bool { return e.Channel == channel })
	d.WaitFor("w in "+presence, wait, "w", "subscribed", func(e jsclient.Event) bool { return e.Channel == presence })
	d.WaitCount("w", channel, 1, wait)
	for _, id := range []string{"m1", "m2"} {
		require.Equal(t, pusher.EventSubscriptionSucceeded, harness.JoinPresence(t, harness.Dial(t, n), presence, id, nil).Event)
	}

	clients := harness.DialMany(t, n, usersBurst)
	start := time.Now()
	harness.SubscribeAll(t, clients, channel)
	counts := d.WaitCount("w", channel, usersBurst+1, wait)
	in := jsclient.RequirePaced(t, counts, start, "burst of subscriptions")
	require.Less(t, len(in), 5, "500 subscriptions at once, a few counts")

	// 300 leave over about two seconds, 200 unsubscribing and 100
	// closing: 201 stay, and counts come out on the way.
	start = time.Now()
	harness.Trickle(t, clients[:300], func(i int, c *pusherclient.Client) error {
		if i%3 == 2 {
			return c.Close()
		}
		return c.Unsubscribe(channel)
	})
	counts = d.WaitCount("w", channel, usersBurst+1-300, wait)
	jsclient.RequirePaced(t, counts, start, "trickle of leaves")

	// A late subscriber hears a count right after subscription_succeeded,
	// then the one with itself.
	d.Connect("late", n.HTTPURL, n.App.Key, n.App.Secret, jsclient.Cmd{"subscribe": []string{channel}})
	subscribed := d.WaitFor("late in "+channel, wait, "late", "subscribed", func(e jsclient.Event) bool { return e.Channel == channel })
	first := d.WaitFor("late's first count", wait, "late", "count", nil)
	assert.Contains(t, []int{201, 202}, *first.Count, "the count the node knows, or the one with late")
	assert.Less(t, first.At().Sub(subscribed.At()), 500*time.Millisecond, "told at once, not at the next change")
	d.WaitCount("late", channel, 202, wait)
	d.WaitCount("w", channel, 202, wait)

	// The Go clients that stayed saw the same last count.
	last := clients[len(clients)-1]
	require.Eventually(t, func() bool {
		fs := usersCountFrames(last, channel)
		return len(fs) > 0 && fs[len(fs)-1] == 202
	}, wait, 20*time.Millisecond, "a Go subscriber's last subscription_count")

	// Seconds have passed since the presence joins: no count came there.
	all := d.Events()
	assert.Empty(t, jsclient.Messages(all, "w", usersCountEvent, presence), "no subscription_count on a presence channel")
	assert.Empty(t, jsclient.Counts(all, "w", presence))
}

// usersCountFrames returns the subscription counts in c's inbox for channel,
// oldest first, leaving the frames there.
func usersCountFrames(c *pusherclient.Client, channel string) []int {
	var out []int
	for _, f := range c.Pending() {
		if f.Event != usersCountEvent || f.Channel != channel {
			continue
		}
		var body struct {
			SubscriptionCount int `json:"subscription_count"`
		}
		if f.DecodeData(&body) == nil {
			out = append(out, body.SubscriptionCount)
		}
	}
	return out
}

// TestUsersSubscriptionCountOffByDefault: an app without the setting sends
// no subscription count, while another app of the same node that has it
// does.
func TestUsersSubscriptionCountOffByDefault(t *testing.T) {
	t.Parallel()
	jsclient.Require(t) // before starting nodes: skip or fail at once
	n := harness.Start(t, func(c *app.Config) {
		counted := c.Apps[0]
		counted.ID, counted.Key, counted.Secret = "1002", "counted-key", "counted-secret"
		counted.SubscriptionCount = true
		c.Apps = append(c.Apps, counted)
	})
	counted := n.Config.Apps[1]
	require.False(t, n.App.SubscriptionCount, "off by default")
	d := jsclient.Start(t)
	const channel = "count-quiet"

	d.Connect("off", n.HTTPURL, n.App.Key, n.App.Secret, jsclient.Cmd{"subscribe": []string{channel}})
	d.Connect("on", n.HTTPURL, counted.Key, counted.Secret, jsclient.Cmd{"subscribe": []string{channel}})
	var offGo []*pusherclient.Client
	for range 3 {
		c := harness.Dial(t, n)
		harness.Subscribe(t, c, channel)
		offGo = append(offGo, c)
		on, err := pusherclient.Dial(n.WSURL(counted.Key))
		require.NoError(t, err)
		t.Cleanup(func() { _ = on.Close() })
		f, err := on.Subscribe(channel, "", "")
		require.NoError(t, err)
		require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event)
	}
	d.WaitFor("off in "+channel, wait, "off", "subscribed", nil)
	d.WaitCount("on", channel, 4, wait)

	// The counted app's counts are out; a marker through the other app
	// reaches its sockets after anything sent them before.
	trigger(t, n, channel, "marker", "m")
	d.WaitFor("the marker", wait, "off", "event", func(e jsclient.Event) bool { return e.Event == "marker" })
	all := d.Events()
	assert.Empty(t, jsclient.Messages(all, "off", usersCountEvent, ""), "no subscription_count without the setting")
	assert.Empty(t, jsclient.Filter(all, "off", "count"))
	for _, c := range offGo {
		harness.Expect(t, c, "marker", channel)
		harness.RequireNone(t, c, usersCountEvent, "")
	}
}

// TestUsersRequireSigninPusherJS: with required sign-in, a pusher-js
// client that subscribes and then signs in within the timeout stays
// connected; one that never signs in gets 4009 and is disconnected.
func TestUsersRequireSigninPusherJS(t *testing.T) {
	t.Parallel()
	jsclient.Require(t) // before starting nodes: skip or fail at once
	const timeout = time.Second
	n := harness.Start(t, func(c *app.Config) {
		c.Apps[0].RequireSignin = true
		c.Apps[0].SigninTimeout = timeout
	})
	d := jsclient.Start(t)
	const channel = "before-signin"

	d.Connect("good", n.HTTPURL, n.App.Key, n.App.Secret, jsclient.Cmd{
		"user": map[string]any{"id": "good"}, "signin": true, "subscribe": []string{channel}, "signin_after_subscribe": true,
	})
	d.WaitFor("good in "+channel+" before signing in", wait, "good", "subscribed", func(e jsclient.Event) bool { return e.Channel == channel })
	d.WaitFor("good signed in", wait, "good", "message", func(e jsclient.Event) bool { return e.Event == usersSigninSuccess })
	d.WaitFor("good in its user channel", wait, "good", "message", func(e jsclient.Event) bool {
		return e.Event == pusher.EventSubscriptionSucceeded && e.Channel == "#server-to-user-good"
	})

	// late connects after good and never signs in.
	d.Connect("late", n.HTTPURL, n.App.Key, n.App.Secret, nil)
	connected := d.WaitState("late", "connected", wait)
	failed := d.WaitFor("late's 4009", timeout+wait, "late", "error", func(e jsclient.Event) bool { return e.Code == pusher.CodeUnauthorized })
	d.WaitState("late", "disconnected", wait)
	took := failed.At().Sub(connected.At())
	t.Logf("late closed %s after connecting (timeout %s)", took, timeout)
	assert.GreaterOrEqual(t, took, timeout/2, "not long before the timeout (measured from when pusher-js saw the connection)")

	// good's own deadline passed before late's: it is still connected.
	trigger(t, n, channel, "still-here", "yes")
	d.WaitFor("good still subscribed", wait, "good", "event", func(e jsclient.Event) bool { return e.Event == "still-here" })
	all := d.Events()
	assert.Empty(t, jsclient.Filter(all, "good", "error"), "good got no error")
	for _, e := range jsclient.Filter(all, "good", "state") {
		assert.NotEqual(t, "disconnected", e.Current, "good stays connected: %s", e)
	}
}

// TestUsersRequireSigninGoClient checks the frames: a socket that signs in
// in time (subscribed first) stays open; one that never does, or whose
// sign-in is refused, gets pusher:error 4009 and close 4009 at the timeout.
func TestUsersRequireSigninGoClient(t *testing.T) {
	t.Parallel()
	const timeout = 500 * time.Millisecond
	n := harness.Start(t, func(c *app.Config) {
		c.Apps[0].RequireSignin = true
		c.Apps[0].SigninTimeout = timeout
	})
	good := harness.Dial(t, n)
	harness.Subscribe(t, good, "before-signin")
	usersSignin(t, n, good, `{"id":"good"}`)

	start := time.Now()
	late := harness.Dial(t, n)
	refused := harness.Dial(t, n)
	require.NoError(t, refused.Send(pusher.EventSignin, "", map[string]string{"user_data": `{"id":"r"}`, "auth": n.App.Key + ":bad"}))
	harness.RequireError(t, refused, pusher.CodeUnauthorized)
	harness.RequireOpen(t, refused)

	harness.RequireFatal(t, late, pusher.CodeUnauthorized)
	took := time.Since(start)
	t.Logf("closed %s after dialing (timeout %s)", took, timeout)
	assert.GreaterOrEqual(t, took, timeout, "not before the timeout")
	harness.RequireFatal(t, refused, pusher.CodeUnauthorized)

	// good signed in before either of them connected.
	harness.RequireOpen(t, good)
	trigger(t, n, "before-signin", "still-here", "yes")
	harness.Expect(t, good, "still-here", "before-signin")
	harness.RequireNone(t, good, pusher.EventError, "")
}

// TestUsersSubscriptionCountFollowsSucceeded: the first subscriber of a
// channel hears its subscription_succeeded, then the count once: not a
// count before it is in, and not the same count twice.
func TestUsersSubscriptionCountFollowsSucceeded(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].SubscriptionCount = true })
	c := harness.Dial(t, n)
	const channels = 50
	for i := range channels {
		require.NoError(t, c.SendSubscribe(fmt.Sprintf("fresh-%d", i), "", ""))
	}
	// Counts reach the sockets in the order the node hears them: once the
	// last channel's has come, every earlier channel's has.
	last := fmt.Sprintf("fresh-%d", channels-1)
	require.Eventually(t, func() bool { return len(usersCountFrames(c, last)) > 0 }, wait, 10*time.Millisecond)
	harness.RequireOpen(t, c)

	seen := make(map[string][]string)
	for _, f := range c.Pending() {
		switch f.Event {
		case pusher.EventSubscriptionSucceeded:
			seen[f.Channel] = append(seen[f.Channel], "succeeded")
		case usersCountEvent:
			seen[f.Channel] = append(seen[f.Channel], f.Text())
		}
	}
	want := []string{"succeeded", `{"subscription_count":1}`}
	wrong := 0
	for i := range channels {
		ch := fmt.Sprintf("fresh-%d", i)
		if !assert.Equal(t, want, seen[ch], "frames of %s", ch) {
			wrong++
		}
	}
	t.Logf("%d of %d fresh channels had other frames", wrong, channels)
}
