package cluster_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
)

// runCache: an event triggered through A on a cache channel nobody
// listens to is replayed to a new subscriber on B, and GET channels/{c}
// on B shows it.
func runCache(t *testing.T, nodes []*node) {
	a, b := nodes[0], nodes[1]
	for _, channel := range []string{"cache-scores", "private-cache-scores"} {
		t.Run(channel, func(t *testing.T) {
			first := dial(t, b)
			subscribe(t, first, channel)
			expect(t, first, pusher.EventCacheMiss, channel)
			require.NoError(t, first.Close())

			require.NoError(t, a.pusher.Trigger(channel, "score", map[string]int{"home": 1}))
			require.NoError(t, a.pusher.Trigger(channel, "score", map[string]int{"home": 2}))

			late := dial(t, b)
			subscribe(t, late, channel)
			f := expect(t, late, "score", channel)
			assert.JSONEq(t, `{"home":2}`, f.Text(), "the last event is replayed on another node")
			assert.Empty(t, take(late, pusher.EventCacheMiss, channel))

			for _, n := range nodes {
				attrs := rawChannel(t, n, channel, "")
				require.Contains(t, attrs, "cache", "GET channels/%s through %s: %v", channel, n, attrs)
				var cached struct {
					Event   string `json:"event"`
					Channel string `json:"channel"`
					Data    string `json:"data"`
				}
				require.NoError(t, json.Unmarshal(attrs["cache"], &cached), "cache attribute: %s", attrs["cache"])
				assert.Equal(t, "score", cached.Event)
				assert.Equal(t, channel, cached.Channel)
				assert.JSONEq(t, `{"home":2}`, cached.Data)
			}
		})
	}
}

// TestCacheAcrossNodes: cache channels keep their last event for the
// whole cluster.
func TestCacheAcrossNodes(t *testing.T) {
	t.Parallel()
	runCache(t, startNodes(t, true, 2, nil))
}

// TestCacheSingleNode is the same scenario on one node without Redis.
func TestCacheSingleNode(t *testing.T) {
	t.Parallel()
	n := startSingle(t, "A", nil)
	runCache(t, []*node{n, n})
}
