package scaling_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/test/harness"
)

// TestRedisPublishCluster: while the link is down, Publish reaches this
// node alone (ErrLocalOnly) but PublishCluster reaches nobody, so that
// publishing again later reaches each node once; over a live link it
// reaches every node, this one included.
func TestRedisPublishCluster(t *testing.T) {
	rd := harness.StartRedis(t)
	r, err := scaling.NewRedis(scaling.Config{Enabled: true, RedisURL: rd.URL, Channel: "fizz-publish-cluster"}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	var mu sync.Mutex
	var got []string
	delivered := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
	ctx := context.Background()

	// Not subscribed yet: the link is down.
	_, err = r.PublishCluster(ctx, scaling.Envelope{Kind: "cluster-early"})
	require.ErrorIs(t, err, scaling.ErrNotPublished)
	_, err = r.Publish(ctx, scaling.Envelope{Kind: "local"})
	require.ErrorIs(t, err, scaling.ErrLocalOnly)

	require.NoError(t, r.Subscribe(ctx, func(_ context.Context, e scaling.Envelope) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e.Kind+" from "+e.Origin)
	}))
	t.Cleanup(func() { require.NoError(t, r.Close()) })
	require.Eventually(t, r.Up, 10*time.Second, time.Millisecond, "the link comes up")
	n, err := r.PublishCluster(ctx, scaling.Envelope{Kind: "cluster"})
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "this node's subscription")
	require.Eventually(t, func() bool { return len(delivered()) == 2 }, 10*time.Second, time.Millisecond)
	assert.Equal(t, []string{"local from " + r.Node(), "cluster from " + r.Node()}, delivered(),
		"the early envelope reached nobody; each is stamped with this node")
}
