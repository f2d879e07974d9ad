package stats

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

func TestServerBusyPortFailsStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	srv := NewServer(Config{Host: "127.0.0.1", Port: port}, New(), discardLog)
	err = srv.Start(context.Background())
	require.ErrorContains(t, err, "127.0.0.1:"+strconv.Itoa(port))
	assert.Empty(t, srv.Addr())
	assert.NoError(t, srv.Stop(context.Background()), "stopping a server that never started")
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
