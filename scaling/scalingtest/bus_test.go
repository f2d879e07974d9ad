package scalingtest

import (
	"context"
	"encoding/json"
	"errors"
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

// twoNodes returns two subscribed nodes of a new bus and their sinks.
func twoNodes(t *testing.T) (a *Provider, sa *sink, b *Provider, sb *sink) {
	t.Helper()
	bus := NewBus()
	a, sa = subscribed(t, bus)
	b, sb = subscribed(t, bus)
	return a, sa, b, sb
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
	require.Eventually(t, func() bool { return p.Waiting() == 2 }, waitFor, time.Millisecond,
		"two wait behind the one being delivered")
	close(release)

	require.Eventually(t, func() bool { return delivered.Load() == 3 }, waitFor, time.Millisecond)
	assert.Zero(t, p.Waiting())
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

func TestProviderPublishControls(t *testing.T) {
	giveErr := errors.New("no route to redis")
	tests := []struct {
		name        string
		control     func(*Provider)
		wantN       int64
		wantErr     error
		wantSelf    bool // the publisher receives its envelope
		wantOther   bool // the other node receives it
		wantSent    bool // Published lists it
		wantPingErr error
	}{
		{name: "no control", control: func(*Provider) {}, wantN: 2, wantSelf: true, wantOther: true, wantSent: true},
		{name: "failing", control: func(p *Provider) { p.FailPublish(giveErr) }, wantErr: giveErr},
		{
			name: "cut off", control: func(p *Provider) { p.CutOff(scaling.ErrLocalOnly) },
			wantN: 1, wantErr: scaling.ErrLocalOnly, wantSelf: true, wantSent: true, wantPingErr: scaling.ErrLocalOnly,
		},
		{
			name: "failing comes before cut off", control: func(p *Provider) { p.CutOff(scaling.ErrLocalOnly); p.FailPublish(giveErr) },
			wantErr: giveErr, wantPingErr: scaling.ErrLocalOnly,
		},
		{name: "failing undone", control: func(p *Provider) { p.FailPublish(giveErr); p.FailPublish(nil) }, wantN: 2, wantSelf: true, wantOther: true, wantSent: true},
		{name: "link back", control: func(p *Provider) { p.CutOff(scaling.ErrLocalOnly); p.CutOff(nil) }, wantN: 2, wantSelf: true, wantOther: true, wantSent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p, self, other, otherSink := twoNodes(t)
			tt.control(p)

			n, err := p.Publish(ctx, scaling.Envelope{Kind: "event", Payload: payload(1)})

			assert.Equal(t, tt.wantN, n)
			// ErrorIs(nil, nil) holds: no error is wanted.
			assert.ErrorIs(t, err, tt.wantErr)
			assert.ErrorIs(t, p.Ping(ctx), tt.wantPingErr)
			require.NoError(t, p.Flush(ctx))
			require.NoError(t, other.Flush(ctx))
			assert.Equal(t, tt.wantSelf, len(self.envelopes()) == 1, "the publisher got %v", self.envelopes())
			assert.Equal(t, tt.wantOther, len(otherSink.envelopes()) == 1, "the other node got %v", otherSink.envelopes())
			want := []scaling.Envelope{}
			if tt.wantSent {
				want = append(want, scaling.Envelope{V: scaling.Version, Kind: "event", Origin: p.Node(), Payload: payload(1)})
			}
			assert.Equal(t, want, p.Published())
			assert.Empty(t, other.Published())
		})
	}
}

func TestProviderPublishedKeepsOrderWithoutReceivers(t *testing.T) {
	p := NewBus().Node() // never subscribes: no node receives anything
	t.Cleanup(func() { require.NoError(t, p.Close()) })

	for i := range 3 {
		n, err := p.Publish(context.Background(), scaling.Envelope{Kind: "event", AppID: "app-1", SocketID: "1.1", Payload: payload(i)})
		require.NoError(t, err)
		assert.Zero(t, n)
	}

	got := p.Published()
	require.Len(t, got, 3)
	for i, e := range got {
		assert.Equal(t, scaling.Envelope{V: scaling.Version, Kind: "event", AppID: "app-1", Origin: p.Node(), SocketID: "1.1", Payload: payload(i)}, e)
	}
	require.NoError(t, p.Close())
	_, err := p.Publish(context.Background(), scaling.Envelope{Kind: "event"})
	assert.ErrorIs(t, err, scaling.ErrClosed)
	assert.Len(t, p.Published(), 3, "a Publish that failed sent nothing")
}

func TestProviderCutOffReply(t *testing.T) {
	a, sa, b, _ := twoNodes(t)
	a.CutOff(scaling.ErrLocalOnly)
	tests := []struct {
		name    string
		from    *Provider
		to      *Provider
		wantErr error
	}{
		{name: "to itself", from: a, to: a},
		{name: "to another node", from: a, to: b, wantErr: scaling.ErrLocalOnly},
		{name: "from another node", from: b, to: a, wantErr: ErrNoNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.from.Reply(context.Background(), tt.to.Node(), scaling.Envelope{Kind: "reply"})

			assert.ErrorIs(t, err, tt.wantErr) // ErrorIs(nil, nil) holds
		})
	}
	require.NoError(t, a.Flush(context.Background()))
	assert.Len(t, sa.envelopes(), 1, "only its own reply")
}

func TestProviderHoldAndRelease(t *testing.T) {
	tests := []struct {
		name       string
		giveBefore int // published before Hold, delivered
		giveHeld   int // published while held
	}{
		{name: "nothing held", giveBefore: 2},
		{name: "held envelopes", giveHeld: 3},
		{name: "delivered, then held", giveBefore: 2, giveHeld: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			p, s, other, otherSink := twoNodes(t)
			for i := range tt.giveBefore {
				_, err := other.Publish(ctx, scaling.Envelope{Kind: "event", Payload: payload(i)})
				require.NoError(t, err)
			}
			require.NoError(t, p.Flush(ctx))

			p.Hold()
			for i := range tt.giveHeld {
				n, err := other.Publish(ctx, scaling.Envelope{Kind: "event", Payload: payload(tt.giveBefore + i)})
				require.NoError(t, err)
				assert.Equal(t, int64(2), n, "a held node still counts")
			}
			if tt.giveHeld > 0 {
				assert.ErrorIs(t, p.Flush(ctx), ErrHeld)
			} else {
				assert.NoError(t, p.Flush(ctx), "nothing to wait for")
			}
			require.NoError(t, other.Flush(ctx), "holding one node holds no other")
			assert.Len(t, otherSink.envelopes(), tt.giveBefore+tt.giveHeld)
			assert.Len(t, s.envelopes(), tt.giveBefore, "nothing held was delivered")

			p.Release()
			require.NoError(t, p.Flush(ctx))

			got := s.envelopes()
			require.Len(t, got, tt.giveBefore+tt.giveHeld)
			assert.Equal(t, otherSink.envelopes(), got, "in the bus's order")
		})
	}
}

func TestProviderHoldDuringADelivery(t *testing.T) {
	ctx := context.Background()
	p := NewBus().Node()
	entered := make(chan struct{})
	release := make(chan struct{})
	var delivered atomic.Int32
	require.NoError(t, p.Subscribe(ctx, func(context.Context, scaling.Envelope) {
		if delivered.Add(1) == 1 {
			close(entered)
			<-release
		}
	}))
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	for range 2 {
		_, err := p.Publish(ctx, scaling.Envelope{Kind: "event"})
		require.NoError(t, err)
	}
	<-entered

	p.Hold()
	close(release)
	assert.ErrorIs(t, p.Flush(ctx), ErrHeld)
	p.Release()
	require.NoError(t, p.Flush(ctx))

	assert.Equal(t, int32(2), delivered.Load())
}

func TestProviderFlush(t *testing.T) {
	tests := []struct {
		name string
		// give sets up p, whose deliver blocks until unblock is closed,
		// and returns the ctx for Flush and what to do once Flush waits.
		give          func(t *testing.T, p *Provider, unblock chan struct{}) (context.Context, func())
		wantErr       error
		wantDelivered uint64 // when Flush returns nil
	}{
		{
			name: "a node that has not subscribed",
			give: func(*testing.T, *Provider, chan struct{}) (context.Context, func()) {
				return context.Background(), func() {}
			},
		},
		{
			name: "waits for the deliveries",
			give: func(t *testing.T, p *Provider, unblock chan struct{}) (context.Context, func()) {
				subscribeAndPublish(t, p, unblock, 3)
				return context.Background(), func() { close(unblock) }
			},
			wantDelivered: 3,
		},
		{
			name: "ctx ends first",
			give: func(t *testing.T, p *Provider, unblock chan struct{}) (context.Context, func()) {
				subscribeAndPublish(t, p, unblock, 1)
				ctx, cancel := context.WithCancel(context.Background())
				t.Cleanup(func() { close(unblock) })
				return ctx, cancel
			},
			wantErr: context.Canceled,
		},
		{
			name: "the node closes first",
			give: func(t *testing.T, p *Provider, unblock chan struct{}) (context.Context, func()) {
				subscribeAndPublish(t, p, unblock, 2)
				return context.Background(), func() {
					go func() { _ = p.Close() }()
					require.Eventually(t, func() bool { return p.Ping(context.Background()) != nil }, waitFor, time.Millisecond)
					close(unblock)
				}
			},
			wantErr: scaling.ErrClosed,
		},
		{
			name: "the node is held",
			give: func(t *testing.T, p *Provider, unblock chan struct{}) (context.Context, func()) {
				subscribeAndPublish(t, p, unblock, 2)
				t.Cleanup(func() { close(unblock) })
				return context.Background(), p.Hold
			},
			wantErr: ErrHeld,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewBus().Node()
			t.Cleanup(func() { require.NoError(t, p.Close()) })
			unblock := make(chan struct{})
			ctx, then := tt.give(t, p, unblock)

			done := make(chan error, 1)
			go func() { done <- p.Flush(ctx) }()
			then()
			err := <-done

			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				return
			}
			assert.NoError(t, err)
			p.mu.Lock()
			defer p.mu.Unlock()
			assert.Equal(t, tt.wantDelivered, p.delivered)
		})
	}
}

// subscribeAndPublish subscribes p with a deliver that waits for unblock
// and publishes n envelopes through it.
func subscribeAndPublish(t *testing.T, p *Provider, unblock chan struct{}, n int) {
	t.Helper()
	require.NoError(t, p.Subscribe(context.Background(), func(context.Context, scaling.Envelope) { <-unblock }))
	for range n {
		_, err := p.Publish(context.Background(), scaling.Envelope{Kind: "event"})
		require.NoError(t, err)
	}
}
