package membership_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
	"github.com/fizz-server/fizz/modules/membership"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/scaling/scalingtest"
)

// meanwhile runs do, what other sockets do while a socket waits for its
// list (from a state hook), on the node of p. What was published before
// reaches the node first; what do publishes reaches it before the list is
// read, or, when held, only once the test calls p.Release.
func meanwhile(t *testing.T, p *scalingtest.Provider, held bool, do func()) {
	t.Helper()
	flush(t, p)
	if held {
		p.Hold()
	}
	do()
	if !held {
		flush(t, p)
	}
}

// flush waits until everything published so far has reached p's node.
func flush(t *testing.T, p *scalingtest.Provider) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, p.Flush(ctx))
}

// hookedState is a State that runs a hook once, at the start of the next
// JoinPresence: after the socket was registered on the channel and before
// the shared state changed and read its member list, the window of the
// race.
type hookedState struct {
	scaling.State
	mu   sync.Mutex
	hook func()
}

func (s *hookedState) JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (scaling.Snapshot, []scaling.Transition, error) {
	s.mu.Lock()
	hook := s.hook
	s.hook = nil
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	return s.State.JoinPresence(ctx, appID, channel, userID, info, maxMembers)
}

func (s *hookedState) setHook(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = f
}

// raceNode is one node's membership, wired by hand around a node of a
// scalingtest.Bus, which the test holds to decide when another node's
// member event reaches this node, and a hookedState.
type raceNode struct {
	app        *apps.App
	manager    *channels.Manager
	pubsub     *scalingtest.Provider
	state      *hookedState
	membership *membership.Membership
	sockets    map[string]*raceSocket // by user
	nextConn   int
}

// raceSocket is one user's socket on the presence channel.
type raceSocket struct {
	user string
	conn *connection.Conn
	rec  *connectiontest.Recorder
	left bool
}

func newRaceNode(t *testing.T) *raceNode {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	app := (&apps.App{ID: "race", Key: "race-key", Secret: "race-secret", PingInterval: time.Hour}).WithDefaults()
	manager := channels.NewManager()
	bus := scalingtest.NewBus()
	pubsub := bus.Node()
	state := &hookedState{State: bus.State(pubsub)}
	m := running(t, manager, connection.NewRegistry(), state)
	router, err := scaling.NewRouter([]scaling.Handler{m}, log)
	require.NoError(t, err)
	require.NoError(t, pubsub.Subscribe(context.Background(), router.Deliver))
	t.Cleanup(func() { require.NoError(t, pubsub.Close()) })
	return &raceNode{app: &app, manager: manager, pubsub: pubsub, state: state, membership: m, sockets: map[string]*raceSocket{}}
}

const raceChannel = "presence-race"

// join opens a socket for user and subscribes it to raceChannel.
func (n *raceNode) join(t *testing.T, user string) {
	t.Helper()
	n.nextConn++
	rec := connectiontest.NewRecorder()
	c := connection.New(fmt.Sprintf("1.%d", n.nextConn), n.app, rec, connection.Options{Log: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { c.Finish(true) })
	n.sockets[user] = &raceSocket{user: user, conn: c, rec: rec}
	require.NoError(t, n.membership.Join(context.Background(), c, raceChannel, &pusher.Member{UserID: user}))
}

// leave unsubscribes user's socket.
func (n *raceNode) leave(t *testing.T, user string) {
	t.Helper()
	s := n.sockets[user]
	s.left = true
	n.membership.Leave(context.Background(), s.conn, raceChannel)
}

// raceAction is a join or a leave of one user.
type raceAction struct {
	user  string
	leave bool
}

// view replays what a socket was sent on the channel and fails the test
// on the first event that does not fit the member list the socket knew:
// a member event before subscription_succeeded, member_added for a member
// it had, member_removed for one it did not have. It returns the final
// member list.
func (s *raceSocket) view(t *testing.T, payloads []string) []string {
	t.Helper()
	var known map[string]bool
	for i, p := range payloads {
		var f struct {
			Event   string `json:"event"`
			Channel string `json:"channel"`
			Data    string `json:"data"`
		}
		require.NoError(t, json.Unmarshal([]byte(p), &f), "frame %q", p)
		where := fmt.Sprintf("socket of %s, frame %d of %q", s.user, i, payloads)
		switch f.Event {
		case pusher.EventSubscriptionSucceeded:
			var d struct {
				Presence struct {
					IDs []string `json:"ids"`
				} `json:"presence"`
			}
			require.NoError(t, json.Unmarshal([]byte(f.Data), &d))
			known = map[string]bool{}
			for _, id := range d.Presence.IDs {
				known[id] = true
			}
		case pusher.EventMemberAdded, pusher.EventMemberRemoved:
			require.NotNil(t, known, "%s: a member event before subscription_succeeded", where)
			var m struct {
				UserID string `json:"user_id"`
			}
			require.NoError(t, json.Unmarshal([]byte(f.Data), &m))
			added := f.Event == pusher.EventMemberAdded
			require.NotEqual(t, added, known[m.UserID], "%s: %s for %s, whose presence the socket knew: %v", where, f.Event, m.UserID, known)
			known[m.UserID] = added
		}
	}
	require.NotNil(t, known, "socket of %s: no subscription_succeeded in %q", s.user, payloads)
	out := []string{}
	for id, in := range known {
		if in {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// TestPresenceJoinRace reproduces the race of a presence subscription:
// another user joins or leaves after the socket was registered on the
// channel and before the shared state took its join and read the member
// list, and that user's member event reaches the socket before or after
// its subscription_succeeded.
// Every socket must see each member once: the list, then only the changes
// the list does not have.
func TestPresenceJoinRace(t *testing.T) {
	tests := []struct {
		name   string
		before []string     // members with a socket before "x" subscribes
		during []raceAction // between x's registration and x's member list
		held   bool         // their events reach the node only after x subscribed
	}{
		{name: "a join announced before the list is read", during: []raceAction{{user: "y"}}},
		{name: "a join announced after the list is read", during: []raceAction{{user: "y"}}, held: true},
		{name: "a leave announced before the list is read", before: []string{"y"}, during: []raceAction{{user: "y", leave: true}}},
		{name: "a leave announced after the list is read", before: []string{"y"}, during: []raceAction{{user: "y", leave: true}}, held: true},
		{
			name:   "joins and leaves announced before the list is read",
			before: []string{"w"},
			during: []raceAction{{user: "y"}, {user: "z"}, {user: "w", leave: true}, {user: "y", leave: true}},
		},
		{
			name:   "joins and leaves announced after the list is read",
			before: []string{"w"},
			during: []raceAction{{user: "y"}, {user: "z"}, {user: "w", leave: true}, {user: "y", leave: true}},
			held:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			n := newRaceNode(t)
			for _, user := range tt.before {
				n.join(t, user)
			}
			n.state.setHook(func() {
				meanwhile(t, n.pubsub, tt.held, func() {
					for _, a := range tt.during {
						if a.leave {
							n.leave(t, a.user)
						} else {
							n.join(t, a.user)
						}
					}
				})
			})

			n.join(t, "x")
			n.pubsub.Release()
			flush(t, n.pubsub)

			snap, err := n.state.PresenceMembers(ctx, n.app.ID, raceChannel)
			require.NoError(t, err)
			want := slices.Sorted(maps.Keys(snap.Members))
			// A marker to every socket: once it arrives, nothing else will.
			marker := `{"event":"marker","channel":"` + raceChannel + `"}`
			n.manager.Broadcast(n.app.ID, raceChannel, connection.TextFrame([]byte(marker)), "", nil)
			for _, s := range n.sockets {
				if s.left {
					continue
				}
				require.Eventually(t, func() bool { return slices.Contains(s.rec.Payloads(), marker) }, 5*time.Second, time.Millisecond)
				assert.Equal(t, want, s.view(t, s.rec.Payloads()), "the final view of %s's socket", s.user)
			}
		})
	}
}
