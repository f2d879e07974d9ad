package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/hookrecv"
)

// consoleNode starts a node whose metrics listener, and so its console, is
// on a free port.
func consoleNode(t *testing.T) *harness.Node {
	t.Helper()
	port := harness.FreePort(t)
	n := harness.Start(t, func(c *app.Config) { c.Metrics.Host, c.Metrics.Port = "127.0.0.1", port })
	require.NotEmpty(t, n.MetricsURL)
	return n
}

// TestConsoleFeed: a console watching one node sees a socket connect,
// subscribe, an API event (triggered with pusher-http-go), a client event,
// presence member changes, an unsubscribe and the disconnect with its close
// code, each marked with the node's id.
func TestConsoleFeed(t *testing.T) {
	t.Parallel()
	n := consoleNode(t)
	feed := harness.Watch(t, n.MetricsURL, harness.AppID, nil)

	c := harness.Dial(t, n)
	is := func(typ string, more func(console.Event) bool) func(console.Event) bool {
		return func(e console.Event) bool { return e.Type == typ && e.App == harness.AppID && (more == nil || more(e)) }
	}
	bySocket := func(e console.Event) bool { return e.Socket == c.SocketID }
	connect := feed.WaitFor(t, "connect", is(console.TypeConnect, bySocket))
	require.NotEmpty(t, connect.Node, "events name their node")

	harness.Subscribe(t, c, "private-orders")
	feed.WaitFor(t, "subscribe", is(console.TypeSubscribe, func(e console.Event) bool { return bySocket(e) && e.Channel == "private-orders" }))
	feed.WaitFor(t, "channel_occupied", is(console.TypeOccupied, func(e console.Event) bool { return e.Channel == "private-orders" }))

	require.NoError(t, n.Pusher.Trigger("private-orders", "order.shipped", map[string]any{"id": 42}))
	api := feed.WaitFor(t, "api event", is(console.TypeAPIEvent, func(e console.Event) bool { return e.Event == "order.shipped" }))
	assert.Equal(t, "private-orders", api.Channel)
	assert.Contains(t, api.Data, "42")
	assert.Equal(t, connect.Node, api.Node)

	require.NoError(t, c.Trigger("client-typing", "private-orders", map[string]any{"who": "me"}))
	feed.WaitFor(t, "client event", is(console.TypeClientEvent, func(e console.Event) bool { return bySocket(e) && e.Event == "client-typing" }))

	harness.JoinPresence(t, c, "presence-room", "u1", map[string]any{"name": "One"})
	feed.WaitFor(t, "member_added", is(console.TypeMemberAdded, func(e console.Event) bool { return e.Channel == "presence-room" && e.User == "u1" }))

	require.NoError(t, c.Unsubscribe("private-orders"))
	feed.WaitFor(t, "unsubscribe", is(console.TypeUnsubscribe, func(e console.Event) bool { return bySocket(e) && e.Channel == "private-orders" }))
	feed.WaitFor(t, "channel_vacated", is(console.TypeVacated, func(e console.Event) bool { return e.Channel == "private-orders" }))

	require.NoError(t, c.Close())
	gone := feed.WaitFor(t, "disconnect", is(console.TypeDisconnect, bySocket))
	assert.Equal(t, 1000, gone.Code, "the close code")
	feed.WaitFor(t, "member_removed", is(console.TypeMemberRemove, func(e console.Event) bool { return e.User == "u1" }))
}

// TestConsoleFilter: a feed asked for one channel and event name gets only
// those.
func TestConsoleFilter(t *testing.T) {
	t.Parallel()
	n := consoleNode(t)
	feed := harness.Watch(t, n.MetricsURL, harness.AppID, url.Values{"channel": {"wanted"}, "event": {"e1"}})
	for _, ev := range []struct{ channel, name string }{{"other", "e1"}, {"wanted", "e2"}, {"wanted", "e1"}} {
		require.NoError(t, n.Pusher.Trigger(ev.channel, ev.name, "x"))
	}
	feed.WaitFor(t, "the wanted event", func(e console.Event) bool { return e.Channel == "wanted" && e.Event == "e1" })
	for _, e := range feed.Events() {
		assert.Equal(t, "wanted", e.Channel, "%+v", e)
		assert.Equal(t, "e1", e.Event, "%+v", e)
	}
}

// consoleGet returns the status and body of a GET on the console.
func consoleGet(t *testing.T, n *harness.Node, path string) (int, string) {
	t.Helper()
	res, err := n.HTTP.Get(n.MetricsURL + path)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// consolePost sends the event creator body with contentType.
func consolePost(t *testing.T, n *harness.Node, query, contentType string, body []byte) (int, string) {
	t.Helper()
	res, err := n.HTTP.Post(n.MetricsURL+"/console/events?"+query, contentType, bytes.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// TestConsoleBadInput: the console's routes answer 400 (or the API's own
// status) with a message for every bad input, and never fail otherwise.
func TestConsoleBadInput(t *testing.T) {
	t.Parallel()
	n := consoleNode(t)
	gets := []struct {
		give string
		want int
	}{
		{"/console/feed", http.StatusBadRequest},
		{"/console/feed?app=nope", http.StatusBadRequest},
		{"/console/feed?app=" + harness.AppID + "&channel=bad%20name", http.StatusBadRequest},
		{"/console/feed?app=" + harness.AppID + "&event=" + strings.Repeat("e", 201), http.StatusBadRequest},
		{"/console/feed?app=" + harness.AppID + "&bogus=1", http.StatusBadRequest},
		{"/console/feed?app=" + harness.AppID + "&app=" + harness.AppID, http.StatusBadRequest},
		{"/console/feed?app=%zz", http.StatusBadRequest},
		{"/console/stats?app=" + harness.AppID + "&since=-1", http.StatusBadRequest},
		{"/console/stats?app=" + harness.AppID + "&since=x", http.StatusBadRequest},
		{"/console/stats?app=" + harness.AppID, http.StatusOK},
		{"/console/apps", http.StatusOK},
		{"/console", http.StatusOK},
	}
	for _, tt := range gets {
		t.Run("GET "+tt.give, func(t *testing.T) {
			status, body := consoleGet(t, n, tt.give)
			assert.Equal(t, tt.want, status, body)
		})
	}
	ok, err := json.Marshal(map[string]any{"channel": "c", "name": "e", "data": "d"})
	require.NoError(t, err)
	big, err := json.Marshal(map[string]any{"channel": "c", "name": "e", "data": strings.Repeat("x", 10<<10+1)})
	require.NoError(t, err)
	posts := []struct {
		name, query, contentType string
		body                     []byte
		want                     int
		wantError                string
	}{
		{"sent", "app=" + harness.AppID, "application/json", ok, http.StatusOK, ""},
		{"bad channel", "app=" + harness.AppID, "application/json", []byte(`{"channel":"bad name","name":"e","data":"d"}`), http.StatusUnprocessableEntity, "invalid channel name"},
		{"oversize data", "app=" + harness.AppID, "application/json", big, http.StatusRequestEntityTooLarge, "data is larger"},
		{"no name", "app=" + harness.AppID, "application/json", []byte(`{"channel":"c","data":"d"}`), http.StatusUnprocessableEntity, "name is required"},
		{"data not a string", "app=" + harness.AppID, "application/json", []byte(`{"channel":"c","name":"e","data":{}}`), http.StatusUnprocessableEntity, "data must be a string"},
		{"not json", "app=" + harness.AppID, "application/json", []byte(`{`), http.StatusBadRequest, "not valid JSON"},
		{"name not a string", "app=" + harness.AppID, "application/json", []byte(`{"channel":"c","name":7,"data":"d"}`), http.StatusUnprocessableEntity, "name has the wrong type"},
		{"not an object", "app=" + harness.AppID, "application/json", []byte(`[]`), http.StatusBadRequest, "must be a JSON object"},
		{"a form", "app=" + harness.AppID, "application/x-www-form-urlencoded", []byte(`channel=c`), http.StatusUnsupportedMediaType, "application/json"},
		{"unknown app", "app=nope", "application/json", ok, http.StatusBadRequest, "no app"},
	}
	for _, tt := range posts {
		t.Run("POST "+tt.name, func(t *testing.T) {
			status, body := consolePost(t, n, tt.query, tt.contentType, tt.body)
			assert.Equal(t, tt.want, status, body)
			assert.Contains(t, body, tt.wantError)
		})
	}
}

// TestConsoleStats: the stats answer counts the node's sockets and
// occupied channels (with users on presence channels) and has samples.
func TestConsoleStats(t *testing.T) {
	t.Parallel()
	n := consoleNode(t)
	a, b := harness.Dial(t, n), harness.Dial(t, n)
	harness.Subscribe(t, a, "news")
	harness.JoinPresence(t, b, "presence-lobby", "u7", nil)
	var got struct {
		Connections int `json:"connections"`
		Channels    []struct {
			Name          string `json:"name"`
			Subscriptions int    `json:"subscriptions"`
			Users         *int   `json:"users"`
		} `json:"channels"`
		Samples []console.Sample `json:"samples"`
	}
	status, body := consoleGet(t, n, "/console/stats?app="+harness.AppID)
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	assert.Equal(t, 2, got.Connections)
	require.Len(t, got.Channels, 2, body)
	names := map[string]*int{}
	for _, c := range got.Channels {
		names[c.Name] = c.Users
		assert.Equal(t, 1, c.Subscriptions)
	}
	require.Contains(t, names, "presence-lobby")
	require.NotNil(t, names["presence-lobby"])
	assert.Equal(t, 1, *names["presence-lobby"])
	assert.Nil(t, names["news"])
	assert.NotEmpty(t, got.Samples, "the samples of the seconds since start")

	status, body = consoleGet(t, n, "/console/stats?app="+harness.AppID+"&q=lob")
	require.Equal(t, http.StatusOK, status, body)
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	require.Len(t, got.Channels, 1, body)
	assert.Equal(t, "presence-lobby", got.Channels[0].Name)
}

// TestConsoleWebhooks: the console shows each webhook POSTed with its
// answer.
func TestConsoleWebhooks(t *testing.T) {
	t.Parallel()
	r := hookrecv.New(t)
	port := harness.FreePort(t)
	n := hooked(t, r, func(c *app.Config) { c.Metrics.Host, c.Metrics.Port = "127.0.0.1", port })
	feed := harness.Watch(t, n.MetricsURL, harness.AppID, nil)
	c := harness.Dial(t, n)
	harness.Subscribe(t, c, "hooked")
	hook := feed.WaitFor(t, "the channel_occupied webhook", func(e console.Event) bool {
		return e.Type == console.TypeWebhook && e.Event == "channel_occupied" && e.Channel == "hooked"
	})
	assert.Equal(t, "200", hook.Detail, "the receiver's answer")
}
