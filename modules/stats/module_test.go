package stats_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// graph is what a module test takes from the app.
type graph struct {
	Stats    *stats.Stats
	Server   *stats.Server
	Registry *connection.Registry
	Observer connection.Observer
	PubSub   scaling.PubSubProvider
}

// start runs stats.Module with the modules it reads from, as app.Options
// composes them.
func start(t *testing.T, cfg stats.Config) *graph {
	t.Helper()
	var g graph
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(
			cfg,
			scaling.Config{},
			[]apps.App{{ID: "1001", Key: "key-1", Secret: "secret", PingInterval: time.Hour}},
			slog.New(slog.DiscardHandler),
		),
		scaling.Module,
		apps.Module,
		connection.Module,
		channels.Module,
		stats.Module,
		fx.Populate(&g.Stats, &g.Server, &g.Registry, &g.Observer, &g.PubSub),
	)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	return &g
}

func TestModuleServesAndObserves(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	g := start(t, stats.Config{Host: "127.0.0.1", Port: port})
	require.Equal(t, ln.Addr().String(), g.Server.Addr())

	// The provider was handed Stats as its Observer, and so was the loop.
	_, err = g.PubSub.Publish(context.Background(), scaling.Envelope{Kind: "nobody-handles-this"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		body := get(t, "http://"+g.Server.Addr()+"/metrics")
		return strings.Contains(body, "\nfizz_pubsub_publishes_total 1\n") &&
			strings.Contains(body, "\nfizz_pubsub_receives_total 1\n") &&
			strings.Contains(body, "\nfizz_connections{app=\"1001\"} 0\n")
	}, 5*time.Second, 10*time.Millisecond)
}

// TestModuleConnectionObserverIsStats: the graph's connection.Observer,
// which the WebSocket handler gives every socket it makes, is Stats.
func TestModuleConnectionObserverIsStats(t *testing.T) {
	g := start(t, stats.Config{Host: "127.0.0.1", Port: 0})
	assert.Empty(t, g.Server.Addr(), "port 0: no listener")
	require.Same(t, g.Stats, g.Observer)

	app := &apps.App{ID: "1001", Key: "key-1", PingInterval: time.Hour}
	server, client := net.Pipe()
	c := connection.New("1.1", app, server, connection.Options{Log: slog.New(slog.DiscardHandler), Observer: g.Observer})
	t.Cleanup(func() {
		g.Registry.Remove(c)
		c.Finish(true)
		_ = client.Close()
		_ = server.Close()
	})
	require.NoError(t, g.Registry.Add(c))
	read := make(chan int, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := client.Read(buf)
		read <- n
	}()
	c.Send([]byte(`{"event":"x"}`))
	n := <-read

	require.Eventually(t, func() bool {
		body := expose(t, g.Stats)
		return strings.Contains(body, "\nfizz_messages_sent_total 1\n") &&
			strings.Contains(body, "\nfizz_bytes_sent_total "+strconv.Itoa(n)+"\n")
	}, 5*time.Second, 10*time.Millisecond)
}

// get fetches url without keeping the connection.
func get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// expose renders s's registry as the /metrics text.
func expose(t *testing.T, s *stats.Stats) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	return rec.Body.String()
}
