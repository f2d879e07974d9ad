package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// call sends a signed request and returns the status and the body.
func (n *node) call(t testing.TB, method, path string, body []byte, query url.Values) (int, string) {
	t.Helper()
	status, got := n.do(t, signedRequest(method, "", path, body, query, signOpts{}))
	return status, string(got)
}

// ok sends a signed request that must succeed and returns its body.
func (n *node) ok(t testing.TB, method, path string, body []byte, query url.Values) string {
	t.Helper()
	status, got := n.call(t, method, path, body, query)
	require.Equal(t, http.StatusOK, status, "%s %s: %s", method, path, got)
	return got
}

// TestHTTPAPIShapesEmptyApp checks every route's JSON against Pusher's
// documented shapes on an app with no sockets.
func TestHTTPAPIShapesEmptyApp(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	api := "/apps/" + appID

	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		query  url.Values
		want   string
	}{
		{"trigger", http.MethodPost, api + "/events", trigger(t, nil), nil, `{}`},
		{"trigger with info", http.MethodPost, api + "/events",
			trigger(t, map[string]any{"channels": []string{"presence-x", "my-channel"}, "info": "user_count,subscription_count"}), nil,
			`{"channels":{"presence-x":{"user_count":0,"subscription_count":0},"my-channel":{"subscription_count":0}}}`},
		{"trigger with info=user_count on a public channel", http.MethodPost, api + "/events",
			trigger(t, map[string]any{"info": "user_count"}), nil, `{"channels":{"my-channel":{}}}`},
		{"trigger with an unknown info attribute", http.MethodPost, api + "/events",
			trigger(t, map[string]any{"info": "colour"}), nil, `{}`},
		{"batch", http.MethodPost, api + "/batch_events", jsonBody(t, map[string]any{"batch": batchOf(2)}), nil, `{}`},
		{"batch with info", http.MethodPost, api + "/batch_events", jsonBody(t, map[string]any{"batch": []map[string]any{
			{"name": "e", "data": "x", "channel": "presence-x", "info": "user_count,subscription_count"},
			{"name": "e", "data": "x", "channel": "my-channel"},
			{"name": "e", "data": "x", "channel": "my-channel", "info": "subscription_count"},
		}}), nil, `{"batch":[{"user_count":0,"subscription_count":0},{},{"subscription_count":0}]}`},
		{"batch item with several channels", http.MethodPost, api + "/batch_events", jsonBody(t, map[string]any{"batch": []map[string]any{
			{"name": "e", "data": "x", "channels": []string{"presence-x", "a", "b", "c", "d", "e", "f", "g"}, "info": "user_count"},
		}}), nil, `{"batch":[{"user_count":0}]}`},
		{"channels", http.MethodGet, api + "/channels", nil, nil, `{"channels":{}}`},
		{"channels with prefix and info", http.MethodGet, api + "/channels", nil,
			url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, `{"channels":{}}`},
		{"channel", http.MethodGet, api + "/channels/my-channel", nil, nil, `{"occupied":false}`},
		{"channel with info", http.MethodGet, api + "/channels/presence-x", nil,
			url.Values{"info": {"user_count,subscription_count"}}, `{"occupied":false,"user_count":0,"subscription_count":0}`},
		{"public channel with info", http.MethodGet, api + "/channels/my-channel", nil,
			url.Values{"info": {"subscription_count"}}, `{"occupied":false,"subscription_count":0}`},
		{"users", http.MethodGet, api + "/channels/presence-x/users", nil, nil, `{"users":[]}`},
		{"connections", http.MethodGet, api + "/connections", nil, nil, `{"connections":0}`},
		{"terminate", http.MethodPost, api + "/users/1/terminate_connections", nil, nil, `{}`},
		{"health", http.MethodGet, "/up", nil, nil, `{"health":"OK"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := n.ok(t, tt.method, tt.path, tt.body, tt.query)
			assert.JSONEq(t, tt.want, got)
		})
	}
}

// TestHTTPAPICacheChannel checks that a cache channel keeps its last event
// with no subscribers and GET channels/{c} shows it.
func TestHTTPAPICacheChannel(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	n.ok(t, http.MethodPost, eventsPath, trigger(t, map[string]any{"channels": []string{"cache-news"}, "name": "headline", "data": "first"}), nil)
	n.ok(t, http.MethodPost, eventsPath, trigger(t, map[string]any{"channels": []string{"cache-news"}, "name": "headline", "data": "second"}), nil)

	var got struct {
		Occupied bool `json:"occupied"`
		Cache    *struct {
			Event   string `json:"event"`
			Channel string `json:"channel"`
			Data    string `json:"data"`
		} `json:"cache"`
	}
	// Triggers are delivered asynchronously, even on one node.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		body := n.ok(t, http.MethodGet, "/apps/"+appID+"/channels/cache-news", nil, nil)
		require.NoError(c, json.Unmarshal([]byte(body), &got), body)
		require.NotNil(c, got.Cache, body)
		assert.Equal(c, "second", got.Cache.Data)
	}, 5*time.Second, 10*time.Millisecond)
	assert.False(t, got.Occupied)
	assert.Equal(t, "headline", got.Cache.Event)
	assert.Equal(t, "cache-news", got.Cache.Channel)

	// Not a cache channel: no cache attribute, ever.
	n.ok(t, http.MethodPost, eventsPath, trigger(t, nil), nil)
	assert.JSONEq(t, `{"occupied":false}`, n.ok(t, http.MethodGet, "/apps/"+appID+"/channels/my-channel", nil, nil))
}

// wsClient is a minimal Pusher protocol 7 client.
type wsClient struct {
	t        testing.TB
	conn     *fastws.Conn
	socketID string
}

type wsFrame struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

func dial(t testing.TB, n *node) *wsClient {
	t.Helper()
	conn, resp, err := fastws.DefaultDialer.Dial("ws://"+n.srv.Addr()+"/app/"+appKey+"?protocol=7&client=fizz-test&version=0", nil)
	require.NoError(t, err)
	resp.Body.Close()
	c := &wsClient{t: t, conn: conn}
	t.Cleanup(func() { _ = conn.Close() }) // the test may have closed it already
	f := c.next("pusher:connection_established")
	var data string
	require.NoError(t, json.Unmarshal(f.Data, &data))
	var est struct {
		SocketID string `json:"socket_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(data), &est))
	c.socketID = est.SocketID
	return c
}

// next reads frames until one named event arrives, skipping others.
func (c *wsClient) next(event string) wsFrame {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	for {
		_, msg, err := c.conn.ReadMessage()
		require.NoError(c.t, err, "waiting for %s", event)
		var f wsFrame
		require.NoError(c.t, json.Unmarshal(msg, &f), "%s", msg)
		if f.Event == event {
			return f
		}
	}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	require.NoError(c.t, c.conn.WriteJSON(v))
}

// subscribe joins channel and waits for subscription_succeeded. A
// presence channel is joined as userID, signed here with the app secret.
func (c *wsClient) subscribe(channel, userID string) {
	c.t.Helper()
	data := map[string]string{"channel": channel}
	if userID != "" {
		channelData := `{"user_id":"` + userID + `"}`
		data["channel_data"] = channelData
		data["auth"] = appKey + ":" + hmacHex(appSecret, c.socketID+":"+channel+":"+channelData)
	}
	c.send(map[string]any{"event": "pusher:subscribe", "data": data})
	c.next("pusher_internal:subscription_succeeded")
}

// TestHTTPAPIShapesWithSubscribers checks the routes' JSON with live
// sockets: three sockets, two users, one public and one presence channel.
func TestHTTPAPIShapesWithSubscribers(t *testing.T) {
	t.Parallel()
	n := newNode(t, "")
	api := "/apps/" + appID

	a, b, c := dial(t, n), dial(t, n), dial(t, n)
	a.subscribe("my-channel", "")
	a.subscribe("presence-room", "1")
	b.subscribe("my-channel", "")
	b.subscribe("presence-room", "2")
	c.subscribe("presence-room", "1") // user 1's second socket

	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		query  url.Values
		want   string
	}{
		{"connections", http.MethodGet, api + "/connections", nil, nil, `{"connections":3}`},
		{"channels", http.MethodGet, api + "/channels", nil, nil, `{"channels":{"my-channel":{},"presence-room":{}}}`},
		{"channels by prefix with user_count", http.MethodGet, api + "/channels", nil,
			url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}, `{"channels":{"presence-room":{"user_count":2}}}`},
		{"channels with subscription_count", http.MethodGet, api + "/channels", nil,
			url.Values{"info": {"subscription_count"}}, `{"channels":{"my-channel":{"subscription_count":2},"presence-room":{"subscription_count":3}}}`},
		{"prefix matches nothing", http.MethodGet, api + "/channels", nil,
			url.Values{"filter_by_prefix": {"private-"}}, `{"channels":{}}`},
		{"presence channel", http.MethodGet, api + "/channels/presence-room", nil,
			url.Values{"info": {"user_count,subscription_count"}}, `{"occupied":true,"user_count":2,"subscription_count":3}`},
		{"public channel", http.MethodGet, api + "/channels/my-channel", nil,
			url.Values{"info": {"subscription_count"}}, `{"occupied":true,"subscription_count":2}`},
		{"users", http.MethodGet, api + "/channels/presence-room/users", nil, nil, `{"users":[{"id":"1"},{"id":"2"}]}`},
		{"trigger with info", http.MethodPost, api + "/events",
			trigger(t, map[string]any{"channels": []string{"presence-room", "my-channel"}, "info": "user_count,subscription_count"}), nil,
			`{"channels":{"presence-room":{"user_count":2,"subscription_count":3},"my-channel":{"subscription_count":2}}}`},
		{"batch with info", http.MethodPost, api + "/batch_events", jsonBody(t, map[string]any{"batch": []map[string]any{
			{"name": "e", "data": "x", "channel": "presence-room", "info": "user_count,subscription_count"},
			{"name": "e", "data": "x", "channel": "my-channel", "info": "subscription_count"},
		}}), nil, `{"batch":[{"user_count":2,"subscription_count":3},{"subscription_count":2}]}`},
		{"other app sees none of it", http.MethodGet, "/apps/" + otherID + "/connections", nil, nil, `{"connections":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := n.do(t, signedRequest(tt.method, "", tt.path, tt.body, tt.query, signOpts{key: keyOf(tt.path), secret: secretOf(tt.path)}))
			require.Equal(t, http.StatusOK, status, got)
			assert.JSONEq(t, tt.want, string(got))
		})
	}

	t.Run("trigger reaches subscribers but the excluded socket", func(t *testing.T) {
		n.ok(t, http.MethodPost, eventsPath, trigger(t, map[string]any{"name": "skipped", "data": "1", "socket_id": a.socketID}), nil)
		n.ok(t, http.MethodPost, eventsPath, trigger(t, map[string]any{"name": "seen", "data": "2"}), nil)
		f := b.next("skipped")
		assert.Equal(t, "my-channel", f.Channel)
		assert.JSONEq(t, `"1"`, string(f.Data))
		// a's first event after the excluded one is the second trigger.
		require.NoError(t, a.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
		for {
			_, msg, err := a.conn.ReadMessage()
			require.NoError(t, err)
			var f wsFrame
			require.NoError(t, json.Unmarshal(msg, &f))
			require.NotEqual(t, "skipped", f.Event, "the excluded socket got the event")
			if f.Event == "seen" {
				break
			}
		}
	})

	t.Run("a channel named twice is delivered once", func(t *testing.T) {
		n.ok(t, http.MethodPost, eventsPath, trigger(t, map[string]any{"name": "twice", "channels": []string{"my-channel", "my-channel"}, "channel": "my-channel"}), nil)
		n.ok(t, http.MethodPost, eventsPath, trigger(t, map[string]any{"name": "marker"}), nil)
		got := 0
		require.NoError(t, b.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
		for {
			_, msg, err := b.conn.ReadMessage()
			require.NoError(t, err)
			var f wsFrame
			require.NoError(t, json.Unmarshal(msg, &f))
			if f.Event == "marker" {
				break
			}
			if f.Event == "twice" {
				got++
			}
		}
		assert.Equal(t, 1, got, "the socket got the event once per time its channel was named")
	})

	t.Run("terminate closes every socket of the user", func(t *testing.T) {
		assert.JSONEq(t, `{}`, n.ok(t, http.MethodPost, api+"/users/1/terminate_connections", nil, nil))
		for _, s := range []*wsClient{a, c} {
			require.NoError(t, s.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
			for {
				if _, _, err := s.conn.ReadMessage(); err != nil {
					break
				}
			}
		}
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			assert.JSONEq(c, `{"connections":1}`, n.ok(t, http.MethodGet, api+"/connections", nil, nil))
			assert.JSONEq(c, `{"users":[{"id":"2"}]}`, n.ok(t, http.MethodGet, api+"/channels/presence-room/users", nil, nil))
		}, 5*time.Second, 10*time.Millisecond)
	})
}

// keyOf and secretOf pick the credentials of the app a path is for.
func keyOf(path string) string {
	if len(path) > len("/apps/"+otherID) && path[:len("/apps/"+otherID)] == "/apps/"+otherID {
		return otherKey
	}
	return appKey
}

func secretOf(path string) string {
	if keyOf(path) == otherKey {
		return otherSecret
	}
	return appSecret
}
