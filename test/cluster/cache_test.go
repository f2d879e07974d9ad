package cluster_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// runCache: an event triggered through A on a cache channel nobody
// listens to is replayed to a new subscriber on B, and GET channels/{c}
// on B shows it.
func runCache(t *testing.T, nodes []*node) {
	a, b := nodes[0], nodes[1]
	for _, channel := range []string{"cache-scores", "private-cache-scores"} {
		t.Run(channel, func(t *testing.T) {
			first := harness.Dial(t, b)
			harness.Subscribe(t, first, channel)
			harness.Expect(t, first, pusher.EventCacheMiss, channel)
			require.NoError(t, first.Close())

			require.NoError(t, a.pusher.Trigger(channel, "score", map[string]int{"home": 1}))
			require.NoError(t, a.pusher.Trigger(channel, "score", map[string]int{"home": 2}))

			late := harness.Dial(t, b)
			harness.Subscribe(t, late, channel)
			f := harness.Expect(t, late, "score", channel)
			assert.JSONEq(t, `{"home":2}`, f.Text(), "the last event is replayed on another node")
			assert.Empty(t, take(late, pusher.EventCacheMiss, channel))

			for _, n := range nodes {
				attrs := rawChannel(t, n, channel, "")
				require.Contains(t, attrs, "cache", "GET channels/%s through %s: %v", channel, n, attrs)
				cached := pusherclient.DecodeFrame(false, attrs["cache"])
				var data string
				require.NoError(t, json.Unmarshal(cached.Data, &data), "the data of the cache attribute is a JSON string: %s", attrs["cache"])
				assert.Equal(t, "score", cached.Event)
				assert.Equal(t, channel, cached.Channel)
				assert.JSONEq(t, `{"home":2}`, data)
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
