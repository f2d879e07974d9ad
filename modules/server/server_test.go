package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/connection"
)

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.MaxRequestSize == 0 {
		cfg.MaxRequestSize = 1024
	}
	s := New(cfg, connection.NewRegistry(), slog.New(slog.DiscardHandler), nil)
	s.App().Get("/ping", func(c *fiber.Ctx) error { return c.SendString("pong") })
	s.App().Get("/fail", func(*fiber.Ctx) error { return io.ErrUnexpectedEOF })
	return s
}

func stop(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, s.Stop(ctx))
}

func TestServerServesAndStops(t *testing.T) {
	s := newServer(t, Config{})
	assert.Empty(t, s.Addr(), "no address before Start")
	require.NoError(t, s.Start(context.Background()))
	require.NotEmpty(t, s.Addr())

	resp, err := http.Get("http://" + s.Addr() + "/ping")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "pong", string(body))

	// An error that is not a *fiber.Error is a server fault: 500, as JSON.
	resp, err = http.Get("http://" + s.Addr() + "/fail")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.JSONEq(t, `{"error":"internal server error"}`, string(body))

	assert.False(t, s.Draining())
	stop(t, s)
	assert.True(t, s.Draining())
	_, err = net.DialTimeout("tcp", s.Addr(), time.Second)
	assert.Error(t, err, "the port still accepts after Stop")
}

func TestServerBusyPortFailsStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	s := newServer(t, Config{Port: port})
	err = s.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), strconv.Itoa(port))
}

func TestServerStopBeforeStart(t *testing.T) {
	s := newServer(t, Config{})
	stop(t, s)
}

func TestServerBadCertificateFailsStart(t *testing.T) {
	s := newServer(t, Config{TLSCert: "/nonexistent/cert.pem", TLSKey: "/nonexistent/key.pem"})
	err := s.Start(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TLS")
}

// TestServerDrainFreesThePort: a stopping server stops accepting at once,
// so a new one can take the port while it drains for the grace period.
func TestServerDrainFreesThePort(t *testing.T) {
	s := newServer(t, Config{ShutdownGrace: 300 * time.Millisecond})
	require.NoError(t, s.Start(context.Background()))
	stopped := make(chan struct{})
	go func() { stop(t, s); close(stopped) }()
	require.Eventually(t, s.Draining, 5*time.Second, time.Millisecond)
	next := newServer(t, Config{Port: portOf(t, s.Addr())})
	require.NoError(t, next.Start(context.Background()), "the port is free while the old server drains")
	stop(t, next)
	select {
	case <-stopped:
		t.Fatal("the grace period was cut short")
	default:
	}
	<-stopped
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}
