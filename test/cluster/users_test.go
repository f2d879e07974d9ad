package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/jsclient"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// usersWatchlistEvent carries a watchlist's events.
const usersWatchlistEvent = "pusher_internal:watchlist_events"

// usersSignin signs c in with userData, signed with the test app's
// secret, and requires pusher:signin_success.
func usersSignin(t testing.TB, c *pusherclient.Client, userData string) {
	t.Helper()
	auth := harness.AppKey + ":" + pusher.Sign(harness.AppSecret, pusher.UserAuthMessage(c.SocketID, userData))
	require.NoError(t, c.Send(pusher.EventSignin, "", map[string]string{"user_data": userData, "auth": auth}))
	harness.Expect(t, c, "pusher:signin_success", "")
}

// usersWatch waits for c's next watchlist_events frame and returns its
// events as "online:a,b" (ids sorted), the form jsclient.Watchlist uses.
func usersWatch(t testing.TB, c *pusherclient.Client) []string {
	t.Helper()
	f := harness.Expect(t, c, usersWatchlistEvent, "")
	var body struct {
		Events []struct {
			Name    string   `json:"name"`
			UserIDs []string `json:"user_ids"`
		} `json:"events"`
	}
	require.NoError(t, f.DecodeData(&body))
	require.NotNil(t, body.Events, "events is a list: %s", f)
	out := []string{}
	for _, e := range body.Events {
		sort.Strings(e.UserIDs)
		out = append(out, e.Name+":"+strings.Join(e.UserIDs, ","))
	}
	return out
}

// usersOnline signs a new socket on n in as user id.
func usersOnline(t testing.TB, n *node, id string) *pusherclient.Client {
	t.Helper()
	c := harness.Dial(t, n)
	usersSignin(t, c, fmt.Sprintf(`{"id":%q}`, id))
	return c
}

// usersWatcher is one pusher-js watcher and one Go watcher of the same
// users, each checked against the events both must have seen.
type usersWatcher struct {
	t    testing.TB
	d    *jsclient.Driver
	js   string
	goc  *pusherclient.Client
	seen []string
}

// step requires the next watchlist event, as both watchers see it.
func (w *usersWatcher) step(want string, within time.Duration) {
	w.t.Helper()
	w.seen = append(w.seen, want)
	w.d.WaitWatchlist(w.js, w.seen, within)
	f, err := w.goc.Expect(usersWatchlistEvent, "", within)
	require.NoError(w.t, err, "the Go watcher waiting for %s", want)
	var body struct {
		Events []struct {
			Name    string   `json:"name"`
			UserIDs []string `json:"user_ids"`
		} `json:"events"`
	}
	require.NoError(w.t, f.DecodeData(&body))
	require.Len(w.t, body.Events, 1, "one event a frame: %s", f)
	sort.Strings(body.Events[0].UserIDs)
	require.Equal(w.t, want, body.Events[0].Name+":"+strings.Join(body.Events[0].UserIDs, ","), "the Go watcher's frame")
}

// TestUsersWatchlistAcrossNodes: a pusher-js watcher on A and a Go watcher
// on B see a watched user come online with their first signed-in socket
// anywhere and go offline with their last, whichever node each is on; a
// user online before the watchers signed in is in their first list.
func TestUsersWatchlistAcrossNodes(t *testing.T) {
	t.Parallel()
	jsclient.Require(t) // before starting nodes: skip or fail at once
	nodes := startNodes(t, true, 2, nil)
	a, b := nodes[0], nodes[1]
	d := jsclient.Start(t)

	cB := usersOnline(t, b, "c")
	watchlist := map[string]any{"id": "w", "watchlist": []string{"a", "b", "c"}}
	d.Connect("w", a.httpURL, harness.AppKey, harness.AppSecret, jsclient.Cmd{"user": watchlist, "signin": true})
	first := d.WaitFor("w's first watchlist frame", wait, "w", "message", func(e jsclient.Event) bool { return e.Event == usersWatchlistEvent })
	require.JSONEq(t, `{"events":[{"name":"online","user_ids":["c"]}]}`, frameData(t, first.Data))
	data, err := json.Marshal(map[string]any{"id": "gw", "watchlist": []string{"a", "b", "c"}})
	require.NoError(t, err)
	gw := harness.Dial(t, b)
	usersSignin(t, gw, string(data))
	require.Equal(t, []string{"online:c"}, usersWatch(t, gw), "c is online already")
	w := &usersWatcher{t: t, d: d, js: "w", goc: gw, seen: []string{"online:c"}}
	d.WaitWatchlist("w", w.seen, wait)

	aB := usersOnline(t, b, "a")
	w.step("online:a", wait)
	aA := usersOnline(t, a, "a") // a's second socket, on the other node: nothing
	require.NoError(t, aB.Close())
	// A closed socket is signed out before it is uncounted: once the
	// count is down, B has handled the close, with aA still open.
	waitConnections(t, a, 4)
	bA := usersOnline(t, a, "b") // the next event is b's: a's close said nothing
	w.step("online:b", wait)
	require.NoError(t, aA.Close())
	w.step("offline:a", wait)
	require.NoError(t, bA.Close())
	w.step("offline:b", wait)
	require.NoError(t, cB.Close())
	w.step("offline:c", wait)
}

// frameData returns the data of a frame as JSON text: unwrapped when it
// came as a JSON string.
func frameData(t testing.TB, raw json.RawMessage) string {
	t.Helper()
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// TestUsersWatchlistNodeKill: a watched user signed in only on a node that
// is killed with SIGKILL goes offline for the watchers on the other node
// within the lease and a few seconds; a user also signed in on the
// survivor stays online.
func TestUsersWatchlistNodeKill(t *testing.T) {
	t.Parallel()
	jsclient.Require(t) // before starting nodes: skip or fail at once
	c := newCluster(t)
	k := c.startProcess(t, "K", nil)
	s := c.start(t, "S", nil)
	waitUp(t, k, s)
	d := jsclient.Start(t)

	usersOnline(t, k, "k")
	usersOnline(t, k, "s")
	usersOnline(t, s, "s")
	z := usersOnline(t, s, "z")
	watchlist := map[string]any{"id": "w", "watchlist": []string{"k", "s", "z"}}
	d.Connect("w", s.httpURL, harness.AppKey, harness.AppSecret, jsclient.Cmd{"user": watchlist, "signin": true})
	data, err := json.Marshal(map[string]any{"id": "gw", "watchlist": []string{"k", "s", "z"}})
	require.NoError(t, err)
	gw := harness.Dial(t, s)
	usersSignin(t, gw, string(data))
	require.Equal(t, []string{"online:k,s,z"}, usersWatch(t, gw))
	w := &usersWatcher{t: t, d: d, js: "w", goc: gw, seen: []string{"online:k,s,z"}}
	d.WaitWatchlist("w", w.seen, wait)

	k.proc.Kill()
	killed := time.Now()
	w.step("offline:k", lease+5*time.Second)
	t.Logf("k offline %s after the kill (lease %s)", time.Since(killed).Round(time.Millisecond), lease)
	require.NoError(t, z.Close())
	w.step("offline:z", wait) // and nothing for s before it
}

// TestUsersSubscriptionCountAcrossNodes: pusher-js clients on A and on B
// see the cluster-wide subscription count of a channel, coalesced under a
// burst of 500 subscriptions split over both nodes and under a trickle of
// leaves, the last count right on both.
func TestUsersSubscriptionCountAcrossNodes(t *testing.T) {
	t.Parallel()
	jsclient.Require(t) // before starting nodes: skip or fail at once
	nodes := startNodes(t, true, 2, func(c *app.Config) { c.Apps[0].SubscriptionCount = true })
	a, b := nodes[0], nodes[1]
	d := jsclient.Start(t)
	const channel = "count-cluster"

	d.Connect("wA", a.httpURL, harness.AppKey, harness.AppSecret, jsclient.Cmd{"subscribe": []string{channel}})
	d.WaitCount("wA", channel, 1, wait)
	d.Connect("wB", b.httpURL, harness.AppKey, harness.AppSecret, jsclient.Cmd{"subscribe": []string{channel}})
	d.WaitCount("wA", channel, 2, wait)
	d.WaitCount("wB", channel, 2, wait)

	onA := harness.DialMany(t, a, 250)
	onB := harness.DialMany(t, b, 250)
	all := append(append([]*pusherclient.Client{}, onA...), onB...)
	start := time.Now()
	harness.SubscribeAll(t, all, channel)
	for _, id := range []string{"wA", "wB"} {
		in := jsclient.RequirePaced(t, d.WaitCount(id, channel, 502, wait), start, id+": burst of subscriptions")
		require.Less(t, len(in), 5, "%s: 500 subscriptions at once, a few counts", id)
	}

	// 150 on B unsubscribe and 50 on A close, over about two seconds.
	start = time.Now()
	leaving := append(append([]*pusherclient.Client{}, onB[:150]...), onA[:50]...)
	harness.Trickle(t, leaving, func(i int, c *pusherclient.Client) error {
		if i >= 150 {
			return c.Close()
		}
		return c.Unsubscribe(channel)
	})
	for _, id := range []string{"wA", "wB"} {
		jsclient.RequirePaced(t, d.WaitCount(id, channel, 302, wait), start, id+": trickle of leaves")
	}
}

// TestUsersSendToUserAcrossNodes: a user signed in on A (pusher-js and a
// Go client) and on B (pusher-js) gets an event sent to them through A's
// HTTP API on every socket, and terminate_connections through B closes
// every one of them with 4009; another user hears neither.
func TestUsersSendToUserAcrossNodes(t *testing.T) {
	t.Parallel()
	jsclient.Require(t) // before starting nodes: skip or fail at once
	nodes := startNodes(t, true, 2, nil)
	a, b := nodes[0], nodes[1]
	d := jsclient.Start(t)

	inUserChannel := func(id, user string) {
		d.WaitFor(id+" in its user channel", wait, id, "message", func(e jsclient.Event) bool {
			return e.Event == pusher.EventSubscriptionSucceeded && e.Channel == "#server-to-user-"+user
		})
	}
	d.Connect("uA", a.httpURL, harness.AppKey, harness.AppSecret, jsclient.Cmd{"user": map[string]any{"id": "u"}, "signin": true})
	d.Connect("uB", b.httpURL, harness.AppKey, harness.AppSecret, jsclient.Cmd{"user": map[string]any{"id": "u"}, "signin": true})
	d.Connect("v", b.httpURL, harness.AppKey, harness.AppSecret, jsclient.Cmd{"user": map[string]any{"id": "v"}, "signin": true})
	inUserChannel("uA", "u")
	inUserChannel("uB", "u")
	inUserChannel("v", "v")
	gA := usersOnline(t, a, "u")
	harness.Subscribe(t, gA, "#server-to-user-u")

	require.NoError(t, a.pusher.SendToUser("u", "greet", map[string]string{"to": "u"}), "SendToUser through A")
	for _, id := range []string{"uA", "uB"} {
		e := d.WaitFor(id+" greeted", wait, id, "user_event", func(e jsclient.Event) bool { return e.Event == "greet" })
		require.JSONEq(t, `{"to":"u"}`, frameData(t, e.Data), "%s: %s", id, e)
	}
	f := harness.Expect(t, gA, "greet", "#server-to-user-u")
	require.JSONEq(t, `{"to":"u"}`, f.Text())
	// v's event goes out after u's: once v has it, v had nothing of u's.
	require.NoError(t, a.pusher.SendToUser("v", "greet-v", map[string]string{"to": "v"}))
	d.WaitFor("v greeted", wait, "v", "user_event", func(e jsclient.Event) bool { return e.Event == "greet-v" })
	for _, e := range jsclient.Filter(d.Events(), "v", "user_event") {
		require.Equal(t, "greet-v", e.Event, "v hears only its own: %s", e)
	}

	status, body := api(t, b, http.MethodPost, "/users/u/terminate_connections", nil, []byte("{}"))
	require.Equal(t, http.StatusOK, status, "terminate through B: %s", body)
	harness.RequireFatal(t, gA, pusher.CodeUnauthorized)
	for _, id := range []string{"uA", "uB"} {
		d.WaitFor(id+"'s 4009", wait, id, "error", func(e jsclient.Event) bool { return e.Code == pusher.CodeUnauthorized })
		d.WaitState(id, "disconnected", wait)
	}

	// v is still there.
	require.NoError(t, a.pusher.SendToUser("v", "still-here", "yes"))
	d.WaitFor("v still connected", wait, "v", "user_event", func(e jsclient.Event) bool { return e.Event == "still-here" })
	assert.Empty(t, jsclient.Filter(d.Events(), "v", "error"), "v got no error")
}
