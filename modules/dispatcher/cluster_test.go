package dispatcher_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/modules/metrics"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/scaling/scalingtest"
)

// node is one Fizz node's domain modules, wired by fx over a Bus.
type node struct {
	Dispatcher *dispatcher.Dispatcher
	Metrics    *metrics.Handler
	Channels   *channels.Manager
	Registry   *connection.Registry
	Apps       *apps.Provider
	PubSub     scaling.PubSubProvider
}

// startNode starts a node whose provider is a new node of bus and whose
// shared state is the bus's.
func startNode(t *testing.T, bus *scalingtest.Bus) *node {
	t.Helper()
	var n node
	provider := bus.Node()
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(
			scaling.Config{Timeout: 2 * time.Second},
			[]apps.App{{ID: "app-1", Key: "key-1", Secret: "secret", PingInterval: time.Hour}},
			discard,
		),
		scaling.Module,
		apps.Module,
		connection.Module,
		channels.Module,
		dispatcher.Module,
		metrics.Module,
		fx.Replace(fx.Annotate(provider, fx.As(new(scaling.PubSubProvider)))),
		fx.Replace(fx.Annotate(bus.State(provider), fx.As(new(scaling.State)))),
		fx.Populate(&n.Dispatcher, &n.Metrics, &n.Channels, &n.Registry, &n.Apps, &n.PubSub),
	)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	return &n
}

// join opens a socket on n and subscribes it to channel, as the
// WebSocket handler would.
func (n *node) join(t *testing.T, id, channel string) (*connection.Conn, *recorder) {
	t.Helper()
	app, err := n.Apps.FindByID("app-1")
	require.NoError(t, err)
	c, rec := newConn(t, id, app, "")
	require.NoError(t, n.Registry.Add(c))
	t.Cleanup(func() {
		n.Channels.Disconnect(c)
		n.Registry.Remove(c)
	})
	n.Channels.Subscribe(c, channel, nil)
	return c, rec
}

func TestClusterEventReachesAnotherNode(t *testing.T) {
	bus := scalingtest.NewBus()
	a, b := startNode(t, bus), startNode(t, bus)
	require.IsType(t, &scalingtest.Provider{}, a.PubSub, "the bus replaced the provider")
	require.NotEqual(t, a.PubSub.Node(), b.PubSub.Node())
	_, recA := a.join(t, "1.1", "news")
	_, recB := b.join(t, "2.1", "news")
	sender, recSender := b.join(t, "2.2", "news")

	err := a.Dispatcher.Dispatch(context.Background(), "app-1",
		dispatcher.Event{Channels: []string{"news"}, Name: "greet", Data: json.RawMessage(`"hi"`)}, sender.ID())
	require.NoError(t, err)

	for name, rec := range map[string]*recorder{"node A": recA, "node B": recB} {
		ev := rec.wait(t, 1)[0].event(t)
		assert.Equal(t, "greet", ev.Event, name)
		assert.Equal(t, "news", ev.Channel, name)
		assert.JSONEq(t, `"hi"`, string(ev.Data), name)
	}
	// The excluded socket lives on node B: a second event, not excluded,
	// is the first thing it gets.
	require.NoError(t, a.Dispatcher.Dispatch(context.Background(), "app-1",
		dispatcher.Event{Channels: []string{"news"}, Name: "marker"}, ""))
	assert.Equal(t, "marker", recSender.wait(t, 1)[0].event(t).Event)
}

func TestClusterGatherCountsEveryNode(t *testing.T) {
	bus := scalingtest.NewBus()
	a, b := startNode(t, bus), startNode(t, bus)
	a.join(t, "1.1", "news")
	b.join(t, "2.1", "news")
	b.join(t, "2.2", "news")
	b.join(t, "2.3", "alerts")

	res, err := a.Metrics.Gather(context.Background(), "app-1", metrics.Query{})

	require.NoError(t, err)
	assert.False(t, res.Partial)
	assert.Equal(t, 2, res.Nodes)
	assert.Equal(t, 4, res.Connections)
	require.Contains(t, res.Channels, "news")
	require.Contains(t, res.Channels, "alerts")
	assert.Equal(t, 3, res.Channels["news"].Subscriptions)
	assert.Equal(t, 1, res.Channels["alerts"].Subscriptions, "a channel only node B has")
}

func TestClusterTerminateReachesAnotherNode(t *testing.T) {
	bus := scalingtest.NewBus()
	a, b := startNode(t, bus), startNode(t, bus)
	app, err := b.Apps.FindByID("app-1")
	require.NoError(t, err)
	c, _ := newConn(t, "2.1", app, "u1")
	b.Channels.AddUser(c)
	t.Cleanup(func() { b.Channels.Disconnect(c) })

	require.NoError(t, a.Dispatcher.Terminate(context.Background(), "app-1", "u1"))

	require.Eventually(t, func() bool { return c.CloseCode() == pusher.CodeUnauthorized }, waitFor, time.Millisecond)
}
