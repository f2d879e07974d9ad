package scaling

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
)

const waitFor = 5 * time.Second

// recorder records what a Subscribe callback receives and whether two
// callbacks ever overlapped.
type recorder struct {
	mu      sync.Mutex
	got     []Envelope
	inside  atomic.Int32
	overlap atomic.Bool
}

func (r *recorder) deliver(_ context.Context, e Envelope) {
	if r.inside.Add(1) > 1 {
		r.overlap.Store(true)
	}
	defer r.inside.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, e)
}

func (r *recorder) envelopes() []Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Envelope(nil), r.got...)
}

func (r *recorder) wait(t *testing.T, n int) []Envelope {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.envelopes()) >= n }, waitFor, time.Millisecond,
		"got %d envelopes, want %d", len(r.envelopes()), n)
	return r.envelopes()
}

func numbered(i int) Envelope {
	return Envelope{Kind: "event", AppID: "app-1", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))}
}

// newSubscribedLocal returns a subscribed Local, closed at cleanup.
func newSubscribedLocal(t *testing.T, deliver func(context.Context, Envelope)) *Local {
	t.Helper()
	l := NewLocal(nil)
	require.NoError(t, l.Subscribe(context.Background(), deliver))
	t.Cleanup(func() { require.NoError(t, l.Close()) })
	return l
}

func TestLocalDeliversInPublishOrder(t *testing.T) {
	tests := []struct {
		name string
		give int
	}{
		{name: "one", give: 1},
		{name: "more than the queue holds", give: localQueue + 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			l := newSubscribedLocal(t, rec.deliver)

			for i := range tt.give {
				n, err := l.Publish(context.Background(), numbered(i))
				require.NoError(t, err)
				require.Equal(t, int64(1), n, "a lone node is one receiver")
			}

			got := rec.wait(t, tt.give)
			require.Len(t, got, tt.give)
			for i, e := range got {
				assert.Equal(t, numbered(i).Payload, e.Payload)
				assert.Equal(t, Version, e.V)
				assert.Equal(t, l.Node(), e.Origin)
			}
			assert.False(t, rec.overlap.Load(), "two deliveries ran at once")
		})
	}
}

func TestLocalPublishIsAsynchronous(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	rec := &recorder{}
	l := newSubscribedLocal(t, func(ctx context.Context, e Envelope) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		rec.deliver(ctx, e)
	})

	_, err := l.Publish(context.Background(), numbered(0))
	require.NoError(t, err)
	<-entered
	_, err = l.Publish(context.Background(), numbered(1))
	require.NoError(t, err, "Publish waited for a delivery in progress")
	assert.Empty(t, rec.envelopes())
	require.NoError(t, l.Reply(context.Background(), l.Node(), numbered(2)))
	assert.Equal(t, 2, l.Waiting(), "an event and a reply wait behind the delivery")
	close(release)

	assert.Len(t, rec.wait(t, 3), 3)
	assert.Zero(t, l.Waiting())
}

func TestLocalPublishFromTheDeliveryGoroutine(t *testing.T) {
	// A handler that publishes (a query answered, a presence change) must
	// not re-enter itself on the same stack.
	rec := &recorder{}
	var l *Local
	var depth atomic.Int32
	var reentered atomic.Bool
	l = newSubscribedLocal(t, func(ctx context.Context, e Envelope) {
		if depth.Add(1) > 1 {
			reentered.Store(true)
		}
		defer depth.Add(-1)
		rec.deliver(ctx, e)
		if e.Kind == "first" {
			_, err := l.Publish(ctx, Envelope{Kind: "second"})
			assert.NoError(t, err)
		}
	})

	_, err := l.Publish(context.Background(), Envelope{Kind: "first"})
	require.NoError(t, err)

	got := rec.wait(t, 2)
	assert.Equal(t, "second", got[1].Kind)
	assert.False(t, reentered.Load())
}

func TestLocalClose(t *testing.T) {
	l := NewLocal(nil)
	require.NoError(t, l.Subscribe(context.Background(), func(context.Context, Envelope) {}))

	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "twice")

	_, err := l.Publish(context.Background(), numbered(0))
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, l.Reply(context.Background(), l.Node(), numbered(0)), ErrClosed)
	assert.ErrorIs(t, l.Subscribe(context.Background(), func(context.Context, Envelope) {}), ErrClosed)
}

func TestLocalCloseWithoutSubscribe(t *testing.T) {
	l := NewLocal(nil)
	require.NoError(t, l.Close())
}

func TestLocalSubscribeTwice(t *testing.T) {
	l := newSubscribedLocal(t, func(context.Context, Envelope) {})
	assert.Error(t, l.Subscribe(context.Background(), func(context.Context, Envelope) {}))
}

func TestLocalPublishWaitsForRoom(t *testing.T) {
	tests := []struct {
		name    string
		give    func(l *Local, cancel context.CancelFunc) // what ends the wait
		wantErr error
	}{
		{name: "ctx ends", give: func(_ *Local, cancel context.CancelFunc) { cancel() }, wantErr: context.Canceled},
		{name: "provider closes", give: func(l *Local, _ context.CancelFunc) { _ = l.Close() }, wantErr: ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLocal(nil) // not subscribed: nothing drains the queue
			t.Cleanup(func() { _ = l.Close() })
			for i := range localQueue {
				_, err := l.Publish(context.Background(), numbered(i))
				require.NoError(t, err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := l.Publish(ctx, numbered(-1))
				done <- err
			}()
			assert.Never(t, func() bool { return len(done) > 0 }, 20*time.Millisecond, time.Millisecond,
				"Publish returned while the queue was full")

			tt.give(l, cancel)

			select {
			case err := <-done:
				assert.ErrorIs(t, err, tt.wantErr)
			case <-time.After(waitFor):
				t.Fatal("Publish kept waiting")
			}
		})
	}
}

func TestLocalReply(t *testing.T) {
	rec := &recorder{}
	l := newSubscribedLocal(t, rec.deliver)

	require.NoError(t, l.Reply(context.Background(), l.Node(), Envelope{Kind: "reply", Payload: json.RawMessage(`{}`)}))
	err := l.Reply(context.Background(), "another-node", Envelope{Kind: "reply"})

	assert.Error(t, err)
	got := rec.wait(t, 1)
	assert.Equal(t, Envelope{V: Version, Kind: "reply", Origin: l.Node(), Payload: json.RawMessage(`{}`)}, got[0])
}

func TestLocalReplyNeverWaits(t *testing.T) {
	l := NewLocal(nil) // not subscribed
	t.Cleanup(func() { _ = l.Close() })
	for range localQueue {
		require.NoError(t, l.Reply(context.Background(), l.Node(), Envelope{Kind: "reply"}))
	}

	err := l.Reply(context.Background(), l.Node(), Envelope{Kind: "reply"})

	assert.ErrorIs(t, err, ErrReplyDropped)
}

func TestLocalPing(t *testing.T) {
	l := NewLocal(nil)
	t.Cleanup(func() { _ = l.Close() })
	assert.NoError(t, l.Ping(context.Background()))
}

func TestNewNodeID(t *testing.T) {
	a, b := NewNodeID(), NewNodeID()
	assert.Len(t, a, 16)
	assert.Regexp(t, `^[0-9a-f]{16}$`, a)
	assert.NotEqual(t, a, b)
}
