package e2e

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

func TestConnectionEstablished(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].ActivityTimeout = 42 * time.Second })

	a := harness.Dial(t, n)
	b := harness.Dial(t, n)

	socketID := regexp.MustCompile(`^\d+\.\d+$`)
	assert.Regexp(t, socketID, a.SocketID)
	assert.Regexp(t, socketID, b.SocketID)
	assert.NotEqual(t, a.SocketID, b.SocketID)
	assert.Equal(t, 42, a.ActivityTimeout)
}

func TestPings(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	c := harness.Dial(t, n)

	t.Run("pusher:ping gets pusher:pong", func(t *testing.T) {
		require.NoError(t, c.Send(pusher.EventPing, "", map[string]any{}))
		harness.Expect(t, c, pusher.EventPong, "")
	})
	t.Run("WebSocket ping frame gets a pong frame with its payload", func(t *testing.T) {
		require.NoError(t, c.PingFrame([]byte("hello")))
		f := harness.Expect(t, c, pusherclient.EventControlPong, "")
		assert.Equal(t, "hello", string(f.Raw))
	})
}

// TestLiveness runs every liveness case on one node whose app pings after
// two seconds of silence (a pinged client has as long to answer, slack for
// a loaded machine). The sockets are all dialled first, so their timers
// run side by side and the whole test takes about three ping intervals:
// an answering socket must outlive two pong windows.
func TestLiveness(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].PingInterval = 2 * time.Second })
	const cycle = wait // one ping interval plus one pong window, with ample slack

	silentNew := harness.Dial(t, n)
	silentSubscribed := harness.Dial(t, n)
	harness.Subscribe(t, silentSubscribed, "liveness")
	answering := harness.DialWith(t, n, pusherclient.Options{AnswerPings: true})
	harness.Subscribe(t, answering, "liveness")
	controlPong := harness.Dial(t, n)
	require.NoError(t, controlPong.PingFrame(nil)) // the client speaks control frames
	controlSilent := harness.DialWith(t, n, pusherclient.Options{NoControlPong: true})
	require.NoError(t, controlSilent.PingFrame(nil))

	tests := []struct {
		name string
		give *pusherclient.Client
	}{
		{name: "silent socket that never subscribed", give: silentNew},
		{name: "silent subscribed socket", give: silentSubscribed},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is pinged then closed with 4201", func(t *testing.T) {
			_, err := tt.give.Expect(pusher.EventPing, "", cycle)
			require.NoError(t, err)
			_, err = tt.give.ExpectFunc(pusherclient.Match(pusher.EventError, ""), cycle)
			require.NoError(t, err)
			harness.RequireClosed(t, tt.give, pusher.CodePongTimeout)
		})
	}
	t.Run("socket that ignores WebSocket pings is closed with 4201", func(t *testing.T) {
		_, err := controlSilent.Expect(pusherclient.EventControlPing, "", cycle)
		require.NoError(t, err)
		harness.RequireFatal(t, controlSilent, pusher.CodePongTimeout)
	})
	t.Run("socket that answers pusher:ping stays open", func(t *testing.T) {
		for range 3 {
			_, err := answering.Expect(pusher.EventPing, "", cycle)
			require.NoError(t, err)
		}
		harness.RequireOpen(t, answering)
		require.NoError(t, answering.ExpectNone(pusher.EventError, 0))
	})
	t.Run("socket that answers with WebSocket pong frames stays open", func(t *testing.T) {
		for range 3 {
			_, err := controlPong.Expect(pusherclient.EventControlPing, "", cycle)
			require.NoError(t, err)
		}
		harness.RequireOpen(t, controlPong)
		require.NoError(t, controlPong.ExpectNone(pusher.EventError, 0))
	})
}

func TestProtocolVersion(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	tests := []struct {
		give string
		want int // 0: accepted
	}{
		{give: "7"},
		{give: "6"},
		{give: "5"},
		{give: "4", want: pusher.CodeProtocol},
		{give: "8", want: pusher.CodeProtocol},
		{give: "0", want: pusher.CodeProtocol},
		{give: "seven", want: pusher.CodeProtocol},
	}
	for _, tt := range tests {
		t.Run("protocol="+tt.give, func(t *testing.T) {
			t.Parallel()
			c := harness.Connect(t, n.WSURLProtocol(n.App.Key, tt.give), nil)
			if tt.want == 0 {
				harness.Expect(t, c, pusher.EventConnectionEstablished, "")
				harness.RequireOpen(t, c)
				return
			}
			harness.RequireFatal(t, c, tt.want)
			require.NoError(t, c.ExpectNone(pusher.EventConnectionEstablished, 0))
		})
	}
}

func TestUnknownAppKey(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	c := harness.Connect(t, n.WSURL("no-such-key"), nil)
	harness.RequireFatal(t, c, pusher.CodeAppNotFound)
	require.NoError(t, c.ExpectNone(pusher.EventConnectionEstablished, 0))
}

func TestAllowedOrigins(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].AllowedOrigins = []string{"*.example.com"} })
	tests := []struct {
		name string
		give string // the Origin header; "" sends none
		want int    // 0: accepted
	}{
		{name: "subdomain", give: "https://a.example.com"},
		{name: "subdomain with a port", give: "https://a.example.com:8443"},
		{name: "no Origin header (not a browser)", give: ""},
		{name: "other host", give: "https://evil.com", want: pusher.CodeUnauthorized},
		{name: "suffix without the dot", give: "https://evilexample.com", want: pusher.CodeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			header := http.Header{}
			if tt.give != "" {
				header.Set("Origin", tt.give)
			}
			c := harness.Connect(t, n.WSURL(n.App.Key), header)
			if tt.want == 0 {
				harness.Expect(t, c, pusher.EventConnectionEstablished, "")
				harness.RequireOpen(t, c)
				return
			}
			harness.RequireFatal(t, c, tt.want)
			require.NoError(t, c.ExpectNone(pusher.EventConnectionEstablished, 0))
		})
	}
}

func TestMaxConnections(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Apps[0].MaxConnections = 2 })
	first := harness.Dial(t, n)
	harness.Dial(t, n)

	third := harness.Connect(t, n.WSURL(n.App.Key), nil)
	harness.RequireFatal(t, third, pusher.CodeOverQuota)
	require.NoError(t, third.ExpectNone(pusher.EventConnectionEstablished, 0))

	// Once a socket leaves, its place is free again. The server forgets it
	// when its handler ends, a moment after the close handshake.
	require.NoError(t, first.Close())
	require.Eventually(t, func() bool {
		c, err := pusherclient.Dial(n.WSURL(n.App.Key))
		if err != nil {
			return false
		}
		t.Cleanup(func() { _ = c.Close() })
		return true
	}, wait, 20*time.Millisecond, "a fourth socket after one of the two left")
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	idle := harness.Dial(t, n)
	subscribed := harness.Dial(t, n)
	harness.Subscribe(t, subscribed, "news")

	n.Stop()

	for _, c := range []*pusherclient.Client{idle, subscribed} {
		harness.RequireFatal(t, c, pusher.CodeGeneric)
	}
}
