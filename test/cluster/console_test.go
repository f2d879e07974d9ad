package cluster_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/test/harness"
)

// TestClusterConsole: a console on node A shows what node B saw (a client
// on B connecting, subscribing, its client event, an API event triggered
// through B, the disconnect), each marked with B's node id, and its counts
// are the cluster's. B has no console of its own: it emits only because it
// heard A's watch announcement.
func TestClusterConsole(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	port := harness.FreePort(t)
	a := c.start(t, "A", func(cfg *app.Config) { cfg.Metrics.Host, cfg.Metrics.Port = "127.0.0.1", port })
	b := c.start(t, "B", nil)
	waitUp(t, a, b)
	require.NotEqual(t, a.inproc.NodeID, b.inproc.NodeID)
	feed := harness.Watch(t, a.inproc.MetricsURL, harness.AppID, nil)

	// B emits once A's announcement reached it through Redis.
	fromB := func(typ string) func(console.Event) bool {
		return func(e console.Event) bool { return e.Type == typ && e.Node == b.inproc.NodeID }
	}
	eventually(t, wait, "B's events on A's console", func() (bool, string) {
		require.NoError(t, b.Trigger("probe", "probe", "x"))
		return slices.ContainsFunc(feed.Events(), fromB(console.TypeAPIEvent)), "no api_event from B yet"
	})

	cl := harness.Dial(t, b)
	mine := func(typ string) func(console.Event) bool {
		return func(e console.Event) bool { return fromB(typ)(e) && e.Socket == cl.SocketID }
	}
	feed.WaitFor(t, "B's connect", mine(console.TypeConnect))
	harness.Subscribe(t, cl, "private-b")
	sub := feed.WaitFor(t, "B's subscribe", mine(console.TypeSubscribe))
	assert.Equal(t, "private-b", sub.Channel)
	require.NoError(t, cl.Trigger("client-hi", "private-b", map[string]any{"n": 1}))
	feed.WaitFor(t, "B's client event", mine(console.TypeClientEvent))
	require.NoError(t, b.Trigger("private-b", "from-b", map[string]any{"n": 2}))
	feed.WaitFor(t, "the API event through B", func(e console.Event) bool {
		return fromB(console.TypeAPIEvent)(e) && e.Event == "from-b" && e.Channel == "private-b"
	})

	// A's counts are the cluster's: B's socket and channel.
	var stats struct {
		Connections int `json:"connections"`
		Nodes       int `json:"nodes"`
		Channels    []struct {
			Name string `json:"name"`
		} `json:"channels"`
	}
	res, err := a.http.Get(a.inproc.MetricsURL + "/console/stats?app=" + harness.AppID)
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	_ = res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	require.NoError(t, json.Unmarshal(body, &stats))
	assert.Equal(t, 1, stats.Connections, string(body))
	assert.Equal(t, 2, stats.Nodes, string(body))
	require.Len(t, stats.Channels, 1, string(body))
	assert.Equal(t, "private-b", stats.Channels[0].Name)

	require.NoError(t, cl.Close())
	gone := feed.WaitFor(t, "B's disconnect", mine(console.TypeDisconnect))
	assert.Equal(t, 1000, gone.Code)
}
