package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// TestStalledConnectionsAreClosed: connections that never finish their
// request (nothing sent, a request line cut short, headers trickled, a
// body that never completes) are closed within the header or body
// deadline, counted, and leave no goroutine behind; a WebSocket that
// finished its handshake is not held to those deadlines. Not parallel, so
// that the goroutine count is the node's.
func TestStalledConnectionsAreClosed(t *testing.T) {
	const header = 300 * time.Millisecond
	n := harness.Start(t, func(c *app.Config) {
		c.Server.HeaderTimeout = header
		c.Server.MaxRequestSize = 8 << 10 // a chunked body has a second more
	})
	ws, err := pusherclient.Connect(n.SocketURL(), pusherclient.Options{})
	require.NoError(t, err)
	defer ws.Close()
	_, err = ws.Subscribe("stalls", "", "")
	require.NoError(t, err)
	// Warm up what an event starts (a pool writer, the HTTP client's
	// connection), so that the baseline holds it.
	require.NoError(t, n.Trigger("stalls", "before", map[string]int{"n": 0}))
	_, err = ws.Expect("before", "stalls", 5*time.Second)
	require.NoError(t, err)
	baseline := goroutines()

	stalls := []struct {
		name  string
		send  string        // sent at once
		drip  string        // then a byte of it every 100 ms
		limit time.Duration // closed by then
	}{
		{name: "nothing sent", limit: header},
		{name: "a request line cut short", send: "GET /app/" + harness.AppKey + "?proto", limit: header},
		{name: "headers a byte at a time", send: "GET /up HTTP/1.1\r\n", drip: "Host: 127.0.0.1\r\nX-Slow: " + strings.Repeat("x", 100), limit: header},
		{name: "a body that never arrives", send: "POST /apps/1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{\"name\":", limit: header + time.Second},
		{name: "chunked without its last chunk", send: "POST /apps/1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", limit: header + time.Second},
	}
	conns := make([]net.Conn, len(stalls))
	closed := make(chan int, len(stalls))
	start := time.Now()
	for i, s := range stalls {
		c, err := net.Dial("tcp", n.Addr)
		require.NoError(t, err)
		conns[i] = c
		defer c.Close()
		_, err = io.WriteString(c, s.send)
		require.NoError(t, err)
		ended := make(chan struct{})
		go func() {
			for _, b := range []byte(s.drip) {
				select {
				case <-ended:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
		}()
		go func() {
			_, _ = io.Copy(io.Discard, c) // until the server closes it
			close(ended)
			closed <- i
		}()
	}
	for range stalls {
		select {
		case i := <-closed:
			took := time.Since(start)
			t.Logf("%s: closed after %s", stalls[i].name, took.Round(time.Millisecond))
			assert.Less(t, took, stalls[i].limit+2*time.Second, "%s: closed in time", stalls[i].name)
		case <-time.After(30 * time.Second):
			require.FailNow(t, "a stalled connection is still open after 30 s")
		}
	}
	assert.Positive(t, n.Metric(t, "fizz_refused_total", "reason", "header_timeout"), "counted")

	// The socket outlived every deadline and still gets events.
	require.NoError(t, n.Trigger("stalls", "after", map[string]int{"n": 1}))
	_, err = ws.Expect("after", "stalls", 5*time.Second)
	require.NoError(t, err, "the WebSocket outlives the handshake deadline")

	// Polled here, not with Eventually, whose own goroutines would count.
	left := goroutines()
	for end := time.Now().Add(10 * time.Second); left > baseline && time.Now().Before(end); left = goroutines() {
		time.Sleep(50 * time.Millisecond)
	}
	assert.LessOrEqual(t, left, baseline, "goroutines back to the baseline")
}

// goroutines counts the process's goroutines but fasthttp's idle workers,
// which it keeps for 10 s after their last request to serve the next.
func goroutines() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "fasthttp.(*workerPool).workerFunc") {
			n++
		}
	}
	return n
}

// TestUnsupportedHTTPVersion: only HTTP/1.0 and 1.1 are served.
func TestUnsupportedHTTPVersion(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	for _, tt := range []struct {
		version string
		want    int
	}{
		{"HTTP/1.1", http.StatusOK},
		{"HTTP/1.0", http.StatusOK},
		{"HTTP/9.9", http.StatusHTTPVersionNotSupported},
		{"HTTP/2.0", http.StatusHTTPVersionNotSupported},
	} {
		c, err := net.Dial("tcp", n.Addr)
		require.NoError(t, err)
		_, err = fmt.Fprintf(c, "GET /up %s\r\nHost: x\r\n\r\n", tt.version)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err, tt.version)
		assert.Equal(t, tt.want, resp.StatusCode, tt.version)
		_ = resp.Body.Close()
		_ = c.Close()
	}
	assert.Positive(t, n.Metric(t, "fizz_refused_total", "reason", "http_version"))
}

// TestInvalidUTF8ClosesWith1007: RFC 6455 fails a socket whose text frame
// is not UTF-8; another socket is untouched.
func TestInvalidUTF8ClosesWith1007(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	bystander, err := pusherclient.Connect(n.SocketURL(), pusherclient.Options{})
	require.NoError(t, err)
	defer bystander.Close()
	c, err := pusherclient.Connect(n.SocketURL(), pusherclient.Options{})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SendText([]byte("{\"event\":\"pusher:ping\",\"data\":\"\xff\xfe\"}")))
	code, _, err := c.WaitClosed(5 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, connection.CloseInvalidData, code)
	assert.NoError(t, bystander.Ping(), "the other socket is served")
}

// TestMaxSocketsRefusesCleanly: past the node's cap a handshake is answered
// 503 (which pusher-js retries with back-off), and a socket closed frees
// its place.
func TestMaxSocketsRefusesCleanly(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) { c.Server.MaxSockets = 3 })
	var clients []*pusherclient.Client
	for range 3 {
		clients = append(clients, harness.Dial(t, n)) // admitted: connection_established came
	}
	_, err := pusherclient.Connect(n.SocketURL(), pusherclient.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")
	assert.Equal(t, 1.0, n.Metric(t, "fizz_refused_total", "reason", "max_sockets"))

	for _, c := range clients {
		harness.RequireOpen(t, c)
	}
	require.NoError(t, clients[0].Close())
	require.Eventually(t, func() bool {
		c, err := pusherclient.Connect(n.SocketURL(), pusherclient.Options{})
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 5*time.Second, 50*time.Millisecond, "a closed socket frees its place")
}

// TestMaxHandshakesRefusesCleanly: with the node's HTTP connections at
// their cap (here held by clients that send nothing), one more is answered
// 503 at once, and the cap frees as the stalled ones are cut.
func TestMaxHandshakesRefusesCleanly(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, func(c *app.Config) {
		c.Server.MaxHandshakes = 2
		c.Server.HeaderTimeout = 500 * time.Millisecond
	})
	for range 2 {
		c, err := net.Dial("tcp", n.Addr)
		require.NoError(t, err)
		defer c.Close()
	}
	time.Sleep(100 * time.Millisecond) // accepted and held
	status := func() int {
		resp, err := n.HTTP.Get(n.HTTPURL + "/up")
		if err != nil {
			return 0
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	// fasthttp answers the connection over the cap at once and closes it,
	// before reading a request: read the answer without sending one, as a
	// request written into the closing connection may be reset.
	over, err := net.Dial("tcp", n.Addr)
	require.NoError(t, err)
	defer over.Close()
	require.NoError(t, over.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(over), nil)
	require.NoError(t, err, "over the cap")
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "over the cap")
	n.HTTP.CloseIdleConnections()
	require.Eventually(t, func() bool { n.HTTP.CloseIdleConnections(); return status() == http.StatusOK },
		5*time.Second, 50*time.Millisecond, "served once the stalled connections are cut")
}

// TestRateLimiting: Reverb's per-socket message limit. Past max_attempts
// in a window every message gets pusher:error 4301 and is dropped (the
// socket stays open), until the window ends; with terminate_on_limit the
// socket is closed. Other sockets are not touched.
func TestRateLimiting(t *testing.T) {
	t.Parallel()
	const decay = time.Second
	for _, terminate := range []bool{false, true} {
		t.Run(fmt.Sprintf("terminate=%v", terminate), func(t *testing.T) {
			t.Parallel()
			n := harness.Start(t, func(c *app.Config) {
				c.Apps[0].RateLimit = apps.RateLimit{Enabled: true, MaxAttempts: 5, Decay: decay, Terminate: terminate}
			})
			bystander := harness.Dial(t, n)
			c := harness.Dial(t, n)
			start := time.Now()
			for range 5 {
				require.NoError(t, c.Ping(), "within the limit")
			}
			require.NoError(t, c.Send("pusher:ping", "", map[string]any{}))
			if terminate {
				harness.RequireFatal(t, c, pusher.CodeClientEventBlocked)
				require.NoError(t, bystander.Ping(), "the other socket is served")
				return
			}
			harness.RequireError(t, c, pusher.CodeClientEventBlocked)
			require.NoError(t, c.Send("pusher:ping", "", map[string]any{}))
			harness.RequireError(t, c, pusher.CodeClientEventBlocked)
			assert.Equal(t, 2.0, n.Metric(t, "fizz_messages_rate_limited_total", "app", n.App.ID))
			require.NoError(t, bystander.Ping(), "the other socket is served")

			time.Sleep(time.Until(start.Add(decay + 100*time.Millisecond)))
			require.NoError(t, c.Ping(), "open, in a new window")
		})
	}
}
