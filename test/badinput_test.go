package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// maxMessageSize is the small max_message_size the bad-input tests use.
const maxMessageSize = 1000

// paddedPing returns a valid pusher:ping frame of exactly size bytes.
func paddedPing(size int) []byte {
	const head, tail = `{"event":"pusher:ping","data":{"pad":"`, `"}}`
	return []byte(head + strings.Repeat("x", size-len(head)-len(tail)) + tail)
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].MaxMessageSize = maxMessageSize })
	tests := []struct {
		name   string
		give   []byte
		binary bool
	}{
		{name: "not JSON", give: []byte("hello")},
		{name: "empty frame", give: []byte("")},
		{name: "truncated JSON", give: []byte(`{"event":"pusher:ping"`)},
		{name: "JSON array", give: []byte(`[{"event":"pusher:ping"}]`)},
		{name: "JSON string", give: []byte(`"pusher:ping"`)},
		{name: "JSON null", give: []byte(`null`)},
		{name: "empty object", give: []byte(`{}`)},
		{name: "event is a number", give: []byte(`{"event":42}`)},
		{name: "event is an object", give: []byte(`{"event":{"name":"pusher:ping"}}`)},
		{name: "channel is a number", give: []byte(`{"event":"client-x","channel":7,"data":{}}`)},
		{name: "subscribe data is a number", give: []byte(`{"event":"pusher:subscribe","data":42}`)},
		{name: "subscribe without a channel", give: []byte(`{"event":"pusher:subscribe","data":{}}`)},
		{name: "subscribe channel is a number", give: []byte(`{"event":"pusher:subscribe","data":{"channel":1}}`)},
		{name: "subscribe auth is an object", give: []byte(`{"event":"pusher:subscribe","data":{"channel":"private-a","auth":{}}}`)},
		{name: "unsubscribe data is an array", give: []byte(`{"event":"pusher:unsubscribe","data":["a"]}`)},
		{name: "unknown pusher event", give: []byte(`{"event":"pusher:teleport","data":{}}`)},
		{name: "unknown event", give: []byte(`{"event":"hello","data":{}}`)},
		{name: "one byte over max_message_size", give: paddedPing(maxMessageSize + 1)},
		{name: "far over max_message_size", give: paddedPing(3 * maxMessageSize)},
		{name: "binary frame", give: []byte(`{"event":"pusher:ping","data":{}}`), binary: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := harness.Dial(t, n)
			send := c.SendText
			if tt.binary {
				send = c.SendBinary
			}
			require.NoError(t, send(tt.give))
			harness.RequireError(t, c, pusher.CodeGeneric)
			harness.RequireOpen(t, c)
			require.NoError(t, c.ExpectNone(pusher.EventError, 0), "one error per bad frame")
		})
	}
	t.Run("a frame of exactly max_message_size is handled", func(t *testing.T) {
		t.Parallel()
		c := harness.Dial(t, n)
		require.NoError(t, c.SendText(paddedPing(maxMessageSize)))
		harness.Expect(t, c, pusher.EventPong, "")
		require.NoError(t, c.ExpectNone(pusher.EventError, 0))
	})
}

// badFrames are the malformed frames of the flood tests, used in turn.
var badFrames = [][]byte{
	[]byte("garbage"),
	[]byte(`{"event":42}`),
	[]byte(`{"event":"pusher:subscribe","data":42}`),
	[]byte(`{"event":"nope"}`),
	[]byte(`[1,2,3]`),
}

// floodFrames is how many frames one socket sends in the flood tests.
const floodFrames = 1000

// flood sends floodFrames frames (frames[i % len]) on c as fast as it can
// and returns how many went out before the socket closed, if it did.
func flood(c *pusherclient.Client, frames [][]byte) int {
	for i := range floodFrames {
		if c.SendText(frames[i%len(frames)]) != nil {
			return i
		}
	}
	return floodFrames
}

// TestMalformedFloodIsolated: one socket sending 1,000 malformed frames does
// not disturb another socket, which receives every event triggered
// meanwhile, in order.
func TestMalformedFloodIsolated(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	const (
		events  = 100
		channel = "flood-news"
	)
	flooder := harness.Dial(t, n)
	reader := harness.Dial(t, n)
	harness.Subscribe(t, reader, channel)

	triggered := make(chan error, 1)
	go func() {
		for i := range events {
			if err := n.Pusher.Trigger(channel, "tick", map[string]int{"i": i}); err != nil {
				triggered <- fmt.Errorf("trigger %d: %w", i, err)
				return
			}
		}
		triggered <- nil
	}()
	sent := flood(flooder, badFrames)
	require.NoError(t, <-triggered)

	for i := range events {
		f := harness.Expect(t, reader, "tick", channel)
		assert.Equal(t, float64(i), decodeText(t, f)["i"], "event %d out of order", i)
	}
	require.NoError(t, reader.ExpectNone(pusher.EventError, 0))
	harness.RequireOpen(t, reader)
	if code, reason, closed := flooder.CloseStatus(); closed {
		t.Logf("the flooder was closed after %d frames with %d %q (see TestPipelinedFramesKeepSocket)", sent, code, reason)
	}
}

// TestPipelinedFramesKeepSocket: a client that reads everything it is
// sent and pipelines 1,000 frames gets 1,000 answers and keeps its socket.
// Each malformed frame on its own gets a pusher:error 4200 and leaves the
// socket open; so must 1,000 of them. The server's answers to a socket's
// own frames must not count as a slow consumer (4100).
func TestPipelinedFramesKeepSocket(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	tests := []struct {
		name   string
		give   [][]byte
		answer string
	}{
		{name: "malformed frames get pusher:error", give: badFrames, answer: pusher.EventError},
		{name: "pusher:ping frames get pusher:pong", give: [][]byte{[]byte(`{"event":"pusher:ping","data":{}}`)}, answer: pusher.EventPong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := harness.Dial(t, n)
			sent := flood(c, tt.give)
			code, reason, _ := c.CloseStatus()
			require.Equal(t, floodFrames, sent, "the server closed the socket with %d %q", code, reason)
			for i := range floodFrames {
				_, err := c.Expect(tt.answer, "", wait)
				require.NoError(t, err, "answer %d of %d", i+1, floodFrames)
			}
			harness.RequireOpen(t, c)
		})
	}
}

// TestSignin covers the non-fatal 4009: a pusher:signin with a bad
// signature is refused and the socket stays open.
func TestSignin(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	c := harness.Dial(t, n)
	userData := `{"id":"42"}`

	require.NoError(t, c.Send(pusher.EventSignin, "", map[string]string{"user_data": userData, "auth": n.App.Key + ":bad"}))
	harness.RequireError(t, c, pusher.CodeUnauthorized)
	harness.RequireOpen(t, c)

	good := n.App.Key + ":" + pusher.Sign(n.App.Secret, pusher.UserAuthMessage(c.SocketID, userData))
	require.NoError(t, c.Send(pusher.EventSignin, "", map[string]string{"user_data": userData, "auth": good}))
	harness.Expect(t, c, "pusher:signin_success", "")
}
