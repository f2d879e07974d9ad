package scaling

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newTestLocalState returns a LocalState over a subscribed Local provider
// whose envelopes rec records.
func newTestLocalState(t *testing.T, rec *recorder) *LocalState {
	t.Helper()
	return NewLocalState(newSubscribedLocal(t, rec.deliver), Config{})
}

func TestLocalStateCache(t *testing.T) {
	tests := []struct {
		name string
		give time.Duration // age of the event when asked
		want bool
	}{
		{name: "fresh", give: 0, want: true},
		{name: "at the TTL", give: CacheTTL, want: true},
		{name: "expired", give: CacheTTL + time.Nanosecond, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			s := newTestLocalState(t, &recorder{})
			s.data.now = func() time.Time { return now }
			require.NoError(t, s.RememberEvent(ctx, "app-1", "cache-news", []byte(`{"old":1}`)))
			require.NoError(t, s.RememberEvent(ctx, "app-1", "cache-news", []byte(`{"event":"e"}`)))

			now = now.Add(tt.give)
			got, ok, err := s.LastEvent(ctx, "app-1", "cache-news")

			require.NoError(t, err)
			assert.Equal(t, tt.want, ok)
			assert.Equal(t, map[bool]string{true: `{"event":"e"}`, false: ""}[tt.want], string(got), "the last event wins")
			_, ok, err = s.LastEvent(ctx, "app-2", "cache-news")
			require.NoError(t, err)
			assert.False(t, ok, "apps do not share cached events")
		})
	}
}

func TestLocalStateCachePrunesExpiredEvents(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newTestLocalState(t, &recorder{})
	s.data.now = func() time.Time { return now }
	require.NoError(t, s.RememberEvent(ctx, "app-1", "cache-old", []byte("{}")))

	now = now.Add(CacheTTL + time.Minute)
	require.NoError(t, s.RememberEvent(ctx, "app-1", "cache-new", []byte("{}")))

	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	assert.Len(t, s.data.cache, 1, "the expired event is dropped")
}

func TestLocalStateConnections(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		give  int // sockets added, half on each of two nodes
		want  int // sockets allowed
	}{
		{name: "no limit", limit: 0, give: 6, want: 6},
		{name: "limit", limit: 3, give: 6, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := newTestLocalState(t, &recorder{})
			nodes := []*LocalState{s, s.ForNode(newSubscribedLocal(t, (&recorder{}).deliver))}

			got := 0
			for i := range tt.give {
				ok, err := nodes[i%2].AddConnection(ctx, "app-1", tt.limit)
				require.NoError(t, err)
				got += map[bool]int{true: 1}[ok]
			}

			assert.Equal(t, tt.want, got, "the limit counts the sockets of every node")
			require.NoError(t, s.RemoveConnection(ctx, "app-1"))
			ok, err := s.AddConnection(ctx, "app-1", tt.limit)
			require.NoError(t, err)
			assert.True(t, ok, "a freed slot can be taken again")
			ok, err = s.AddConnection(ctx, "app-2", tt.limit)
			require.NoError(t, err)
			assert.True(t, ok, "the limit counts per app")
		})
	}
}

// TestLocalStateForgetsEmptyChannels: a channel nobody is subscribed to
// any more takes no memory.
func TestLocalStateForgetsEmptyChannels(t *testing.T) {
	ctx := context.Background()
	s := newTestLocalState(t, &recorder{})
	other := s.ForNode(newSubscribedLocal(t, (&recorder{}).deliver))
	_, _, err := s.JoinPresence(ctx, "app-1", "presence-room", "u1", nil, 0)
	require.NoError(t, err)
	_, _, err = s.JoinPresence(ctx, "app-1", "presence-room", "u1", nil, 0)
	require.NoError(t, err)
	_, err = s.SetSubscriptions(ctx, []ChannelCount{{AppID: "app-1", Channel: "news", Subscriptions: 2}})
	require.NoError(t, err)
	_, err = other.SetSubscriptions(ctx, []ChannelCount{{AppID: "app-1", Channel: "news", Subscriptions: 1}})
	require.NoError(t, err)

	for range 2 {
		_, err = s.LeavePresence(ctx, "app-1", "presence-room", "u1")
		require.NoError(t, err)
	}
	for _, n := range []*LocalState{s, other} {
		_, err = n.SetSubscriptions(ctx, []ChannelCount{{AppID: "app-1", Channel: "news", Subscriptions: 0}})
		require.NoError(t, err)
	}
	_, err = s.SetSubscriptions(ctx, []ChannelCount{{AppID: "app-1", Channel: "never", Subscriptions: 0}})
	require.NoError(t, err)

	s.data.mu.Lock()
	defer s.data.mu.Unlock()
	assert.Empty(t, s.data.channels)
}

// TestLocalStatePublishesMemberTransitions: the member transitions go out
// through the provider of the node that made the change, with their Seq.
func TestLocalStatePublishesMemberTransitions(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	s := newTestLocalState(t, rec)

	_, joined, err := s.JoinPresence(ctx, "app-1", "presence-room", "u1", []byte(`{"n":1}`), 0)
	require.NoError(t, err)
	_, err = s.SetSubscriptions(ctx, []ChannelCount{{AppID: "app-1", Channel: "news", Subscriptions: 1}})
	require.NoError(t, err)
	left, err := s.LeavePresence(ctx, "app-1", "presence-room", "u1")
	require.NoError(t, err)

	got := rec.wait(t, 2)
	require.Len(t, joined, 3)
	require.Len(t, left, 3)
	want := []Envelope{
		{V: Version, Kind: KindPresence, AppID: "app-1", Origin: s.node, Seq: joined[1].Seq,
			Payload: []byte(`{"added":true,"channel":"presence-room","user_id":"u1","user_info":"{\"n\":1}"}`)},
		{V: Version, Kind: KindPresence, AppID: "app-1", Origin: s.node, Seq: left[0].Seq,
			Payload: []byte(`{"channel":"presence-room","user_id":"u1"}`)},
	}
	assert.Equal(t, want, got)
}

func TestLocalStateRecoverHasNothingToDo(t *testing.T) {
	assert.NoError(t, newTestLocalState(t, &recorder{}).Recover(context.Background()))
}

func TestLocalStateRunWaitsForCtx(t *testing.T) {
	s := newTestLocalState(t, &recorder{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Run(ctx, nil, nil)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("Run returned before its ctx ended")
	default:
	}
	cancel()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Run did not return when its ctx ended")
	}
}
