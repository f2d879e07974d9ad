// Package harness starts Fizz nodes for the end-to-end tests: one node per
// call, built from app.Load with a test environment and app.Options, on a
// free port of 127.0.0.1, stopped when the test ends.
//
// It also holds the client helpers both test suites (test and
// test/cluster) use: Dial, Subscribe, Expect, Flush and the Require
// checks wrap a pusherclient.Client with the test's testing.TB, wait at
// most Wait and fail the test when what they wait for does not come.
//
// Start imports app (the composition root), modules/apps, modules/server
// and pusher-http-go. A Node is safe for concurrent use once Start returns;
// its Pusher client too, having no encryption master key.
package harness

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/server"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Test credentials of the node's first app.
const (
	AppID     = "1001"
	AppKey    = "test-key"
	AppSecret = "test-secret"
)

// Node is one running Fizz node.
type Node struct {
	// Config is the configuration the node was started with.
	Config app.Config
	// App is the node's first app, as configured.
	App apps.App
	// Addr is the bound host:port; HTTPURL is "http://" + Addr.
	Addr    string
	HTTPURL string
	// Server is the node's listener.
	Server *server.Server
	// MetricsURL is "http://" and the metrics listener's bound address
	// ("" when its port is 0): /metrics and the console are under it.
	MetricsURL string
	// NodeID is the node's id in the cluster (scaling.PubSubProvider.Node).
	NodeID string
	// Stats is the node's metrics registry.
	Stats *stats.Stats
	// Pusher is a pusher-http-go client for App. It has no encryption
	// master key: see EncryptedPusher.
	Pusher *pusherhttp.Client
	// MasterKey is the 32-byte end-to-end encryption master key that
	// EncryptedPusher encrypts private-encrypted- events with.
	MasterKey []byte
	// HTTP is the plain HTTP client the Pusher clients use.
	HTTP *http.Client

	fx       *fxtest.App
	stopOnce sync.Once
}

// Start starts a node and stops it when t ends. The configuration comes
// from app.Load with FIZZ_SERVER_HOST=127.0.0.1, FIZZ_SERVER_PORT=0 and the
// test app's credentials; mutate (may be nil) then changes it, for example
// an app's limits or a second app. The metrics listener is off and the
// shutdown grace is 0 unless mutate sets them.
func Start(t testing.TB, mutate func(*app.Config)) *Node {
	t.Helper()
	env := map[string]string{
		"FIZZ_SERVER_HOST": "127.0.0.1",
		"FIZZ_SERVER_PORT": "0",
		"FIZZ_APP_ID":      AppID,
		"FIZZ_APP_KEY":     AppKey,
		"FIZZ_APP_SECRET":  AppSecret,
		"FIZZ_LOG_LEVEL":   "debug",
	}
	cfg, err := app.Load(nil, func(k string) string { return env[k] })
	require.NoError(t, err, "app.Load")
	cfg.Metrics.Port = 0
	cfg.Server.ShutdownGrace = 0
	if mutate != nil {
		mutate(&cfg)
	}
	require.NoError(t, cfg.Validate(), "the mutated config")

	n := &Node{Config: cfg, App: cfg.Apps[0]}
	n.HTTP = &http.Client{Timeout: 10 * time.Second}
	var srv *server.Server
	var metrics *stats.Server
	var pubsub scaling.PubSubProvider
	n.fx = fxtest.New(t, app.Options(cfg, LoggerAt(t, logLevel(cfg.Log.Level))), fx.Populate(&srv, &n.Stats, &metrics, &pubsub))
	n.fx.RequireStart()
	t.Cleanup(n.Stop)
	t.Cleanup(n.HTTP.CloseIdleConnections)

	n.Server = srv
	n.Addr = srv.Addr()
	require.NotEmpty(t, n.Addr, "server address after start")
	n.HTTPURL = "http://" + n.Addr
	n.NodeID = pubsub.Node()
	if cfg.Metrics.Port != 0 {
		n.MetricsURL = "http://" + metrics.Addr()
	}
	n.Pusher = n.PusherFor(n.App)
	n.MasterKey = make([]byte, 32)
	_, err = rand.Read(n.MasterKey)
	require.NoError(t, err)
	return n
}

// EncryptedPusher returns a new pusher-http-go client for App that encrypts
// events on private-encrypted- channels with MasterKey. A client with a
// master key caches it on first use without a lock, so each goroutine
// needs its own: call this once per use.
func (n *Node) EncryptedPusher() *pusherhttp.Client {
	c := n.PusherFor(n.App)
	c.EncryptionMasterKeyBase64 = base64.StdEncoding.EncodeToString(n.MasterKey)
	return c
}

// SocketURL returns the WebSocket URL of App: WSURL(App.Key). With Trigger
// it makes the node an Endpoint.
func (n *Node) SocketURL() string { return n.WSURL(n.App.Key) }

// Trigger publishes an event through the HTTP API with pusher-http-go, as
// App; on private-encrypted- channels it encrypts the data with MasterKey
// (see EncryptedPusher).
func (n *Node) Trigger(channel, event string, data any) error {
	c := n.Pusher
	if pusher.KindOf(channel).Encrypted {
		c = n.EncryptedPusher()
	}
	return c.Trigger(channel, event, data)
}

// Stop stops the node (sockets get 4200); later calls do nothing.
func (n *Node) Stop() {
	n.stopOnce.Do(n.fx.RequireStop)
}

// WSURL returns the WebSocket URL for an app key, with protocol 7 and the
// client query parameters pusher-js sends.
func (n *Node) WSURL(key string) string {
	return n.WSURLProtocol(key, "7")
}

// WSURLProtocol is WSURL with another protocol value.
func (n *Node) WSURLProtocol(key, protocol string) string {
	return "ws://" + n.Addr + n.Config.Server.Path + "/app/" + key +
		"?protocol=" + protocol + "&client=js&version=8.4.0&flash=false"
}

// PusherFor returns a pusher-http-go client for a, over plain HTTP.
func (n *Node) PusherFor(a apps.App) *pusherhttp.Client {
	return &pusherhttp.Client{
		AppID:      a.ID,
		Key:        a.Key,
		Secret:     a.Secret,
		Host:       n.Addr + n.Config.Server.Path,
		Secure:     false,
		HTTPClient: n.HTTP,
	}
}

// Logger returns a debug-level logger that writes to t.Log until the test
// has finished, and nowhere afterwards (t.Log then panics). fx's own
// events (component=fx) are left out: they are many and say little here.
func Logger(t testing.TB) *slog.Logger { return LoggerAt(t, slog.LevelDebug) }

// LoggerAt is Logger at another level: benchmarks log at info, so that
// debug lines do not weigh on what they measure.
func LoggerAt(t testing.TB, level slog.Level) *slog.Logger {
	w := &testWriter{t: t}
	// Registered first, so it runs last: after the node has stopped.
	t.Cleanup(w.stop)
	return slog.New(quietFx{slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})})
}

// logLevel returns the level of a configured FIZZ_LOG_LEVEL (debug
// unless it says otherwise).
func logLevel(name string) slog.Level {
	var l slog.Level
	if name == "" || l.UnmarshalText([]byte(name)) != nil {
		return slog.LevelDebug
	}
	return l
}

// quietFx drops the records of loggers tagged component=fx.
type quietFx struct{ slog.Handler }

func (h quietFx) WithAttrs(attrs []slog.Attr) slog.Handler {
	for _, a := range attrs {
		if a.Key == "component" && a.Value.String() == "fx" {
			return slog.DiscardHandler
		}
	}
	return quietFx{h.Handler.WithAttrs(attrs)}
}

func (h quietFx) WithGroup(name string) slog.Handler { return quietFx{h.Handler.WithGroup(name)} }

// testWriter forwards log lines to t.Log.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return io.Discard.Write(p)
	}
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
