package scaling

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLocalStatePresence(t *testing.T) {
	type step struct {
		leave bool
		user  string
	}
	tests := []struct {
		name    string
		give    []step
		want    []bool // added (join) or removed (leave), per step
		wantIDs []string
	}{
		{
			name:    "a user's first socket adds, its last removes",
			give:    []step{{user: "u1"}, {user: "u1"}, {leave: true, user: "u1"}, {leave: true, user: "u1"}},
			want:    []bool{true, false, false, true},
			wantIDs: []string{},
		},
		{
			name:    "two users",
			give:    []step{{user: "u1"}, {user: "u2"}, {leave: true, user: "u1"}},
			want:    []bool{true, true, true},
			wantIDs: []string{"u2"},
		},
		{
			name:    "leaving without joining changes nothing",
			give:    []step{{leave: true, user: "u1"}, {user: "u2"}, {leave: true, user: "u1"}},
			want:    []bool{false, true, false},
			wantIDs: []string{"u2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := NewLocalState()
			ops := map[bool]func(user string) (bool, uint64, error){
				false: func(user string) (bool, uint64, error) {
					return s.JoinPresence(ctx, "app-1", "presence-room", user, nil, 0)
				},
				true: func(user string) (bool, uint64, error) {
					return s.LeavePresence(ctx, "app-1", "presence-room", user)
				},
			}

			got := make([]bool, 0, len(tt.give))
			for _, st := range tt.give {
				changed, _, err := ops[st.leave](st.user)
				require.NoError(t, err)
				got = append(got, changed)
			}

			assert.Equal(t, tt.want, got)
			members, _, err := s.PresenceMembers(ctx, "app-1", "presence-room")
			require.NoError(t, err)
			ids := make([]string, 0, len(members))
			for id := range members {
				ids = append(ids, id)
			}
			assert.ElementsMatch(t, tt.wantIDs, ids)
		})
	}
}

func TestLocalStatePresenceInfo(t *testing.T) {
	ctx := context.Background()
	s := NewLocalState()
	_, _, err := s.JoinPresence(ctx, "app-1", "presence-room", "1", json.RawMessage(`{"name":"Ann"}`), 0)
	require.NoError(t, err)
	_, _, err = s.JoinPresence(ctx, "app-1", "presence-room", "2", nil, 0)
	require.NoError(t, err)

	members, _, err := s.PresenceMembers(ctx, "app-1", "presence-room")

	require.NoError(t, err)
	assert.JSONEq(t, `{"name":"Ann"}`, string(members["1"]))
	assert.JSONEq(t, `null`, string(members["2"]))
	other, _, err := s.PresenceMembers(ctx, "app-2", "presence-room")
	require.NoError(t, err)
	assert.Empty(t, other, "apps do not share channels")
}

func TestLocalStatePresenceLimit(t *testing.T) {
	tests := []struct {
		name    string
		give    string // user joining a channel that has u1 and u2
		limit   int
		want    bool
		wantErr error
	}{
		{name: "a new user beyond the limit", give: "u3", limit: 2, wantErr: ErrMembersLimit},
		{name: "a member's second socket when full", give: "u1", limit: 2, want: false},
		{name: "room left", give: "u3", limit: 3, want: true},
		{name: "no limit", give: "u3", limit: 0, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := NewLocalState()
			for _, u := range []string{"u1", "u2"} {
				_, _, err := s.JoinPresence(ctx, "app-1", "presence-room", u, nil, tt.limit)
				require.NoError(t, err)
			}

			added, _, err := s.JoinPresence(ctx, "app-1", "presence-room", tt.give, nil, tt.limit)

			assert.ErrorIs(t, err, tt.wantErr)
			assert.Equal(t, tt.want, added)
		})
	}
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
			s := NewLocalState()
			s.now = func() time.Time { return now }
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
	s := NewLocalState()
	s.now = func() time.Time { return now }
	require.NoError(t, s.RememberEvent(ctx, "app-1", "cache-old", []byte("{}")))

	now = now.Add(CacheTTL + time.Minute)
	require.NoError(t, s.RememberEvent(ctx, "app-1", "cache-new", []byte("{}")))

	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Len(t, s.cache, 1, "the expired event is dropped")
}

func TestLocalStateConnections(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		give  int // sockets added
		want  int // sockets allowed
	}{
		{name: "no limit", limit: 0, give: 5, want: 5},
		{name: "limit", limit: 3, give: 5, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			s := NewLocalState()

			got := 0
			for range tt.give {
				ok, err := s.AddConnection(ctx, "app-1", tt.limit)
				require.NoError(t, err)
				got += map[bool]int{true: 1}[ok]
			}

			assert.Equal(t, tt.want, got)
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

func TestLocalStateRunWaitsForCtx(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		NewLocalState().Run(ctx, nil, nil)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Run did not return when its ctx ended")
	}
}
