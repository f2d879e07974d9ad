package stats

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/server"
)

func TestServerServesMetrics(t *testing.T) {
	s := New()
	s.MessageReceived(42)
	srv := NewServer(Config{Host: "127.0.0.1", Port: freePort(t)}, s, discardLog)
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })

	body := scrape(t, "http://"+srv.Addr()+"/metrics")
	assert.True(t, hasLine(body, "fizz_bytes_received_total 42"), body)
	assert.True(t, hasLine(body, "fizz_messages_received_total 1"))
	assert.True(t, hasLine(body, "go_goroutines "))
	assert.True(t, hasLine(body, "# TYPE fizz_pubsub_publish_seconds histogram"))
}

// TestServerBusyPort: a port the operator set and that is busy stops the
// start with an error naming the setting; the default port gives way to a
// free one, so that several nodes share a host.
func TestServerBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	busy := "127.0.0.1:" + strconv.Itoa(port)

	t.Run("set explicitly", func(t *testing.T) {
		srv := NewServer(Config{Host: "127.0.0.1", Port: port, PortSetting: "FIZZ_METRICS_PORT"}, New(), discardLog)
		err := srv.Start(context.Background())
		var le *server.ListenError
		require.ErrorAs(t, err, &le)
		assert.True(t, le.InUse())
		assert.Equal(t, "FIZZ_METRICS_PORT", le.Setting)
		assert.Equal(t, busy, le.Addr)
		assert.Empty(t, srv.Addr())
		assert.NoError(t, srv.Stop(context.Background()), "stopping a server that never started")
	})
	t.Run("default", func(t *testing.T) {
		srv := NewServer(Config{Host: "127.0.0.1", Port: port}, New(), discardLog)
		require.NoError(t, srv.Start(context.Background()))
		t.Cleanup(func() { require.NoError(t, srv.Stop(context.Background())) })
		require.NotEqual(t, busy, srv.Addr())
		assert.True(t, hasLine(scrape(t, "http://"+srv.Addr()+"/metrics"), "go_goroutines "))
	})
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}
