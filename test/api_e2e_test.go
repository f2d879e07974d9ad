package e2e

// End-to-end tests of every route of the HTTP API against a live node:
// pusher-http-go v5 where it has the call, signed raw requests where it has
// none (connections, terminate_connections), and the JSON bodies checked
// field by field against Pusher's documented shapes.
//
// Every helper here is prefixed ae2e so that it cannot collide with the
// helpers of the other files of this package.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// The channels of the ae2e world.
const (
	ae2ePublic   = "news"
	ae2ePrivate  = "private-orders"
	ae2ePresence = "presence-room"
	ae2eCache    = "cache-scores"
	ae2eEmpty    = "empty-room" // never subscribed
	ae2eAlice    = "alice"
	ae2eBob      = "bob"
)

// ae2eWorld is a node with four live sockets:
//
//	alice1: news, private-orders (channel_data user alice), presence-room as alice
//	alice2: news, presence-room as alice, cache-scores
//	bob:    news, private-orders, presence-room as bob (joined first)
//	anon:   news, cache-scores (no user)
//
// so that news has 4 subscriptions, private-orders 2, presence-room 3
// subscriptions of 2 users, cache-scores 2, and the app 4 connections.
// alice's sockets both joined a public channel first.
type ae2eWorld struct {
	n                         *harness.Node
	alice1, alice2, bob, anon *pusherclient.Client
}

func (w *ae2eWorld) all() []*pusherclient.Client {
	return []*pusherclient.Client{w.alice1, w.alice2, w.bob, w.anon}
}

func newAE2EWorld(t *testing.T, mutate func(*app.Config)) *ae2eWorld {
	t.Helper()
	n := harness.Start(t, mutate)
	w := &ae2eWorld{n: n, alice1: harness.Dial(t, n), alice2: harness.Dial(t, n), bob: harness.Dial(t, n), anon: harness.Dial(t, n)}

	harness.Subscribe(t, w.bob, ae2ePublic)
	harness.Subscribe(t, w.bob, ae2ePrivate)
	ae2eJoinPresence(t, w.bob, ae2ePresence, ae2eBob)

	harness.Subscribe(t, w.alice1, ae2ePublic)
	data := harness.PresenceData(ae2eAlice, nil)
	f, err := w.alice1.Subscribe(ae2ePrivate, harness.Auth(w.alice1, ae2ePrivate, data), data)
	require.NoError(t, err)
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "private channel with channel_data: %s", f)
	ae2eJoinPresence(t, w.alice1, ae2ePresence, ae2eAlice)

	harness.Subscribe(t, w.alice2, ae2ePublic)
	ae2eJoinPresence(t, w.alice2, ae2ePresence, ae2eAlice)
	harness.Subscribe(t, w.alice2, ae2eCache)

	harness.Subscribe(t, w.anon, ae2ePublic)
	harness.Subscribe(t, w.anon, ae2eCache)
	return w
}

func ae2eJoinPresence(t testing.TB, c *pusherclient.Client, channel string, id any) {
	t.Helper()
	f := harness.JoinPresence(t, c, channel, id, map[string]string{"name": "user"})
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "join %s as %v: %s", channel, id, f)
}

// ae2eSign is Pusher's REST API signature, written from the protocol
// documentation rather than taken from the server: the keys lowercased and
// sorted, "key=value" joined by "&" (values not escaped), and HMAC-SHA256
// of "METHOD\npath\nquery" with the app secret, in hex.
func ae2eSign(secret, method, path string, params url.Values) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return strings.ToLower(keys[i]) < strings.ToLower(keys[j]) })
	pairs := make([]string, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, strings.ToLower(k)+"="+params.Get(k))
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(method + "\n" + path + "\n" + strings.Join(pairs, "&")))
	return hex.EncodeToString(mac.Sum(nil))
}

// ae2eReq is a signed raw request to the HTTP API.
type ae2eReq struct {
	method string
	path   string     // the route, without the server prefix
	query  url.Values // extra parameters, signed too
	body   []byte
	// noPrefix leaves the server prefix out of the URL.
	noPrefix bool
	// signedPath replaces path in the signing string.
	signedPath string
	// appID replaces the app id in the URL (path must hold "{app}").
	appID string
}

func (r ae2eReq) target(n *harness.Node) string {
	app := n.App.ID
	if r.appID != "" {
		app = r.appID
	}
	path := strings.ReplaceAll(r.path, "{app}", app)
	signedPath := path
	if r.signedPath != "" {
		signedPath = strings.ReplaceAll(r.signedPath, "{app}", app)
	}
	params := url.Values{}
	for k, v := range r.query {
		params[k] = append([]string(nil), v...)
	}
	params.Set("auth_key", n.App.Key)
	params.Set("auth_timestamp", strconv.FormatInt(time.Now().Unix(), 10))
	params.Set("auth_version", "1.0")
	if len(r.body) > 0 {
		sum := md5.Sum(r.body)
		params.Set("body_md5", hex.EncodeToString(sum[:]))
	}
	params.Set("auth_signature", ae2eSign(n.App.Secret, r.method, signedPath, params))
	prefix := n.Config.Server.Path
	if r.noPrefix {
		prefix = ""
	}
	return n.HTTPURL + prefix + path + "?" + params.Encode()
}

// ae2eResp is a raw answer.
type ae2eResp struct {
	status int
	header http.Header
	body   []byte
}

// ae2eSend sends r with hc (n.HTTP when nil) and reads the whole answer.
func ae2eSend(t testing.TB, n *harness.Node, hc *http.Client, r ae2eReq) ae2eResp {
	t.Helper()
	if hc == nil {
		hc = n.HTTP
	}
	req, err := http.NewRequest(r.method, r.target(n), bytes.NewReader(r.body))
	require.NoError(t, err)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	require.NoError(t, err, "%s %s", r.method, r.path)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return ae2eResp{status: resp.StatusCode, header: resp.Header, body: body}
}

// ae2eGet and ae2ePost are ae2eSend for the node's first app.
func ae2eGet(t testing.TB, n *harness.Node, path string, query url.Values) ae2eResp {
	t.Helper()
	return ae2eSend(t, n, nil, ae2eReq{method: http.MethodGet, path: path, query: query})
}

func ae2ePost(t testing.TB, n *harness.Node, path string, body any) ae2eResp {
	t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		raw = b
	default:
		var err error
		raw, err = json.Marshal(b)
		require.NoError(t, err)
	}
	return ae2eSend(t, n, nil, ae2eReq{method: http.MethodPost, path: path, body: raw})
}

// requireJSON checks the status, the JSON content type and the exact body.
func (r ae2eResp) requireJSON(t testing.TB, status int, want string) {
	t.Helper()
	require.Equal(t, status, r.status, "body %s", r.body)
	assert.Contains(t, r.header.Get("Content-Type"), "application/json")
	require.JSONEq(t, want, string(r.body))
}

// requireError checks a JSON {"error": "…"} answer with status, whose
// message contains every one of substrings.
func (r ae2eResp) requireError(t testing.TB, status int, substrings ...string) {
	t.Helper()
	require.Equal(t, status, r.status, "body %s", r.body)
	assert.Contains(t, r.header.Get("Content-Type"), "application/json")
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "a JSON object: %s", r.body)
	require.Len(t, m, 1, "only an error field: %s", r.body)
	msg, ok := m["error"].(string)
	require.True(t, ok, "error is a string: %s", r.body)
	require.NotEmpty(t, msg)
	for _, s := range substrings {
		assert.Contains(t, msg, s)
	}
}

func ae2eStr(s string) *string { return &s }

// ae2eIntPtr asserts a decoded *int attribute: nil when want is nil.
func ae2eIntPtr(t testing.TB, want *int, got *int, what string) {
	t.Helper()
	if want == nil {
		assert.Nil(t, got, "%s is absent", what)
		return
	}
	if assert.NotNil(t, got, "%s is present", what) {
		assert.Equal(t, *want, *got, what)
	}
}

func ae2eInt(i int) *int { return &i }

// ae2eEventsPath and friends are the routes, {app} standing for the app id.
const (
	ae2eEventsPath      = "/apps/{app}/events"
	ae2eBatchPath       = "/apps/{app}/batch_events"
	ae2eChannelsPath    = "/apps/{app}/channels"
	ae2eConnectionsPath = "/apps/{app}/connections"
)

func ae2eChannelPath(channel string) string { return "/apps/{app}/channels/" + channel }
func ae2eUsersPath(channel string) string   { return "/apps/{app}/channels/" + channel + "/users" }
func ae2eTerminatePath(user string) string {
	return "/apps/{app}/users/" + user + "/terminate_connections"
}

// ae2eExpectData waits for event on channel at every client and checks its data.
func ae2eExpectData(t testing.TB, event, channel, data string, clients ...*pusherclient.Client) {
	t.Helper()
	for _, c := range clients {
		f := harness.Expect(t, c, event, channel)
		assert.True(t, isJSONString(f.Data), "data %s is a JSON string", f.Data)
		assert.Equal(t, data, f.Text(), "data of %s at socket %s", event, c.SocketID)
	}
}

// ae2eNone flushes channel for every subscriber in subs, then checks that
// none of not got event on channel.
func ae2eNone(t testing.TB, n *harness.Node, event, channel string, subs []*pusherclient.Client, not ...*pusherclient.Client) {
	t.Helper()
	harness.Flush(t, n, channel, subs...)
	for _, c := range not {
		harness.RequireNone(t, c, event, channel)
	}
}

func TestAPIE2ETrigger(t *testing.T) {
	t.Parallel()
	w := newAE2EWorld(t, nil)
	n := w.n
	pubSubs := w.all()
	privSubs := []*pusherclient.Client{w.alice1, w.bob}
	presSubs := []*pusherclient.Client{w.alice1, w.alice2, w.bob}
	cacheSubs := []*pusherclient.Client{w.alice2, w.anon}

	t.Run("Trigger", func(t *testing.T) {
		require.NoError(t, n.Pusher.Trigger(ae2ePublic, "t-one", map[string]int{"n": 1}))
		ae2eExpectData(t, "t-one", ae2ePublic, `{"n":1}`, pubSubs...)
		harness.Flush(t, n, ae2ePublic, pubSubs...)
		for _, c := range pubSubs {
			harness.RequireNone(t, c, "t-one", ae2ePublic) // exactly once
		}
	})

	t.Run("TriggerMulti", func(t *testing.T) {
		require.NoError(t, n.Pusher.TriggerMulti([]string{ae2ePublic, ae2ePrivate, ae2ePresence}, "t-multi", "plain"))
		ae2eExpectData(t, "t-multi", ae2ePublic, "plain", pubSubs...)
		ae2eExpectData(t, "t-multi", ae2ePrivate, "plain", privSubs...)
		ae2eExpectData(t, "t-multi", ae2ePresence, "plain", presSubs...)
		ae2eNone(t, n, "t-multi", ae2ePrivate, privSubs, w.alice2, w.anon)
	})

	t.Run("TriggerExclusive", func(t *testing.T) {
		require.NoError(t, n.Pusher.TriggerExclusive(ae2ePublic, "t-excl", "x", w.alice1.SocketID))
		ae2eExpectData(t, "t-excl", ae2ePublic, "x", w.alice2, w.bob, w.anon)
		ae2eNone(t, n, "t-excl", ae2ePublic, pubSubs, w.alice1)
	})

	t.Run("TriggerWithParams info and socket_id", func(t *testing.T) {
		res, err := n.Pusher.TriggerWithParams(ae2ePresence, "t-info", map[string]string{"a": "b"}, pusherhttp.TriggerParams{
			Info:     ae2eStr("user_count,subscription_count"),
			SocketID: &w.bob.SocketID,
		})
		require.NoError(t, err)
		require.NotNil(t, res)
		require.Len(t, res.Channels, 1, "%+v", res.Channels)
		item, ok := res.Channels[ae2ePresence]
		require.True(t, ok, "%+v", res.Channels)
		ae2eIntPtr(t, ae2eInt(2), item.UserCount, "user_count: alice's two sockets count once")
		ae2eIntPtr(t, ae2eInt(3), item.SubscriptionCount, "subscription_count: every socket, the excluded one too")

		ae2eExpectData(t, "t-info", ae2ePresence, `{"a":"b"}`, w.alice1, w.alice2)
		ae2eNone(t, n, "t-info", ae2ePresence, presSubs, w.bob)

		// The raw body, field by field.
		r := ae2ePost(t, n, ae2eEventsPath, map[string]any{
			"name": "t-info-raw", "channels": []string{ae2ePresence}, "data": "d",
			"info": "user_count,subscription_count", "socket_id": w.bob.SocketID,
		})
		r.requireJSON(t, http.StatusOK, `{"channels":{"presence-room":{"user_count":2,"subscription_count":3}}}`)
		ae2eExpectData(t, "t-info-raw", ae2ePresence, "d", w.alice1, w.alice2)
		ae2eNone(t, n, "t-info-raw", ae2ePresence, presSubs, w.bob)
	})

	t.Run("TriggerWithParams info on a public channel has no user_count", func(t *testing.T) {
		res, err := n.Pusher.TriggerWithParams(ae2ePublic, "t-info-pub", "p", pusherhttp.TriggerParams{
			Info: ae2eStr("user_count,subscription_count"),
		})
		require.NoError(t, err)
		require.Len(t, res.Channels, 1)
		ae2eIntPtr(t, nil, res.Channels[ae2ePublic].UserCount, "user_count of a public channel")
		ae2eIntPtr(t, ae2eInt(4), res.Channels[ae2ePublic].SubscriptionCount, "subscription_count")
		ae2eExpectData(t, "t-info-pub", ae2ePublic, "p", pubSubs...)
	})

	t.Run("TriggerMultiWithParams info and socket_id", func(t *testing.T) {
		channels := []string{ae2ePublic, ae2ePrivate, ae2ePresence, ae2eCache, ae2eEmpty}
		res, err := n.Pusher.TriggerMultiWithParams(channels, "t-multi-info", "m", pusherhttp.TriggerParams{
			Info:     ae2eStr("user_count,subscription_count"),
			SocketID: &w.alice1.SocketID,
		})
		require.NoError(t, err)
		require.Len(t, res.Channels, len(channels), "%+v", res.Channels)
		want := map[string][2]*int{ // user_count, subscription_count
			ae2ePublic:   {nil, ae2eInt(4)},
			ae2ePrivate:  {nil, ae2eInt(2)},
			ae2ePresence: {ae2eInt(2), ae2eInt(3)},
			ae2eCache:    {nil, ae2eInt(2)},
			ae2eEmpty:    {nil, ae2eInt(0)},
		}
		for channel, attrs := range want {
			item, ok := res.Channels[channel]
			require.True(t, ok, "%s in %+v", channel, res.Channels)
			ae2eIntPtr(t, attrs[0], item.UserCount, channel+" user_count")
			ae2eIntPtr(t, attrs[1], item.SubscriptionCount, channel+" subscription_count")
		}
		// alice1 is excluded on every channel, the others get each once.
		ae2eExpectData(t, "t-multi-info", ae2ePublic, "m", w.alice2, w.bob, w.anon)
		ae2eExpectData(t, "t-multi-info", ae2ePrivate, "m", w.bob)
		ae2eExpectData(t, "t-multi-info", ae2ePresence, "m", w.alice2, w.bob)
		ae2eExpectData(t, "t-multi-info", ae2eCache, "m", w.alice2, w.anon)
		for channel, subs := range map[string][]*pusherclient.Client{ae2ePublic: pubSubs, ae2ePrivate: privSubs, ae2ePresence: presSubs} {
			ae2eNone(t, n, "t-multi-info", channel, subs, w.alice1)
		}

		r := ae2ePost(t, n, ae2eEventsPath, map[string]any{
			"name": "t-multi-raw", "channels": channels, "data": "m", "info": "user_count,subscription_count",
		})
		r.requireJSON(t, http.StatusOK, `{"channels":{
			"news":{"subscription_count":4},
			"private-orders":{"subscription_count":2},
			"presence-room":{"user_count":2,"subscription_count":3},
			"cache-scores":{"subscription_count":2},
			"empty-room":{"subscription_count":0}}}`)
		ae2eExpectData(t, "t-multi-raw", ae2ePublic, "m", pubSubs...)
	})

	t.Run("info user_count alone", func(t *testing.T) {
		r := ae2ePost(t, n, ae2eEventsPath, map[string]any{
			"name": "t-uc", "channels": []string{ae2ePublic, ae2ePresence}, "data": "u", "info": "user_count",
		})
		r.requireJSON(t, http.StatusOK, `{"channels":{"news":{},"presence-room":{"user_count":2}}}`)
	})

	t.Run("no info answers an empty object", func(t *testing.T) {
		r := ae2ePost(t, n, ae2eEventsPath, map[string]any{"name": "t-plain", "channels": []string{ae2ePublic}, "data": "p"})
		r.requireJSON(t, http.StatusOK, `{}`)
		ae2eExpectData(t, "t-plain", ae2ePublic, "p", pubSubs...)
	})

	t.Run("a cache channel keeps the last event", func(t *testing.T) {
		require.NoError(t, n.Pusher.Trigger(ae2eCache, "score", map[string]int{"goals": 3}))
		ae2eExpectData(t, "score", ae2eCache, `{"goals":3}`, cacheSubs...)
		ae2eGet(t, n, ae2eChannelPath(ae2eCache), nil).requireJSON(t, http.StatusOK,
			`{"occupied":true,"cache":{"event":"score","channel":"cache-scores","data":"{\"goals\":3}"}}`)
	})
}

func TestAPIE2EBatch(t *testing.T) {
	t.Parallel()
	w := newAE2EWorld(t, nil)
	n := w.n
	both, subs, users := "user_count,subscription_count", "subscription_count", "user_count"

	res, err := n.Pusher.TriggerBatch([]pusherhttp.Event{
		{Channel: ae2ePublic, Name: "b0", Data: "d0", SocketID: &w.alice1.SocketID, Info: &subs},
		{Channel: ae2ePresence, Name: "b1", Data: map[string]int{"d": 1}, Info: &both},
		{Channel: ae2ePrivate, Name: "b2", Data: "d2"},
		{Channel: ae2eCache, Name: "b3", Data: "d3", Info: &both},
		{Channel: ae2ePresence, Name: "b4", Data: "d4", SocketID: &w.alice2.SocketID, Info: &users},
		{Channel: ae2eEmpty, Name: "b5", Data: "d5", Info: &both},
	})
	require.NoError(t, err)
	require.NotNil(t, res)
	require.Len(t, res.Batch, 6, "one item per event, in order: %+v", res.Batch)
	want := [][2]*int{ // user_count, subscription_count
		{nil, ae2eInt(4)},
		{ae2eInt(2), ae2eInt(3)},
		{nil, nil},
		{nil, ae2eInt(2)},
		{ae2eInt(2), nil},
		{nil, ae2eInt(0)},
	}
	for i, attrs := range want {
		ae2eIntPtr(t, attrs[0], res.Batch[i].UserCount, "batch["+strconv.Itoa(i)+"] user_count")
		ae2eIntPtr(t, attrs[1], res.Batch[i].SubscriptionCount, "batch["+strconv.Itoa(i)+"] subscription_count")
	}

	ae2eExpectData(t, "b0", ae2ePublic, "d0", w.alice2, w.bob, w.anon)
	ae2eExpectData(t, "b1", ae2ePresence, `{"d":1}`, w.alice1, w.alice2, w.bob)
	ae2eExpectData(t, "b2", ae2ePrivate, "d2", w.alice1, w.bob)
	ae2eExpectData(t, "b3", ae2eCache, "d3", w.alice2, w.anon)
	ae2eExpectData(t, "b4", ae2ePresence, "d4", w.alice1, w.bob)
	ae2eNone(t, n, "b0", ae2ePublic, w.all(), w.alice1)
	ae2eNone(t, n, "b4", ae2ePresence, []*pusherclient.Client{w.alice1, w.alice2, w.bob}, w.alice2)
	ae2eNone(t, n, "b2", ae2ePrivate, []*pusherclient.Client{w.alice1, w.bob}, w.alice2, w.anon)

	t.Run("raw body", func(t *testing.T) {
		r := ae2ePost(t, n, ae2eBatchPath, map[string]any{"batch": []map[string]any{
			{"channel": ae2ePublic, "name": "r0", "data": "x", "info": subs, "socket_id": w.bob.SocketID},
			{"channel": ae2ePresence, "name": "r1", "data": "x", "info": both},
			{"channel": ae2ePrivate, "name": "r2", "data": "x"},
			{"channel": ae2eCache, "name": "r3", "data": "x", "info": both},
			{"channel": ae2ePresence, "name": "r4", "data": "x", "info": users},
		}})
		r.requireJSON(t, http.StatusOK, `{"batch":[
			{"subscription_count":4},
			{"user_count":2,"subscription_count":3},
			{},
			{"subscription_count":2},
			{"user_count":2}]}`)
		ae2eExpectData(t, "r0", ae2ePublic, "x", w.alice1, w.alice2, w.anon)
		ae2eNone(t, n, "r0", ae2ePublic, w.all(), w.bob)
	})

	t.Run("no info answers an empty object", func(t *testing.T) {
		r := ae2ePost(t, n, ae2eBatchPath, map[string]any{"batch": []map[string]any{
			{"channel": ae2ePublic, "name": "q0", "data": "x"},
			{"channel": ae2ePrivate, "name": "q1", "data": "y"},
		}})
		r.requireJSON(t, http.StatusOK, `{}`)
		ae2eExpectData(t, "q0", ae2ePublic, "x", w.all()...)
		ae2eExpectData(t, "q1", ae2ePrivate, "y", w.alice1, w.bob)
	})
}

func TestAPIE2EChannels(t *testing.T) {
	t.Parallel()
	w := newAE2EWorld(t, nil)
	n := w.n

	t.Run("all occupied channels, no attributes", func(t *testing.T) {
		list, err := n.Pusher.Channels(pusherhttp.ChannelsParams{})
		require.NoError(t, err)
		names := make([]string, 0, len(list.Channels))
		for name, item := range list.Channels {
			names = append(names, name)
			assert.Zero(t, item.UserCount, name)
		}
		assert.ElementsMatch(t, []string{ae2ePublic, ae2ePrivate, ae2ePresence, ae2eCache}, names)

		ae2eGet(t, n, ae2eChannelsPath, nil).requireJSON(t, http.StatusOK,
			`{"channels":{"news":{},"private-orders":{},"presence-room":{},"cache-scores":{}}}`)
	})

	t.Run("presence- prefix with user_count", func(t *testing.T) {
		list, err := n.Pusher.Channels(pusherhttp.ChannelsParams{FilterByPrefix: ae2eStr("presence-"), Info: ae2eStr("user_count")})
		require.NoError(t, err)
		require.Len(t, list.Channels, 1, "%+v", list.Channels)
		assert.Equal(t, 2, list.Channels[ae2ePresence].UserCount, "alice's two sockets count once")

		ae2eGet(t, n, ae2eChannelsPath, url.Values{"filter_by_prefix": {"presence-"}, "info": {"user_count"}}).
			requireJSON(t, http.StatusOK, `{"channels":{"presence-room":{"user_count":2}}}`)
	})

	t.Run("private- prefix with subscription_count", func(t *testing.T) {
		list, err := n.Pusher.Channels(pusherhttp.ChannelsParams{FilterByPrefix: ae2eStr("private-"), Info: ae2eStr("subscription_count")})
		require.NoError(t, err)
		require.Len(t, list.Channels, 1, "%+v", list.Channels)
		assert.Contains(t, list.Channels, ae2ePrivate)

		ae2eGet(t, n, ae2eChannelsPath, url.Values{"filter_by_prefix": {"private-"}, "info": {"subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"channels":{"private-orders":{"subscription_count":2}}}`)
	})

	t.Run("both attributes without a prefix, the same counts as every route", func(t *testing.T) {
		list, err := n.Pusher.Channels(pusherhttp.ChannelsParams{Info: ae2eStr("user_count,subscription_count")})
		require.NoError(t, err)
		require.Len(t, list.Channels, 4, "%+v", list.Channels)
		assert.Equal(t, 2, list.Channels[ae2ePresence].UserCount)

		ae2eGet(t, n, ae2eChannelsPath, url.Values{"info": {"user_count,subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"channels":{
				"news":{"subscription_count":4},
				"private-orders":{"subscription_count":2},
				"presence-room":{"user_count":2,"subscription_count":3},
				"cache-scores":{"subscription_count":2}}}`)
	})

	t.Run("a prefix nothing has", func(t *testing.T) {
		list, err := n.Pusher.Channels(pusherhttp.ChannelsParams{FilterByPrefix: ae2eStr("nothing-")})
		require.NoError(t, err)
		assert.Empty(t, list.Channels)
		ae2eGet(t, n, ae2eChannelsPath, url.Values{"filter_by_prefix": {"nothing-"}}).
			requireJSON(t, http.StatusOK, `{"channels":{}}`)
	})

	t.Run("a channel whose last subscriber left is not listed", func(t *testing.T) {
		require.NoError(t, w.alice1.Unsubscribe(ae2ePrivate))
		require.NoError(t, w.bob.Unsubscribe(ae2ePrivate))
		barrier(t, w.alice1, w.bob) // the pongs prove the unsubscribes were handled
		ae2eGet(t, n, ae2eChannelsPath, url.Values{"filter_by_prefix": {"private-"}}).
			requireJSON(t, http.StatusOK, `{"channels":{}}`)
		ch, err := n.Pusher.Channel(ae2ePrivate, pusherhttp.ChannelParams{})
		require.NoError(t, err)
		assert.False(t, ch.Occupied)
	})
}

func TestAPIE2EChannel(t *testing.T) {
	t.Parallel()
	w := newAE2EWorld(t, nil)
	n := w.n
	both := ae2eStr("user_count,subscription_count")

	t.Run("presence", func(t *testing.T) {
		ch, err := n.Pusher.Channel(ae2ePresence, pusherhttp.ChannelParams{Info: both})
		require.NoError(t, err)
		assert.Equal(t, pusherhttp.Channel{Name: ae2ePresence, Occupied: true, UserCount: 2, SubscriptionCount: 3}, *ch)

		ae2eGet(t, n, ae2eChannelPath(ae2ePresence), url.Values{"info": {"user_count,subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"user_count":2,"subscription_count":3}`)
		ae2eGet(t, n, ae2eChannelPath(ae2ePresence), url.Values{"info": {"user_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"user_count":2}`)
		ae2eGet(t, n, ae2eChannelPath(ae2ePresence), nil).
			requireJSON(t, http.StatusOK, `{"occupied":true}`)
	})

	t.Run("public and private", func(t *testing.T) {
		ch, err := n.Pusher.Channel(ae2ePublic, pusherhttp.ChannelParams{Info: both})
		require.NoError(t, err)
		assert.Equal(t, pusherhttp.Channel{Name: ae2ePublic, Occupied: true, SubscriptionCount: 4}, *ch)
		ae2eGet(t, n, ae2eChannelPath(ae2ePublic), url.Values{"info": {"user_count,subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"subscription_count":4}`)
		ae2eGet(t, n, ae2eChannelPath(ae2ePublic), nil).
			requireJSON(t, http.StatusOK, `{"occupied":true}`)

		ch, err = n.Pusher.Channel(ae2ePrivate, pusherhttp.ChannelParams{Info: ae2eStr("subscription_count")})
		require.NoError(t, err)
		assert.Equal(t, pusherhttp.Channel{Name: ae2ePrivate, Occupied: true, SubscriptionCount: 2}, *ch)
		ae2eGet(t, n, ae2eChannelPath(ae2ePrivate), url.Values{"info": {"subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"subscription_count":2}`)
	})

	t.Run("unoccupied", func(t *testing.T) {
		ch, err := n.Pusher.Channel(ae2eEmpty, pusherhttp.ChannelParams{Info: both})
		require.NoError(t, err)
		assert.Equal(t, pusherhttp.Channel{Name: ae2eEmpty}, *ch)
		ae2eGet(t, n, ae2eChannelPath(ae2eEmpty), url.Values{"info": {"subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":false,"subscription_count":0}`)
		ae2eGet(t, n, ae2eChannelPath(ae2eEmpty), nil).
			requireJSON(t, http.StatusOK, `{"occupied":false}`)
		ae2eGet(t, n, ae2eChannelPath("presence-nobody"), url.Values{"info": {"user_count,subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":false,"user_count":0,"subscription_count":0}`)
	})

	t.Run("cache", func(t *testing.T) {
		// No event yet: no cache attribute.
		ae2eGet(t, n, ae2eChannelPath(ae2eCache), url.Values{"info": {"subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"subscription_count":2}`)

		require.NoError(t, n.Pusher.Trigger(ae2eCache, "score", map[string]int{"goals": 1}))
		require.NoError(t, n.Pusher.Trigger(ae2eCache, "score", map[string]int{"goals": 3}))
		// Once the subscribers have the second event it has been kept:
		// the node keeps it before it publishes it.
		for _, c := range []*pusherclient.Client{w.alice2, w.anon} {
			harness.Expect(t, c, "score", ae2eCache)
			assert.JSONEq(t, `{"goals":3}`, harness.Expect(t, c, "score", ae2eCache).Text())
		}
		const cached = `"cache":{"event":"score","channel":"cache-scores","data":"{\"goals\":3}"}`
		ae2eGet(t, n, ae2eChannelPath(ae2eCache), url.Values{"info": {"subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"subscription_count":2,`+cached+`}`)
		ch, err := n.Pusher.Channel(ae2eCache, pusherhttp.ChannelParams{Info: both})
		require.NoError(t, err)
		assert.Equal(t, pusherhttp.Channel{Name: ae2eCache, Occupied: true, SubscriptionCount: 2}, *ch)

		// Kept with no subscriber too.
		require.NoError(t, w.alice2.Unsubscribe(ae2eCache))
		require.NoError(t, w.anon.Unsubscribe(ae2eCache))
		barrier(t, w.alice2, w.anon)
		ae2eGet(t, n, ae2eChannelPath(ae2eCache), nil).
			requireJSON(t, http.StatusOK, `{"occupied":false,`+cached+`}`)

		// Not a cache channel: never a cache attribute.
		r := ae2eGet(t, n, ae2eChannelPath(ae2ePublic), nil)
		assert.NotContains(t, string(r.body), `"cache"`)
	})

	t.Run("a name with every punctuation Pusher allows", func(t *testing.T) {
		const odd = "presence-a_b-c=d@e,f.g;h"
		c := harness.Dial(t, n)
		ae2eJoinPresence(t, c, odd, "odd-user")
		ch, err := n.Pusher.Channel(odd, pusherhttp.ChannelParams{Info: both})
		require.NoError(t, err)
		assert.Equal(t, pusherhttp.Channel{Name: odd, Occupied: true, UserCount: 1, SubscriptionCount: 1}, *ch)
		users, err := n.Pusher.GetChannelUsers(odd)
		require.NoError(t, err)
		assert.Equal(t, []pusherhttp.User{{ID: "odd-user"}}, users.List)
		// pusher-http-go puts the prefix in the query unescaped.
		list, err := n.Pusher.Channels(pusherhttp.ChannelsParams{FilterByPrefix: ae2eStr("presence-a_b-c=d@e,f.g;"), Info: ae2eStr("user_count")})
		require.NoError(t, err)
		assert.Equal(t, map[string]pusherhttp.ChannelListItem{odd: {UserCount: 1}}, list.Channels)
		ae2eGet(t, n, ae2eChannelsPath, url.Values{"filter_by_prefix": {"presence-a_b-c=d@e,f.g;"}, "info": {"user_count"}}).
			requireJSON(t, http.StatusOK, `{"channels":{"presence-a_b-c=d@e,f.g;h":{"user_count":1}}}`)
		ae2eGet(t, n, ae2eChannelPath(url.PathEscape(odd)), url.Values{"info": {"user_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"user_count":1}`)
	})
}

func TestAPIE2EUsers(t *testing.T) {
	t.Parallel()
	w := newAE2EWorld(t, nil)
	n := w.n

	t.Run("presence members, each once, sorted", func(t *testing.T) {
		users, err := n.Pusher.GetChannelUsers(ae2ePresence)
		require.NoError(t, err)
		// bob joined first; the answer is sorted by id.
		assert.Equal(t, []pusherhttp.User{{ID: ae2eAlice}, {ID: ae2eBob}}, users.List)
		ae2eGet(t, n, ae2eUsersPath(ae2ePresence), nil).
			requireJSON(t, http.StatusOK, `{"users":[{"id":"alice"},{"id":"bob"}]}`)
	})

	t.Run("an integer user id is a string id", func(t *testing.T) {
		c := harness.Dial(t, n)
		ae2eJoinPresence(t, c, ae2ePresence, 42)
		ae2eGet(t, n, ae2eUsersPath(ae2ePresence), nil).
			requireJSON(t, http.StatusOK, `{"users":[{"id":"42"},{"id":"alice"},{"id":"bob"}]}`)
		require.NoError(t, c.Close())
		require.Eventually(t, func() bool {
			users, err := n.Pusher.GetChannelUsers(ae2ePresence)
			return err == nil && len(users.List) == 2
		}, wait, 10*time.Millisecond, "42 leaves when its socket closes")
		for _, c := range []*pusherclient.Client{w.alice1, w.alice2, w.bob} {
			f := harness.Expect(t, c, pusher.EventMemberRemoved, ae2ePresence)
			assert.Equal(t, "42", decodeText(t, f)["user_id"])
		}
	})

	t.Run("an empty presence channel", func(t *testing.T) {
		users, err := n.Pusher.GetChannelUsers("presence-nobody")
		require.NoError(t, err)
		assert.Empty(t, users.List)
		ae2eGet(t, n, ae2eUsersPath("presence-nobody"), nil).requireJSON(t, http.StatusOK, `{"users":[]}`)
	})

	for _, channel := range []string{ae2ePublic, ae2ePrivate, ae2eCache, ae2eEmpty, "private-encrypted-vault"} {
		t.Run("400 on "+channel, func(t *testing.T) {
			_, err := n.Pusher.GetChannelUsers(channel)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "Status Code: 400")
			ae2eGet(t, n, ae2eUsersPath(channel), nil).requireError(t, http.StatusBadRequest, channel)
		})
	}

	t.Run("a user stays while one of two sockets is left", func(t *testing.T) {
		presSubs := []*pusherclient.Client{w.alice1, w.alice2, w.bob}
		require.NoError(t, w.alice1.Unsubscribe(ae2ePresence))
		barrier(t, w.alice1)
		ae2eGet(t, n, ae2eUsersPath(ae2ePresence), nil).
			requireJSON(t, http.StatusOK, `{"users":[{"id":"alice"},{"id":"bob"}]}`)
		ae2eGet(t, n, ae2eChannelPath(ae2ePresence), url.Values{"info": {"user_count,subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"user_count":2,"subscription_count":2}`)
		ae2eNone(t, n, pusher.EventMemberRemoved, ae2ePresence, presSubs[1:], w.alice2, w.bob)

		require.NoError(t, w.alice2.Unsubscribe(ae2ePresence))
		barrier(t, w.alice2)
		f := harness.Expect(t, w.bob, pusher.EventMemberRemoved, ae2ePresence)
		assert.Equal(t, ae2eAlice, decodeText(t, f)["user_id"])
		ae2eGet(t, n, ae2eUsersPath(ae2ePresence), nil).
			requireJSON(t, http.StatusOK, `{"users":[{"id":"bob"}]}`)
		res, err := n.Pusher.TriggerWithParams(ae2ePresence, "after", "x", pusherhttp.TriggerParams{Info: ae2eStr("user_count,subscription_count")})
		require.NoError(t, err)
		ae2eIntPtr(t, ae2eInt(1), res.Channels[ae2ePresence].UserCount, "user_count")
		ae2eIntPtr(t, ae2eInt(1), res.Channels[ae2ePresence].SubscriptionCount, "subscription_count")
	})
}

func TestAPIE2EConnections(t *testing.T) {
	t.Parallel()
	w := newAE2EWorld(t, nil)
	n := w.n
	ae2eGet(t, n, ae2eConnectionsPath, nil).requireJSON(t, http.StatusOK, `{"connections":4}`)

	// A socket that only connected counts; one that closed no longer does.
	c := harness.Dial(t, n)
	ae2eGet(t, n, ae2eConnectionsPath, nil).requireJSON(t, http.StatusOK, `{"connections":5}`)
	require.NoError(t, c.Close())
	require.NoError(t, w.anon.Close())
	ae2eEventuallyConnections(t, n, nil, 3)
}

// ae2eEventuallyConnections polls GET connections until it answers want.
func ae2eEventuallyConnections(t testing.TB, n *harness.Node, hc *http.Client, want int) {
	t.Helper()
	var last ae2eResp
	deadline := time.Now().Add(wait)
	for {
		last = ae2eSend(t, n, hc, ae2eReq{method: http.MethodGet, path: ae2eConnectionsPath})
		var got struct {
			Connections *int `json:"connections"`
		}
		if last.status == http.StatusOK && json.Unmarshal(last.body, &got) == nil &&
			got.Connections != nil && *got.Connections == want {
			last.requireJSON(t, http.StatusOK, `{"connections":`+strconv.Itoa(want)+`}`)
			return
		}
		if time.Now().After(deadline) {
			require.Failf(t, "connections", "want %d, last answer %d %s", want, last.status, last.body)
		}
		ae2ePoll()
	}
}

// ae2ePoll paces a poll that has a deadline: the state it waits for
// (a closed socket released by the node) has no event to wait on.
func ae2ePoll() {
	t := time.NewTimer(5 * time.Millisecond)
	defer t.Stop()
	<-t.C
}

func TestAPIE2ETerminate(t *testing.T) {
	t.Parallel()
	w := newAE2EWorld(t, nil)
	n := w.n
	ae2eGet(t, n, ae2eConnectionsPath, nil).requireJSON(t, http.StatusOK, `{"connections":4}`)

	t.Run("an unknown user: 200 and nothing closes", func(t *testing.T) {
		ae2ePost(t, n, ae2eTerminatePath("nobody"), []byte(`{}`)).requireJSON(t, http.StatusOK, `{}`)
		for _, c := range w.all() {
			harness.RequireOpen(t, c)
		}
		ae2eGet(t, n, ae2eConnectionsPath, nil).requireJSON(t, http.StatusOK, `{"connections":4}`)
	})

	t.Run("both sockets of alice close with 4009, bob's stays", func(t *testing.T) {
		ae2ePost(t, n, ae2eTerminatePath(ae2eAlice), []byte(`{}`)).requireJSON(t, http.StatusOK, `{}`)
		harness.RequireFatal(t, w.alice1, pusher.CodeUnauthorized)
		harness.RequireFatal(t, w.alice2, pusher.CodeUnauthorized)
		assert.Equal(t, 4009, pusher.CodeUnauthorized)
		harness.RequireOpen(t, w.bob)
		harness.RequireOpen(t, w.anon)

		// bob hears alice leave once, when her last socket is gone.
		f := harness.Expect(t, w.bob, pusher.EventMemberRemoved, ae2ePresence)
		var m struct {
			UserID string `json:"user_id"`
		}
		require.NoError(t, json.Unmarshal([]byte(f.Text()), &m), "%s", f)
		assert.Equal(t, ae2eAlice, m.UserID)
		harness.Flush(t, n, ae2ePresence, w.bob)
		harness.RequireNone(t, w.bob, pusher.EventMemberRemoved, ae2ePresence)

		ae2eEventuallyConnections(t, n, nil, 2)
		ae2eGet(t, n, ae2eUsersPath(ae2ePresence), nil).requireJSON(t, http.StatusOK, `{"users":[{"id":"bob"}]}`)
		ae2eGet(t, n, ae2eChannelPath(ae2ePresence), url.Values{"info": {"user_count,subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"occupied":true,"user_count":1,"subscription_count":1}`)
		ae2eGet(t, n, ae2eChannelsPath, url.Values{"info": {"user_count,subscription_count"}}).
			requireJSON(t, http.StatusOK, `{"channels":{
				"news":{"subscription_count":2},
				"private-orders":{"subscription_count":1},
				"presence-room":{"user_count":1,"subscription_count":1},
				"cache-scores":{"subscription_count":1}}}`)
		// The survivors still get events.
		require.NoError(t, n.Pusher.Trigger(ae2ePublic, "after", "x"))
		ae2eExpectData(t, "after", ae2ePublic, "x", w.bob, w.anon)
	})

	t.Run("an integer user id, with an empty body", func(t *testing.T) {
		c := harness.Dial(t, n)
		harness.Subscribe(t, c, ae2ePublic)
		ae2eJoinPresence(t, c, ae2ePresence, 42)
		ae2ePost(t, n, ae2eTerminatePath("42"), nil).requireJSON(t, http.StatusOK, `{}`)
		harness.RequireFatal(t, c, pusher.CodeUnauthorized)
		harness.RequireOpen(t, w.bob)
		ae2eEventuallyConnections(t, n, nil, 2)
	})

	t.Run("a user known from private channel_data only", func(t *testing.T) {
		c := harness.Dial(t, n)
		harness.Subscribe(t, c, ae2ePublic)
		data := harness.PresenceData("carol", nil)
		f, err := c.Subscribe(ae2ePrivate, harness.Auth(c, ae2ePrivate, data), data)
		require.NoError(t, err)
		require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "%s", f)
		ae2ePost(t, n, ae2eTerminatePath("carol"), []byte(`{}`)).requireJSON(t, http.StatusOK, `{}`)
		harness.RequireFatal(t, c, pusher.CodeUnauthorized)
		harness.RequireOpen(t, w.bob)
		harness.RequireOpen(t, w.anon)
	})

	t.Run("user ids that need escaping in the path", func(t *testing.T) {
		for _, id := range []string{"Jane Doe", "100%", "jane@example.com", "a/b", "é"} {
			c := harness.Dial(t, n)
			ae2eJoinPresence(t, c, ae2ePresence, id)
			ae2ePost(t, n, ae2eTerminatePath(url.PathEscape(id)), []byte(`{}`)).requireJSON(t, http.StatusOK, `{}`)
			harness.RequireFatal(t, c, pusher.CodeUnauthorized)
		}
		harness.RequireOpen(t, w.bob)
		ae2eEventuallyConnections(t, n, nil, 2)
	})

	t.Run("bob", func(t *testing.T) {
		ae2ePost(t, n, ae2eTerminatePath(ae2eBob), []byte(`{}`)).requireJSON(t, http.StatusOK, `{}`)
		harness.RequireFatal(t, w.bob, pusher.CodeUnauthorized)
		harness.RequireOpen(t, w.anon) // a socket with no user is never terminated
		ae2eEventuallyConnections(t, n, nil, 1)
		ae2eGet(t, n, ae2eUsersPath(ae2ePresence), nil).requireJSON(t, http.StatusOK, `{"users":[]}`)
	})
}

func TestAPIE2EUnknownApp(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	c := harness.Dial(t, n)
	harness.Subscribe(t, c, ae2ePublic)

	other := n.PusherFor(n.App)
	other.AppID = "999999"
	calls := map[string]func() error{
		"Trigger": func() error { return other.Trigger(ae2ePublic, "nope", "x") },
		"TriggerBatch": func() error {
			_, err := other.TriggerBatch([]pusherhttp.Event{{Channel: ae2ePublic, Name: "nope", Data: "x"}})
			return err
		},
		"Channels": func() error { _, err := other.Channels(pusherhttp.ChannelsParams{}); return err },
		"Channel":  func() error { _, err := other.Channel(ae2ePublic, pusherhttp.ChannelParams{}); return err },
		"GetChannelUsers": func() error {
			_, err := other.GetChannelUsers("presence-room")
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "Status Code: 404")
			assert.Contains(t, err.Error(), `"error"`)
		})
	}
	raw := []ae2eReq{
		{method: http.MethodGet, path: ae2eConnectionsPath},
		{method: http.MethodPost, path: ae2eTerminatePath("alice"), body: []byte(`{}`)},
		{method: http.MethodGet, path: ae2eChannelPath(ae2ePublic)},
		{method: http.MethodPost, path: ae2eEventsPath, body: []byte(`{"name":"nope","channels":["news"],"data":"x"}`)},
	}
	for _, r := range raw {
		r.appID = "999999"
		t.Run("raw "+r.method+" "+r.path, func(t *testing.T) {
			ae2eSend(t, n, nil, r).requireError(t, http.StatusNotFound, "999999")
		})
	}
	t.Run("nothing was delivered", func(t *testing.T) {
		harness.Flush(t, n, ae2ePublic, c)
		harness.RequireNone(t, c, "nope", ae2ePublic)
	})
}

// TestAPIE2EServerPath drives every route through FIZZ_SERVER_PATH=/ws,
// signed over the path without the prefix as pusher-http-go signs it.
func TestAPIE2EServerPath(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Server.Path = "/ws" })
	require.Equal(t, n.Addr+"/ws", n.Pusher.Host)
	alice, bob := harness.Dial(t, n), harness.Dial(t, n)
	for _, c := range []*pusherclient.Client{alice, bob} {
		harness.Subscribe(t, c, ae2ePublic)
	}
	ae2eJoinPresence(t, alice, ae2ePresence, ae2eAlice)
	ae2eJoinPresence(t, bob, ae2ePresence, ae2eBob)

	require.NoError(t, n.Pusher.Trigger(ae2ePublic, "p1", "x"))
	ae2eExpectData(t, "p1", ae2ePublic, "x", alice, bob)

	res, err := n.Pusher.TriggerWithParams(ae2ePresence, "p2", "y", pusherhttp.TriggerParams{
		Info: ae2eStr("user_count,subscription_count"), SocketID: &alice.SocketID,
	})
	require.NoError(t, err)
	ae2eIntPtr(t, ae2eInt(2), res.Channels[ae2ePresence].UserCount, "user_count")
	ae2eIntPtr(t, ae2eInt(2), res.Channels[ae2ePresence].SubscriptionCount, "subscription_count")
	ae2eExpectData(t, "p2", ae2ePresence, "y", bob)
	ae2eNone(t, n, "p2", ae2ePresence, []*pusherclient.Client{alice, bob}, alice)

	info := "subscription_count"
	batch, err := n.Pusher.TriggerBatch([]pusherhttp.Event{{Channel: ae2ePublic, Name: "p3", Data: "z", Info: &info}})
	require.NoError(t, err)
	require.Len(t, batch.Batch, 1)
	ae2eIntPtr(t, ae2eInt(2), batch.Batch[0].SubscriptionCount, "batch subscription_count")
	ae2eExpectData(t, "p3", ae2ePublic, "z", alice, bob)

	list, err := n.Pusher.Channels(pusherhttp.ChannelsParams{FilterByPrefix: ae2eStr("presence-"), Info: ae2eStr("user_count")})
	require.NoError(t, err)
	assert.Equal(t, map[string]pusherhttp.ChannelListItem{ae2ePresence: {UserCount: 2}}, list.Channels)

	ch, err := n.Pusher.Channel(ae2ePublic, pusherhttp.ChannelParams{Info: ae2eStr("subscription_count")})
	require.NoError(t, err)
	assert.Equal(t, pusherhttp.Channel{Name: ae2ePublic, Occupied: true, SubscriptionCount: 2}, *ch)

	users, err := n.Pusher.GetChannelUsers(ae2ePresence)
	require.NoError(t, err)
	assert.Equal(t, []pusherhttp.User{{ID: ae2eAlice}, {ID: ae2eBob}}, users.List)

	ae2eGet(t, n, ae2eConnectionsPath, nil).requireJSON(t, http.StatusOK, `{"connections":2}`)

	t.Run("not served without the prefix", func(t *testing.T) {
		r := ae2eSend(t, n, nil, ae2eReq{method: http.MethodGet, path: ae2eConnectionsPath, noPrefix: true})
		assert.Equal(t, http.StatusNotFound, r.status, "%s", r.body)
	})
	t.Run("a signature over the prefixed path is refused", func(t *testing.T) {
		r := ae2eSend(t, n, nil, ae2eReq{method: http.MethodGet, path: ae2eConnectionsPath, signedPath: "/ws" + ae2eConnectionsPath})
		r.requireError(t, http.StatusUnauthorized)
	})

	ae2ePost(t, n, ae2eTerminatePath(ae2eAlice), []byte(`{}`)).requireJSON(t, http.StatusOK, `{}`)
	harness.RequireFatal(t, alice, pusher.CodeUnauthorized)
	harness.RequireOpen(t, bob)
	ae2eEventuallyConnections(t, n, nil, 1)
}

// ae2eTracingTransport adds an httptrace to every request that passes, for
// the pusher-http-go calls, which build their requests themselves.
type ae2eTracingTransport struct {
	base    http.RoundTripper
	mu      sync.Mutex
	reused  []bool
	locals  []string
	dialled atomic.Int32
}

func (tr *ae2eTracingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.reused = append(tr.reused, info.Reused)
		tr.locals = append(tr.locals, info.Conn.LocalAddr().String())
	}}
	return tr.base.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
}

// TestAPIE2EKeepAlive: a backend's pusher-http-go client, failed calls
// included, uses one TCP connection for many calls.
func TestAPIE2EKeepAlive(t *testing.T) {
	t.Parallel()
	w := newAE2EWorld(t, nil)
	n := w.n

	tr := &ae2eTracingTransport{}
	dialer := &net.Dialer{Timeout: wait}
	base := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			tr.dialled.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 1,
	}
	tr.base = base
	t.Cleanup(base.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: wait}
	p := n.PusherFor(n.App)
	p.HTTPClient = hc
	both := "user_count,subscription_count"

	steps := []struct {
		name string
		call func() error
		fail bool
	}{
		{"Trigger", func() error { return p.Trigger(ae2ePublic, "k1", "x") }, false},
		{"TriggerWithParams", func() error {
			_, err := p.TriggerWithParams(ae2ePresence, "k2", "x", pusherhttp.TriggerParams{Info: &both})
			return err
		}, false},
		{"TriggerBatch", func() error {
			_, err := p.TriggerBatch([]pusherhttp.Event{{Channel: ae2ePublic, Name: "k3", Data: "x", Info: &both}})
			return err
		}, false},
		{"Channels", func() error { _, err := p.Channels(pusherhttp.ChannelsParams{Info: &both}); return err }, false},
		{"Channel", func() error { _, err := p.Channel(ae2eCache, pusherhttp.ChannelParams{Info: &both}); return err }, false},
		{"GetChannelUsers", func() error { _, err := p.GetChannelUsers(ae2ePresence); return err }, false},
		{"GetChannelUsers 400", func() error { _, err := p.GetChannelUsers(ae2ePublic); return err }, true},
		{"Trigger 422", func() error { return p.Trigger(ae2ePublic, strings.Repeat("e", 201), "x") }, true},
		{"raw connections", func() error {
			ae2eSend(t, n, hc, ae2eReq{method: http.MethodGet, path: ae2eConnectionsPath}).
				requireJSON(t, http.StatusOK, `{"connections":4}`)
			return nil
		}, false},
		{"raw terminate", func() error {
			ae2eSend(t, n, hc, ae2eReq{method: http.MethodPost, path: ae2eTerminatePath("nobody"), body: []byte(`{}`)}).
				requireJSON(t, http.StatusOK, `{}`)
			return nil
		}, false},
		{"wrong secret 401", func() error {
			bad := n.PusherFor(n.App)
			bad.HTTPClient, bad.Secret = hc, "guess"
			return bad.Trigger(ae2ePublic, "k-bad", "x")
		}, true},
		{"unknown app 404", func() error {
			bad := n.PusherFor(n.App)
			bad.HTTPClient, bad.AppID = hc, "999999"
			_, err := bad.Channels(pusherhttp.ChannelsParams{})
			return err
		}, true},
		{"Trigger again", func() error { return p.Trigger(ae2ePublic, "k4", "x") }, false},
	}
	for _, s := range steps {
		err := s.call()
		if s.fail {
			require.Error(t, err, s.name)
		} else {
			require.NoError(t, err, s.name)
		}
	}
	ae2eExpectData(t, "k4", ae2ePublic, "x", w.all()...)

	tr.mu.Lock()
	defer tr.mu.Unlock()
	require.Len(t, tr.reused, len(steps), "one connection taken per call")
	assert.Equal(t, int32(1), tr.dialled.Load(), "TCP connections dialled for %d calls", len(steps))
	for i, reused := range tr.reused[1:] {
		assert.True(t, reused, "call %d (%s) reused the connection", i+1, steps[i+1].name)
		assert.Equal(t, tr.locals[0], tr.locals[i+1], "call %d (%s) local address", i+1, steps[i+1].name)
	}
}

// TestAPIE2ESendToUser: pusher-http-go's AuthenticateUser signs a socket
// in, SendToUser reaches its #server-to-user- channel through POST events,
// and terminate_connections knows a user from pusher:signin alone.
func TestAPIE2ESendToUser(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	const user = "dave@example.com"
	dave, other := harness.Dial(t, n), harness.Dial(t, n)
	harness.Subscribe(t, dave, ae2ePublic)
	harness.Subscribe(t, other, ae2ePublic)

	resp, err := n.Pusher.AuthenticateUser([]byte("socket_id="+url.QueryEscape(dave.SocketID)), map[string]any{"id": user})
	require.NoError(t, err)
	var signin struct {
		Auth     string `json:"auth"`
		UserData string `json:"user_data"`
	}
	require.NoError(t, json.Unmarshal(resp, &signin))
	require.NoError(t, dave.Send(pusher.EventSignin, "", map[string]string{"auth": signin.Auth, "user_data": signin.UserData}))
	harness.Expect(t, dave, "pusher:signin_success", "")
	channel := pusher.PrefixServerToUser + user
	f, err := dave.Subscribe(channel, "", "")
	require.NoError(t, err)
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "%s", f)

	require.NoError(t, n.Pusher.SendToUser(user, "direct", map[string]string{"to": "dave"}))
	ae2eExpectData(t, "direct", channel, `{"to":"dave"}`, dave)
	harness.Flush(t, n, ae2ePublic, dave, other)
	harness.RequireNone(t, other, "direct", "")

	ae2ePost(t, n, ae2eTerminatePath(user), []byte(`{}`)).requireJSON(t, http.StatusOK, `{}`)
	harness.RequireFatal(t, dave, pusher.CodeUnauthorized)
	harness.RequireOpen(t, other)
	ae2eEventuallyConnections(t, n, nil, 1)
}
