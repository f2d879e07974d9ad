package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// wait bounds every wait for a frame that must come. It is generous: a
// passing test never waits this long, and -race on two cores is slow.
const wait = 10 * time.Second

// dial connects to the node's first app and closes the socket when t ends.
func dial(t testing.TB, n *harness.Node) *pusherclient.Client {
	t.Helper()
	return dialWith(t, n, pusherclient.Options{})
}

// dialWith is dial with client options.
func dialWith(t testing.TB, n *harness.Node, o pusherclient.Options) *pusherclient.Client {
	t.Helper()
	c, err := pusherclient.DialWith(n.WSURL(n.App.Key), o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// connect performs only the handshake, for sockets the server refuses.
func connect(t testing.TB, url string, header http.Header) *pusherclient.Client {
	t.Helper()
	c, err := pusherclient.Connect(url, pusherclient.Options{Header: header})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// expect waits for event on channel ("" for any channel).
func expect(t testing.TB, c *pusherclient.Client, event, channel string) pusherclient.Frame {
	t.Helper()
	f, err := c.Expect(event, channel, wait)
	require.NoError(t, err, "waiting for %s on %q (socket %s)", event, channel, c.SocketID)
	return f
}

// requireNone fails when event on channel is already in c's inbox. Call it
// after a barrier (flush, or c.Ping) that proves the frame would have come.
func requireNone(t testing.TB, c *pusherclient.Client, event, channel string) {
	t.Helper()
	require.NoError(t, c.ExpectNoneOn(event, channel, 0), "socket %s", c.SocketID)
}

// requireError waits for a pusher:error with code and returns its message.
func requireError(t testing.TB, c *pusherclient.Client, code int) string {
	t.Helper()
	f := expect(t, c, pusher.EventError, "")
	e, err := f.PusherError()
	require.NoError(t, err)
	require.Equal(t, code, e.Code, "pusher:error %s", f)
	return e.Message
}

// requireClosed waits for the socket to end and checks its close code.
func requireClosed(t testing.TB, c *pusherclient.Client, code int) {
	t.Helper()
	got, reason, err := c.WaitClosed(wait)
	require.NoError(t, err, "waiting for close code %d", code)
	require.Equal(t, code, got, "close code (reason %q)", reason)
}

// requireFatal checks the documented shape of a fatal error: pusher:error
// with code, then a close frame with the same code.
func requireFatal(t testing.TB, c *pusherclient.Client, code int) {
	t.Helper()
	requireError(t, c, code)
	requireClosed(t, c, code)
}

// requireOpen proves the socket still works: pusher:ping gets pusher:pong.
func requireOpen(t testing.TB, c *pusherclient.Client) {
	t.Helper()
	require.NoError(t, c.Ping(), "socket %s should still be open", c.SocketID)
	_, _, closed := c.CloseStatus()
	require.False(t, closed)
}

// auth signs channel (and channelData) for c with the node's first app.
func auth(n *harness.Node, c *pusherclient.Client, channel, channelData string) string {
	return c.Auth(n.App.Key, n.App.Secret, channel, channelData)
}

// subscribe joins a public, private or encrypted channel (signing when the
// channel needs it) and requires subscription_succeeded.
func subscribe(t testing.TB, n *harness.Node, c *pusherclient.Client, channel string) pusherclient.Frame {
	t.Helper()
	a := ""
	if pusher.KindOf(channel).Private {
		a = auth(n, c, channel, "")
	}
	f, err := c.Subscribe(channel, a, "")
	require.NoError(t, err)
	require.Equal(t, pusher.EventSubscriptionSucceeded, f.Event, "subscribe %s: %s", channel, f)
	return f
}

// presenceData returns channel_data for a user; id may be a string or a number.
func presenceData(t testing.TB, id any, info any) string {
	t.Helper()
	m := map[string]any{"user_id": id}
	if info != nil {
		m["user_info"] = info
	}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return string(b)
}

// joinPresence subscribes c to a presence channel as user id and returns
// the answer (subscription_succeeded or subscription_error).
func joinPresence(t testing.TB, n *harness.Node, c *pusherclient.Client, channel string, id, info any) pusherclient.Frame {
	t.Helper()
	data := presenceData(t, id, info)
	f, err := c.Subscribe(channel, auth(n, c, channel, data), data)
	require.NoError(t, err)
	return f
}

// presenceList is the data of subscription_succeeded on a presence channel.
type presenceList struct {
	Presence struct {
		IDs   []string                   `json:"ids"`
		Hash  map[string]json.RawMessage `json:"hash"`
		Count int                        `json:"count"`
	} `json:"presence"`
}

// trigger sends an event through the HTTP API with pusher-http-go,
// encrypted with the node's master key on private-encrypted- channels.
func trigger(t testing.TB, n *harness.Node, channel, event string, data any) {
	t.Helper()
	c := n.Pusher
	if pusher.KindOf(channel).Encrypted {
		c = n.EncryptedPusher()
	}
	require.NoError(t, c.Trigger(channel, event, data), "trigger %s on %s", event, channel)
}

var markers atomic.Int64

// flush is a barrier: it triggers a marker event on channel through the
// HTTP API and waits until every client has it. Events are delivered in
// publish order, so anything published before the marker that was going to
// reach these clients has reached them by then.
func flush(t testing.TB, n *harness.Node, channel string, clients ...*pusherclient.Client) {
	t.Helper()
	event := fmt.Sprintf("fizz-test-marker-%d", markers.Add(1))
	trigger(t, n, channel, event, "marker")
	for _, c := range clients {
		expect(t, c, event, channel)
	}
}

// unique returns a channel name unique within the test binary.
func unique(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, markers.Add(1))
}

// Frames decode the data of an event as the JSON it was triggered with.
func decodeText(t testing.TB, f pusherclient.Frame) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(f.Text()), &m), "data of %s", f)
	return m
}

// rawField returns the raw JSON of one top-level field of a frame.
func rawField(t testing.TB, raw []byte, field string) json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &m))
	return m[field]
}

// isJSONString reports whether raw is a JSON string.
func isJSONString(raw json.RawMessage) bool {
	return strings.HasPrefix(strings.TrimSpace(string(raw)), `"`)
}
