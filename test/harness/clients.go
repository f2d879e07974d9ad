package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// Wait bounds every wait of these helpers for a frame or an event that
// must come. It is generous: a passing test never waits this long, and
// -race on two cores is slow.
const Wait = 10 * time.Second

// Endpoint is a Fizz node as the client helpers see it: where the test
// app's sockets connect, and how an event is triggered through the node's
// HTTP API. *Node is one; a test suite may wrap other kinds of node.
type Endpoint interface {
	// SocketURL returns the WebSocket URL of the test app on the node.
	SocketURL() string
	// Trigger publishes event with data on channel through the node.
	Trigger(channel, event string, data any) error
}

// Dial connects a client to e's test app and waits for
// pusher:connection_established; the socket closes when t ends. It fails
// the test when the handshake fails or the server refuses the socket.
func Dial(t testing.TB, e Endpoint) *pusherclient.Client {
	t.Helper()
	return DialWith(t, e, pusherclient.Options{})
}

// DialWith is Dial with client options; it fails the test as Dial does.
func DialWith(t testing.TB, e Endpoint, o pusherclient.Options) *pusherclient.Client {
	t.Helper()
	c, err := pusherclient.DialWith(e.SocketURL(), o)
	require.NoError(t, err, "dial %s", e.SocketURL())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Connect performs only the WebSocket handshake on url, sending header
// with the upgrade request, for sockets the server refuses; the socket
// closes when t ends. It fails the test when the handshake fails.
func Connect(t testing.TB, url string, header http.Header) *pusherclient.Client {
	t.Helper()
	c, err := pusherclient.Connect(url, pusherclient.Options{Header: header})
	require.NoError(t, err, "connect %s", url)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Expect waits up to Wait for event on channel ("" for any channel) and
// takes it from c's inbox. It fails the test when the frame does not come
// or the socket closes first.
func Expect(t testing.TB, c *pusherclient.Client, event, channel string) pusherclient.Frame {
	t.Helper()
	f, err := c.Expect(event, channel, Wait)
	require.NoError(t, err, "waiting for %s on %q (socket %s)", event, channel, c.SocketID)
	return f
}

// RequireNone fails the test when event on channel ("" for any channel)
// is already in c's inbox. Call it after a barrier (Flush, or c.Ping) that
// proves the frame would have come.
func RequireNone(t testing.TB, c *pusherclient.Client, event, channel string) {
	t.Helper()
	require.NoError(t, c.ExpectNoneOn(event, channel, 0), "socket %s", c.SocketID)
}

// RequireError waits for a pusher:error and returns its message. It fails
// the test when none comes or its code is not code.
func RequireError(t testing.TB, c *pusherclient.Client, code int) string {
	t.Helper()
	f := Expect(t, c, pusher.EventError, "")
	e, err := f.PusherError()
	require.NoError(t, err)
	require.Equal(t, code, e.Code, "pusher:error %s", f)
	return e.Message
}

// RequireClosed waits for the socket to end. It fails the test when it
// does not end within Wait or its close code is not code.
func RequireClosed(t testing.TB, c *pusherclient.Client, code int) {
	t.Helper()
	got, reason, err := c.WaitClosed(Wait)
	require.NoError(t, err, "waiting for close code %d", code)
	require.Equal(t, code, got, "close code (reason %q)", reason)
}

// RequireFatal checks the documented shape of a fatal error: a
// pusher:error with code, then a close frame with the same code. It fails
// the test otherwise.
func RequireFatal(t testing.TB, c *pusherclient.Client, code int) {
	t.Helper()
	RequireError(t, c, code)
	RequireClosed(t, c, code)
}

// RequireOpen proves that the socket still works: pusher:ping gets
// pusher:pong. It fails the test when no pong comes or the socket has
// closed.
func RequireOpen(t testing.TB, c *pusherclient.Client) {
	t.Helper()
	require.NoError(t, c.Ping(), "socket %s should still be open", c.SocketID)
	_, _, closed := c.CloseStatus()
	require.False(t, closed)
}

// Auth returns the auth value a backend of the test app (AppKey,
// AppSecret) gives c for channel and channelData.
func Auth(c *pusherclient.Client, channel, channelData string) string {
	return c.Auth(AppKey, AppSecret, channel, channelData)
}

// Subscribe joins a public, private or encrypted channel, signing with
// the test app's credentials when the channel needs it, and returns the
// subscription_succeeded frame. It fails the test on any other answer.
func Subscribe(t testing.TB, c *pusherclient.Client, channel string) pusherclient.Frame {
	t.Helper()
	a := ""
	if pusher.KindOf(channel).Private {
		a = Auth(c, channel, "")
	}
	f, err := c.Subscribe(channel, a, "")
	require.NoError(t, err)
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "subscribe %s: %s", channel, f)
	return f
}

// PresenceData returns the channel_data of a presence member: user_id id
// (a string, or a number that stays one) and, unless info is nil,
// user_info info. It panics when info cannot be encoded as JSON, a
// mistake in the test itself.
func PresenceData(id, info any) string {
	m := map[string]any{"user_id": id}
	if info != nil {
		m["user_info"] = info
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("harness: channel_data of %v: %v", id, err))
	}
	return string(b)
}

// SubscribePresence subscribes c to a presence channel as user id with
// info (see PresenceData), signed with the test app's credentials, and
// returns the answer, whatever it is. It does not fail the test, so it
// may run on any goroutine.
func SubscribePresence(c *pusherclient.Client, channel string, id, info any) (pusherclient.Frame, error) {
	data := PresenceData(id, info)
	return c.Subscribe(channel, Auth(c, channel, data), data)
}

// JoinPresence is SubscribePresence that fails the test when no answer
// comes; the answer (subscription_succeeded or subscription_error) is the
// caller's to check.
func JoinPresence(t testing.TB, c *pusherclient.Client, channel string, id, info any) pusherclient.Frame {
	t.Helper()
	f, err := SubscribePresence(c, channel, id, info)
	require.NoError(t, err, "join %s as %v", channel, id)
	return f
}

var markers atomic.Int64

// Flush is a barrier: it triggers a marker event on channel through e and
// waits until every client has it. A node delivers events in publish
// order, and so does Redis between nodes, so anything published before
// the marker that was going to reach these clients has reached them by
// then. It fails the test when the trigger fails or a marker does not
// come within Wait.
func Flush(t testing.TB, e Endpoint, channel string, clients ...*pusherclient.Client) {
	t.Helper()
	event := fmt.Sprintf("fizz-test-marker-%d", markers.Add(1))
	require.NoError(t, e.Trigger(channel, event, "marker"), "marker %s on %s through %s", event, channel, e.SocketURL())
	for _, c := range clients {
		Expect(t, c, event, channel)
	}
}

// DialMany opens n sockets on e's test app at once; they close, all at
// once, when t ends. It fails the test when any of them cannot connect.
func DialMany(t testing.TB, e Endpoint, n int) []*pusherclient.Client {
	t.Helper()
	wsURL := e.SocketURL()
	out := make([]*pusherclient.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i], errs[i] = pusherclient.Dial(wsURL) })
	}
	wg.Wait()
	// Closed all at once: one by one, each waiting for the server's
	// answer, they take seconds.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, c := range out {
			if c != nil {
				wg.Go(func() { _ = c.Close() })
			}
		}
		wg.Wait()
	})
	for i := range out {
		require.NoError(t, errs[i], "socket %d on %s", i, wsURL)
	}
	return out
}

// SubscribeAll subscribes every client to a public or private channel at
// once, each waiting for its subscription_succeeded. It fails the test
// when any subscription fails.
func SubscribeAll(t testing.TB, clients []*pusherclient.Client, channel string) {
	t.Helper()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			auth := ""
			if strings.HasPrefix(channel, "private-") {
				auth = Auth(c, channel, "")
			}
			f, err := c.Subscribe(channel, auth, "")
			if err == nil && f.Event != pusher.EventSubscriptionSucceeded {
				err = fmt.Errorf("subscribe %s: %s", channel, f)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "socket %d", i)
	}
}

// Trickle calls leave for each client, in ten waves spread over about two
// seconds (a ticker paces the load; nothing waits on it for order). An
// error from leave fails the test, and the other calls go on.
func Trickle(t testing.TB, clients []*pusherclient.Client, leave func(int, *pusherclient.Client) error) {
	t.Helper()
	const waves = 10
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	per := (len(clients) + waves - 1) / waves
	for w := 0; w*per < len(clients); w++ {
		if w > 0 {
			<-tick.C
		}
		var wg sync.WaitGroup
		for i := w * per; i < min((w+1)*per, len(clients)); i++ {
			wg.Go(func() { assert.NoError(t, leave(i, clients[i]), "socket %d", i) })
		}
		wg.Wait()
	}
}
