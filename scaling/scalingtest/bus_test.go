package scalingtest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
)

const waitFor = 5 * time.Second

// sink records what one node's Subscribe callback receives.
type sink struct {
	mu      sync.Mutex
	got     []scaling.Envelope
	inside  atomic.Int32 // callbacks running now
	overlap atomic.Bool  // two callbacks ever ran at once
}

func (s *sink) deliver(_ context.Context, e scaling.Envelope) {
	if s.inside.Add(1) > 1 {
		s.overlap.Store(true)
	}
	defer s.inside.Add(-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, e)
}

func (s *sink) envelopes() []scaling.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]scaling.Envelope(nil), s.got...)
}

// wait returns the first n envelopes once they have arrived.
func (s *sink) wait(t *testing.T, n int) []scaling.Envelope {
	t.Helper()
	require.Eventually(t, func() bool { return len(s.envelopes()) >= n }, waitFor, time.Millisecond,
		"got %d envelopes, want %d", len(s.envelopes()), n)
	return s.envelopes()[:n]
}

// subscribed returns a node of bus whose deliveries go to a new sink.
func subscribed(t *testing.T, bus *Bus) (*Provider, *sink) {
	t.Helper()
	p := bus.Node()
	s := &sink{}
	require.NoError(t, p.Subscribe(context.Background(), s.deliver))
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p, s
}

func payload(i int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)) }

func TestBusPublishReachesEverySubscribedNode(t *testing.T) {
	tests := []struct {
		name         string
		give         int // subscribed nodes
		giveIdle     int // nodes that never subscribe
		wantReceived int64
	}{
		{name: "one node", give: 1, wantReceived: 1},
		{name: "three nodes", give: 3, wantReceived: 3},
		{name: "a node that has not subscribed is not counted", give: 2, giveIdle: 1, wantReceived: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bus := NewBus()
			var sinks []*sink
			var publisher *Provider
			for range tt.give {
				p, s := subscribed(t, bus)
				publisher = p
				sinks = append(sinks, s)
			}
			for range tt.giveIdle {
				idle := bus.Node()
				t.Cleanup(func() { _ = idle.Close() })
			}

			n, err := publisher.Publish(context.Background(), scaling.Envelope{Kind: "event", AppID: "app-1", SocketID: "1.1", Payload: payload(1)})

			require.NoError(t, err)
			assert.Equal(t, tt.wantReceived, n)
			for _, s := range sinks {
				got := s.wait(t, 1)[0]
				assert.Equal(t, scaling.Envelope{
					V: scaling.Version, Kind: "event", AppID: "app-1", Origin: publisher.Node(),
					SocketID: "1.1", Payload: payload(1),
				}, got)
			}
		})
	}
}

func TestBusOneGlobalOrder(t *testing.T) {
	bus := NewBus()
	const nodes, perNode = 3, 200
	var providers []*Provider
	var sinks []*sink
	for range nodes {
		p, s := subscribed(t, bus)
		providers = append(providers, p)
		sinks = append(sinks, s)
	}

	var wg sync.WaitGroup
	for i, p := range providers {
		wg.Go(func() {
			for j := range perNode {
				_, err := p.Publish(context.Background(), scaling.Envelope{Kind: "event", Payload: payload(i*perNode + j)})
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()

	first := sinks[0].wait(t, nodes*perNode)
	for i, s := range sinks {
		assert.Equal(t, first, s.wait(t, nodes*perNode), "node %d saw another order", i)
		assert.False(t, s.overlap.Load(), "node %d delivered two envelopes at once", i)
	}
	// Each publisher's own envelopes keep their publish order.
	last := map[string]int{}
	for _, e := range first {
		var p struct{ I int }
		require.NoError(t, json.Unmarshal(e.Payload, &p))
		if prev, ok := last[e.Origin]; ok {
			assert.Greater(t, p.I, prev)
		}
		last[e.Origin] = p.I
	}
}

func TestBusPublishIsAsynchronous(t *testing.T) {
	bus := NewBus()
	p := bus.Node()
	release := make(chan struct{})
	var delivered atomic.Int32
	require.NoError(t, p.Subscribe(context.Background(), func(context.Context, scaling.Envelope) {
		<-release
		delivered.Add(1)
	}))
	t.Cleanup(func() { _ = p.Close() })

	for range 3 {
		_, err := p.Publish(context.Background(), scaling.Envelope{Kind: "event"})
		require.NoError(t, err, "Publish waited for delivery")
	}
	assert.Zero(t, delivered.Load())
	close(release)

	require.Eventually(t, func() bool { return delivered.Load() == 3 }, waitFor, time.Millisecond)
}

func TestBusReply(t *testing.T) {
	bus := NewBus()
	a, sa := subscribed(t, bus)
	b, sb := subscribed(t, bus)
	idle := bus.Node()
	t.Cleanup(func() { _ = idle.Close() })

	require.NoError(t, a.Reply(context.Background(), b.Node(), scaling.Envelope{Kind: "reply", Payload: payload(7)}))
	require.NoError(t, a.Reply(context.Background(), a.Node(), scaling.Envelope{Kind: "reply", Payload: payload(8)}))
	// A marker through the bus: once b has it, b has had everything before it.
	_, err := a.Publish(context.Background(), scaling.Envelope{Kind: "marker"})
	require.NoError(t, err)

	gotB := sb.wait(t, 2)
	assert.Equal(t, "reply", gotB[0].Kind)
	assert.Equal(t, a.Node(), gotB[0].Origin)
	assert.JSONEq(t, `{"i":7}`, string(gotB[0].Payload))
	assert.Equal(t, "marker", gotB[1].Kind, "b got only its own reply")
	gotA := sa.wait(t, 2)
	assert.JSONEq(t, `{"i":8}`, string(gotA[0].Payload))

	tests := []struct {
		name string
		give string
	}{
		{name: "unknown node", give: "nobody"},
		{name: "node that has not subscribed", give: idle.Node()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.ErrorIs(t, a.Reply(context.Background(), tt.give, scaling.Envelope{Kind: "reply"}), ErrNoNode)
		})
	}
}

func TestBusClose(t *testing.T) {
	bus := NewBus()
	a, _ := subscribed(t, bus)
	b := bus.Node()
	require.NoError(t, b.Subscribe(context.Background(), func(context.Context, scaling.Envelope) {}))
	require.NoError(t, b.Ping(context.Background()))

	require.NoError(t, b.Close())
	require.NoError(t, b.Close(), "twice")

	n, err := a.Publish(context.Background(), scaling.Envelope{Kind: "event"})
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "a closed node is off the bus")
	_, err = b.Publish(context.Background(), scaling.Envelope{Kind: "event"})
	assert.ErrorIs(t, err, scaling.ErrClosed)
	assert.ErrorIs(t, b.Reply(context.Background(), a.Node(), scaling.Envelope{Kind: "reply"}), scaling.ErrClosed)
	assert.ErrorIs(t, b.Subscribe(context.Background(), func(context.Context, scaling.Envelope) {}), scaling.ErrClosed)
	assert.ErrorIs(t, b.Ping(context.Background()), scaling.ErrClosed)
	assert.ErrorIs(t, a.Reply(context.Background(), b.Node(), scaling.Envelope{Kind: "reply"}), ErrNoNode)
}

func TestBusCloseDropsQueuedEnvelopes(t *testing.T) {
	bus := NewBus()
	p := bus.Node()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var delivered atomic.Int32
	require.NoError(t, p.Subscribe(context.Background(), func(ctx context.Context, _ scaling.Envelope) {
		delivered.Add(1)
		entered <- struct{}{}
		<-release
	}))
	for range 5 {
		_, err := p.Publish(context.Background(), scaling.Envelope{Kind: "event"})
		require.NoError(t, err)
	}
	<-entered

	closed := make(chan struct{})
	go func() {
		_ = p.Close()
		close(closed)
	}()
	require.Eventually(t, func() bool { return p.Ping(context.Background()) != nil }, waitFor, time.Millisecond)
	close(release)
	<-closed

	assert.Equal(t, int32(1), delivered.Load(), "delivery stops at Close")
}

func TestBusSubscribeTwice(t *testing.T) {
	p, _ := subscribed(t, NewBus())
	assert.Error(t, p.Subscribe(context.Background(), func(context.Context, scaling.Envelope) {}))
}

func TestBusState(t *testing.T) {
	bus := NewBus()
	a, _ := subscribed(t, bus)
	b, _ := subscribed(t, bus)
	ctx := context.Background()

	snap, ts, err := bus.State(a).JoinPresence(ctx, "app-1", "presence-room", "u1", nil, 0)
	require.NoError(t, err)
	assert.Contains(t, snap.Members, "u1")
	assert.Equal(t, scaling.MemberAdded, ts[1].Kind, "occupied, then the member, then the count")
	_, ts, err = bus.State(b).JoinPresence(ctx, "app-1", "presence-room", "u1", nil, 0)
	require.NoError(t, err)
	require.Len(t, ts, 1, "the user is already a member through the other node: only the count changes")
	assert.Equal(t, scaling.SubscriptionCount, ts[0].Kind)
	assert.Equal(t, 2, ts[0].Count)
}
