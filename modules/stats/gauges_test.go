package stats

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/scaling"
)

// node is the state the gauges read: two apps, a Registry and a Manager.
type node struct {
	apps     *apps.Provider
	registry *connection.Registry
	channels *channels.Manager
}

func newNode(t *testing.T) *node {
	t.Helper()
	p, err := apps.NewProvider([]apps.App{
		{ID: "1001", Key: "key-1", Secret: "s1", PingInterval: time.Hour},
		{ID: "1002", Key: "key-2", Secret: "s2", PingInterval: time.Hour},
	})
	require.NoError(t, err)
	return &node{apps: p, registry: connection.NewRegistry(), channels: channels.NewManager()}
}

// join opens a socket of appID and subscribes it to chans.
func (n *node) join(t *testing.T, appID string, chans ...string) {
	t.Helper()
	app, err := n.apps.FindByID(appID)
	require.NoError(t, err)
	server, client := net.Pipe()
	c := connection.New("1."+appID, app, server, connection.Options{Log: discardLog})
	t.Cleanup(func() {
		n.channels.Disconnect(c)
		n.registry.Remove(c)
		c.Finish(true)
		_ = client.Close()
		_ = server.Close()
	})
	require.NoError(t, n.registry.Add(c))
	for _, ch := range chans {
		n.channels.Subscribe(c, ch, nil)
	}
}

// gauges returns the node's gauges with scaling on when link is not nil.
func (n *node) gauges(link scaling.Link) *Gauges {
	return NewGauges(GaugesParams{Apps: n.apps, Registry: n.registry, Channels: n.channels,
		Link: link, Scaling: scaling.Config{Enabled: link != nil}})
}

func TestGaugesReadTheNodeAtScrape(t *testing.T) {
	n := newNode(t)
	s := New()
	require.NoError(t, s.Register(n.gauges(nil)))
	g := s.Gatherer()
	app1, app2 := map[string]string{"app": "1001"}, map[string]string{"app": "1002"}

	assert.Zero(t, mustValue(t, g, "fizz_connections", app1), "every configured app has a series")
	assert.Zero(t, mustValue(t, g, "fizz_channels", app2))

	n.join(t, "1001", "news", "private-a")
	n.join(t, "1001", "news")
	n.join(t, "1002")

	assert.Equal(t, 2.0, mustValue(t, g, "fizz_connections", app1))
	assert.Equal(t, 2.0, mustValue(t, g, "fizz_channels", app1))
	assert.Equal(t, 3.0, mustValue(t, g, "fizz_subscriptions", app1))
	assert.Equal(t, 1.0, mustValue(t, g, "fizz_connections", app2))
	assert.Zero(t, mustValue(t, g, "fizz_subscriptions", app2))

	_, ok := value(t, g, "fizz_redis_link_up", nil)
	assert.False(t, ok, "no Redis link gauge when scaling is off")
}

func TestGaugesReportRedisLink(t *testing.T) {
	tests := []struct {
		name string
		give bool
		want float64
	}{
		{name: "up", give: true, want: 1},
		{name: "down", give: false, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			require.NoError(t, s.Register(newNode(t).gauges(&fakeLink{up: tt.give})))
			assert.Equal(t, tt.want, mustValue(t, s.Gatherer(), "fizz_redis_link_up", nil))
		})
	}
}
