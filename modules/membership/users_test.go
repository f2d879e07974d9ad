package membership_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/membership"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/scaling/scalingtest"
)

var signedIn = []byte(`{"event":"pusher:signin_success","data":"{}"}`)

// watchEvents returns what the watchlist frames rec got say, in order:
// "online a,b" per event, "none" for an empty list.
func watchEvents(t *testing.T, rec interface{ Payloads() []string }) []string {
	t.Helper()
	var out []string
	for _, p := range rec.Payloads() {
		var f struct {
			Event string `json:"event"`
			Data  string `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(p), &f), "frame %q", p)
		if f.Event != membership.EventWatchlist {
			continue
		}
		var d struct {
			Events []struct {
				Name    string   `json:"name"`
				UserIDs []string `json:"user_ids"`
			} `json:"events"`
		}
		require.NoError(t, json.Unmarshal([]byte(f.Data), &d))
		if len(d.Events) == 0 {
			out = append(out, "none")
		}
		for _, e := range d.Events {
			out = append(out, e.Name+" "+strings.Join(e.UserIDs, ","))
		}
	}
	return out
}

// localNode is a Membership over the LocalState of a scalingtest.Bus,
// whose envelopes reach it through its node of the bus (returned).
func localNode(t *testing.T, state func(scaling.State) scaling.State) (*membership.Membership, *scalingtest.Provider) {
	t.Helper()
	bus := scalingtest.NewBus()
	pubsub := bus.Node()
	s := bus.State(pubsub)
	if state != nil {
		s = state(s)
	}
	m := running(t, channels.NewManager(), connection.NewRegistry(), s)
	router, err := scaling.NewRouter([]scaling.Handler{m, m.CountHandler()}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	require.NoError(t, pubsub.Subscribe(context.Background(), router.Deliver))
	t.Cleanup(func() { require.NoError(t, pubsub.Close()) })
	return m, pubsub
}

// TestWatchlist: the watched users online when a socket signs in come in
// its first list, then each one coming online or going offline, once:
// a user is online from their first signed-in socket to their last.
func TestWatchlist(t *testing.T) {
	ctx := context.Background()
	m, pubsub := localNode(t, nil)
	app := testApp()
	conn := func(id string) *connection.Conn { c, _ := newConn(t, id, app); return c }
	early := conn("1.0")
	m.SignIn(ctx, early, "b", nil, signedIn)
	w, rec := newConn(t, "1.1", app)
	m.SignIn(ctx, w, "w", []string{"a", "b"}, signedIn)
	a1, a2 := conn("1.2"), conn("1.3")
	m.SignIn(ctx, a1, "a", nil, signedIn)
	m.SignIn(ctx, a2, "a", nil, signedIn)
	m.SignIn(ctx, conn("1.4"), "c", nil, signedIn) // not watched
	m.Disconnect(ctx, a1)
	m.Disconnect(ctx, a2)
	m.Disconnect(ctx, early)
	flush(t, pubsub)

	require.Eventually(t, func() bool { return len(watchEvents(t, rec)) == 4 }, waitFor, time.Millisecond, "%q", rec.Payloads())
	assert.Equal(t, []string{"online b", "online a", "offline a", "offline b"}, watchEvents(t, rec))
	assert.Contains(t, rec.Payloads()[0], "pusher:signin_success", "the sign-in is answered first")
}

// onlineHookState runs a hook once, at the start of the next Online: the
// watcher is registered and waits for its list, which is not read yet.
type onlineHookState struct {
	scaling.State
	mu   sync.Mutex
	hook func()
}

func (s *onlineHookState) Online(ctx context.Context, appID string, users []string) ([]string, uint64, error) {
	s.mu.Lock()
	hook := s.hook
	s.hook = nil
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return s.State.Online(ctx, appID, users)
}

// TestWatchlistRace: a watched user who comes online or goes offline
// between a watcher's sign-in and the reading of its list is told once:
// in the list, or as an event after it, whether the event reaches the
// node before or after the list is read.
func TestWatchlistRace(t *testing.T) {
	tests := []struct {
		name   string
		before []string // watched users online before
		during string   // "+u" or "-u": a user signs in or out meanwhile
		held   bool     // its event reaches the node only after the list
		want   []string
	}{
		{name: "comes online, heard before the list", during: "+a", want: []string{"online a"}},
		{name: "comes online, heard after the list", during: "+a", held: true, want: []string{"online a"}},
		{name: "goes offline, heard before the list", before: []string{"a"}, during: "-a", want: []string{"none"}},
		{name: "goes offline, heard after the list", before: []string{"a"}, during: "-a", held: true, want: []string{"none"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			hooked := &onlineHookState{}
			m, pubsub := localNode(t, func(s scaling.State) scaling.State { hooked.State = s; return hooked })
			app := testApp()
			sockets := map[string]*connection.Conn{}
			for _, u := range tt.before {
				c, _ := newConn(t, "1."+u, app)
				sockets[u] = c
				m.SignIn(ctx, c, u, nil, signedIn)
			}
			hooked.hook = func() {
				meanwhile(t, pubsub, tt.held, func() {
					user := tt.during[1:]
					if tt.during[0] == '+' {
						c, _ := newConn(t, "2."+user, app)
						m.SignIn(ctx, c, user, nil, signedIn)
					} else {
						m.Disconnect(ctx, sockets[user])
					}
				})
			}
			w, rec := newConn(t, "1.w", app)
			m.SignIn(ctx, w, "w", []string{"a", "marker"}, signedIn)
			pubsub.Release()
			m.SignIn(ctx, w, "w", nil, signedIn) // signing in again changes nothing
			// A watched marker after everything: once it is heard, nothing else comes.
			marker, _ := newConn(t, "1.m", app)
			m.SignIn(ctx, marker, "marker", nil, signedIn)
			require.Eventually(t, func() bool {
				events := watchEvents(t, rec)
				return len(events) > 0 && events[len(events)-1] == "online marker"
			}, waitFor, time.Millisecond, "%q", rec.Payloads())
			events := watchEvents(t, rec)
			assert.Equal(t, tt.want, events[:len(events)-1])
		})
	}
}

// TestRequireSignin: with sign-in required, a socket that does not sign
// in within the timeout is closed with 4009; one that does stays.
func TestRequireSignin(t *testing.T) {
	ctx := context.Background()
	m, _ := localNode(t, nil)
	app := testApp()
	app.RequireSignin, app.SigninTimeout = true, 50*time.Millisecond
	late, lateRec := newConn(t, "1.1", app)
	prompt, _ := newConn(t, "1.2", app)
	require.Nil(t, m.Admit(ctx, late))
	require.Nil(t, m.Admit(ctx, prompt))
	m.SignIn(ctx, prompt, "u1", nil, signedIn)

	require.Eventually(t, func() bool { return late.CloseCode() == pusher.CodeUnauthorized }, waitFor, time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(strings.Join(lateRec.Payloads(), ""), `"code":4009`) }, waitFor, time.Millisecond,
		"pusher:error 4009 before the close")
	assert.Never(t, func() bool { return prompt.CloseCode() != 0 }, 3*app.SigninTimeout, time.Millisecond, "the signed-in socket stays")
}

// TestSubscriptionCounts: a channel's counts reach its subscribers at
// most once a second, the latest always, never an older one; a new
// subscriber is told the last count known.
func TestSubscriptionCounts(t *testing.T) {
	ctx := context.Background()
	m, _ := localNode(t, nil)
	app := testApp()
	app.SubscriptionCount = true
	c, rec := newConn(t, "1.1", app)
	require.NoError(t, m.Join(ctx, c, "news", nil))
	h := m.CountHandler()
	count := func(n int, seq uint64) {
		h.Handle(ctx, scaling.Envelope{V: scaling.Version, Kind: scaling.KindCount, AppID: app.ID, Seq: seq,
			Payload: json.RawMessage(fmt.Sprintf(`{"channel":"news","subscription_count":%d}`, n))})
	}
	counts := func() []string {
		var out []string
		for _, p := range rec.Payloads() {
			var f struct {
				Event, Data string
			}
			require.NoError(t, json.Unmarshal([]byte(p), &f))
			if f.Event == membership.EventSubscriptionCount {
				out = append(out, f.Data)
			}
		}
		return out
	}
	start := time.Now()
	count(5, 10)
	count(6, 11)
	count(4, 9) // older than 6: ignored
	count(7, 12)
	require.Eventually(t, func() bool { return len(counts()) == 2 }, waitFor, time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "the second waits a second")
	assert.Equal(t, []string{`{"subscription_count":5}`, `{"subscription_count":7}`}, counts(), "the first at once, then the latest")

	late, lateRec := newConn(t, "1.2", app)
	require.NoError(t, m.Join(ctx, late, "news", nil))
	require.Eventually(t, func() bool { return strings.Contains(strings.Join(lateRec.Payloads(), ""), `count\":7`) }, waitFor, time.Millisecond,
		"a new subscriber is told the count")
}
