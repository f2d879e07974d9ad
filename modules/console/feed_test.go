package console

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/scaling/scalingtest"
)

// wait bounds the waits of these tests for what must happen.
const wait = 10 * time.Second

// node is one feed on a Bus, running until the test ends.
type node struct {
	feed   *Feed
	pubsub *scalingtest.Provider
}

// clock is a settable time for a feed.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func newClock() *clock               { c := &clock{}; c.ns.Store(time.Now().UnixNano()); return c }
func discard() *slog.Logger          { return slog.New(slog.DiscardHandler) }
func (n *node) viewer(t *testing.T, f Filter) *Viewer {
	t.Helper()
	v, err := n.feed.Watch(f)
	require.NoError(t, err)
	t.Cleanup(v.Close)
	return v
}

// startNode starts a feed on bus; clk (may be nil) is its time.
func startNode(t *testing.T, bus *scalingtest.Bus, clk *clock) *node {
	t.Helper()
	p := bus.Node()
	f := NewFeed(p, discard())
	if clk != nil {
		f.now = clk.now
	}
	router, err := scaling.NewRouter([]scaling.Handler{f.WatchHandler(), f.EventsHandler()}, discard())
	require.NoError(t, err)
	require.NoError(t, p.Subscribe(context.Background(), router.Deliver))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { f.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		require.NoError(t, p.Close())
	})
	return &node{feed: f, pubsub: p}
}

// next returns v's next event, failing after wait.
func next(t *testing.T, v *Viewer) Event {
	t.Helper()
	select {
	case e := <-v.Events():
		return e
	case <-time.After(wait):
		t.Fatal("no event for the viewer")
		return Event{}
	}
}

// eventually polls cond until it holds, at most wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, wait, 5*time.Millisecond, what)
}

// TestFeedIdle: nobody watches, so no hook emits and nothing is published.
func TestFeedIdle(t *testing.T) {
	bus := scalingtest.NewBus()
	a := startNode(t, bus, nil)
	assert.False(t, a.feed.Watching())
	var nilFeed *Feed
	assert.False(t, nilFeed.Watching(), "a nil feed never watches")
	nilFeed.Emit(Event{}) // does nothing
	assert.Empty(t, a.pubsub.Published())
}

// TestFeedAcrossNodes: a viewer on A makes B emit (A's announcement), and
// B's events reach A's viewer marked with B's id; once A's viewer is gone,
// B stops emitting after WatchFresh.
func TestFeedAcrossNodes(t *testing.T) {
	bus := scalingtest.NewBus()
	clk := newClock()
	a, b := startNode(t, bus, nil), startNode(t, bus, clk)
	v := a.viewer(t, Filter{App: "app"})
	assert.True(t, a.feed.Watching(), "a node with a viewer emits at once")
	eventually(t, "B hears A's announcement", b.feed.Watching)

	b.feed.Emit(Event{App: "app", Type: TypeConnect, Socket: "1.1"})
	b.feed.Emit(Event{App: "other", Type: TypeConnect, Socket: "1.2"})
	b.feed.Emit(Event{App: "app", Type: TypeSubscribe, Socket: "1.1", Channel: "c"})
	got := []Event{next(t, v), next(t, v)}
	for _, e := range got {
		assert.Equal(t, b.pubsub.Node(), e.Node)
		assert.Equal(t, "app", e.App, "the viewer's app only")
		assert.NotZero(t, e.T)
	}
	assert.Equal(t, TypeConnect, got[0].Type)
	assert.Equal(t, TypeSubscribe, got[1].Type)

	v.Close()
	assert.Equal(t, 0, a.feed.Viewers())
	clk.add(WatchFresh + time.Second)
	b.feed.expire()
	assert.False(t, b.feed.Watching(), "no announcement within WatchFresh")
}

// TestFeedDropsForSlowViewer: a viewer that does not read loses the events
// past its buffer, and is told how many; the sender never waits.
func TestFeedDropsForSlowViewer(t *testing.T) {
	f := NewFeed(scalingtest.NewBus().Node(), discard())
	v, err := f.Watch(Filter{App: "app"})
	require.NoError(t, err)
	defer v.Close()
	events := make([]Event, ViewerBuffer+10)
	for i := range events {
		events[i] = Event{App: "app", Type: TypeAPIEvent}
	}
	f.deliver("n", batch{Events: events, Dropped: 5}, 0)
	assert.Equal(t, int64(11), v.Dropped(), "10 events and the origin's marker past the buffer")
	first := <-v.Events()
	assert.Equal(t, Event{T: first.T, Node: "n", Type: TypeDropped, Count: 5}, first, "the origin's own drops come first")
	assert.Zero(t, v.Dropped(), "reported once")
}

// TestFeedQueueOverflow: past QueueSize, Emit counts instead of waiting,
// and the next batch carries the count.
func TestFeedQueueOverflow(t *testing.T) {
	f := NewFeed(scalingtest.NewBus().Node(), discard())
	for range QueueSize + 3 {
		f.Emit(Event{App: "app"})
	}
	assert.Equal(t, int64(3), f.dropped.Load())
}

// TestFeedViewerBounds: at most MaxViewers per node, none after the stop,
// and the stop closes every viewer.
func TestFeedViewerBounds(t *testing.T) {
	f := NewFeed(scalingtest.NewBus().Node(), discard())
	var vs []*Viewer
	for range MaxViewers {
		v, err := f.Watch(Filter{App: "app"})
		require.NoError(t, err)
		vs = append(vs, v)
	}
	_, err := f.Watch(Filter{App: "app"})
	assert.ErrorIs(t, err, ErrTooManyViewers)
	f.stop()
	for _, v := range vs {
		<-v.Done()
		v.Close() // after the stop: no effect
	}
	_, err = f.Watch(Filter{App: "app"})
	assert.ErrorIs(t, err, ErrStopped)
	assert.False(t, f.Watching())
}

// TestFeedInboxOverflow: the delivery loop never waits for the console:
// past InboxSize received batches, the next ones are counted, and the
// viewers are told how many batches were lost.
func TestFeedInboxOverflow(t *testing.T) {
	f := NewFeed(scalingtest.NewBus().Node(), discard())
	v, err := f.Watch(Filter{App: "app"})
	require.NoError(t, err)
	defer v.Close()
	h := f.EventsHandler()
	payload := []byte(`{"events":[{"node":"n","app":"app","type":"connect"}]}`)
	for range InboxSize + 2 {
		h.Handle(context.Background(), scaling.Envelope{Kind: KindEvents, Origin: "n", Payload: payload})
	}
	f.receive(<-f.inbox)
	marker, first := <-v.Events(), <-v.Events()
	assert.Equal(t, TypeDropped, marker.Type)
	assert.Equal(t, int64(2), marker.Count)
	assert.Equal(t, DetailBatches, marker.Detail)
	assert.Equal(t, Event{Node: "n", App: "app", Type: TypeConnect}, first)
}
