package membership_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
	"github.com/fizz-server/fizz/modules/membership"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

const waitFor = 5 * time.Second

var discard = slog.New(slog.DiscardHandler)

func testApp() *apps.App {
	app := (&apps.App{ID: "app-1", Key: "key-1", Secret: "secret", PingInterval: time.Hour}).WithDefaults()
	return &app
}

// newConn returns a socket of app that records what it is sent.
func newConn(t *testing.T, id string, app *apps.App) (*connection.Conn, *connectiontest.Recorder) {
	t.Helper()
	rec := connectiontest.NewRecorder()
	c := connection.New(id, app, rec, connection.Options{Log: discard})
	t.Cleanup(func() { c.Finish(true) })
	return c, rec
}

// events returns the names of the Pusher events rec was sent, in order.
func events(t *testing.T, rec *connectiontest.Recorder) []string {
	t.Helper()
	var out []string
	for _, p := range rec.Payloads() {
		var f struct {
			Event string `json:"event"`
		}
		require.NoError(t, json.Unmarshal([]byte(p), &f), "frame %q", p)
		out = append(out, f.Event)
	}
	return out
}

// transitions returns how many transitions of kind st counted.
func transitions(t *testing.T, st *stats.Stats, kind scaling.TransitionKind) int {
	t.Helper()
	families, err := st.Gatherer().Gather()
	require.NoError(t, err)
	n := 0
	for _, f := range families {
		if f.GetName() != "fizz_channel_transitions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == string(kind) {
					n += int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return n
}

// running returns a Membership whose Run goes on until the test ends.
func running(t *testing.T, manager *channels.Manager, registry *connection.Registry, state scaling.State) *membership.Membership {
	t.Helper()
	m := membership.New(manager, registry, state, nil, nil, discard)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return m
}

// node is a Membership wired by its module over a loopback provider.
type node struct {
	Membership *membership.Membership
	Channels   *channels.Manager
	Registry   *connection.Registry
	Stats      *stats.Stats
}

func startNode(t *testing.T) *node {
	t.Helper()
	var n node
	app := fxtest.New(t,
		fx.NopLogger,
		fx.Supply(scaling.Config{}, discard, stats.New()),
		scaling.Module,
		connection.Module,
		channels.Module,
		membership.Module,
		fx.Populate(&n.Membership, &n.Channels, &n.Registry, &n.Stats),
	)
	app.RequireStart()
	t.Cleanup(app.RequireStop)
	return &n
}

// TestTransitionsAreDecidedOnce: on one node, sockets join and leave a
// public and a presence channel; each channel is occupied once and
// vacated once, and each member added and removed once, however the
// changes are batched.
func TestTransitionsAreDecidedOnce(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	app := testApp()
	var socks []*connection.Conn
	for i := range 6 {
		c, _ := newConn(t, "1."+string(rune('a'+i)), app)
		socks = append(socks, c)
		require.NoError(t, n.Membership.Join(ctx, c, "news", nil))
		require.NoError(t, n.Membership.Join(ctx, c, "presence-room", &pusher.Member{UserID: []string{"u1", "u2"}[i%2]}))
	}
	for _, c := range socks {
		n.Membership.Disconnect(ctx, c)
	}
	require.Eventually(t, func() bool { return transitions(t, n.Stats, scaling.ChannelVacated) == 2 }, waitFor, time.Millisecond)
	assert.Equal(t, 2, transitions(t, n.Stats, scaling.ChannelOccupied))
	assert.Equal(t, 2, transitions(t, n.Stats, scaling.MemberAdded))
	assert.Equal(t, 2, transitions(t, n.Stats, scaling.MemberRemoved))
	assert.Positive(t, transitions(t, n.Stats, scaling.SubscriptionCount))
	assert.Empty(t, n.Channels.Held(), "every socket left")
}

// TestMemberEventsReachTheOtherMembers: a member's join and leave reach
// the socket already there as member_added and member_removed, and never
// the member's own socket.
func TestMemberEventsReachTheOtherMembers(t *testing.T) {
	n := startNode(t)
	ctx := context.Background()
	app := testApp()
	first, firstRec := newConn(t, "1.1", app)
	second, secondRec := newConn(t, "1.2", app)
	require.NoError(t, n.Membership.Join(ctx, first, "presence-room", &pusher.Member{UserID: "u1"}))
	require.NoError(t, n.Membership.Join(ctx, second, "presence-room", &pusher.Member{UserID: "u2", UserInfo: json.RawMessage(`{"name":"Bo"}`)}))
	n.Membership.Leave(ctx, second, "presence-room")

	require.Eventually(t, func() bool { return len(firstRec.Payloads()) == 3 }, waitFor, time.Millisecond)
	assert.Equal(t, []string{pusher.EventSubscriptionSucceeded, pusher.EventMemberAdded, pusher.EventMemberRemoved}, events(t, firstRec))
	assert.Contains(t, firstRec.Payloads()[1], `{\"user_id\":\"u2\",\"user_info\":{\"name\":\"Bo\"}}`)
	assert.Contains(t, firstRec.Payloads()[2], `{\"user_id\":\"u2\"}`)
	require.Eventually(t, func() bool { return len(secondRec.Payloads()) > 0 }, waitFor, time.Millisecond)
	assert.Equal(t, []string{pusher.EventSubscriptionSucceeded}, events(t, secondRec), "a member does not hear of itself")
	_, subscribed := n.Channels.Subscription(second, "presence-room")
	assert.False(t, subscribed)
}

// TestJoinRefusals: a refused subscription leaves nothing behind.
func TestJoinRefusals(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		state func(scaling.State) scaling.State
		limit int
		want  error
	}{
		{name: "full channel", limit: 1, want: membership.ErrChannelFull},
		{name: "state unreachable", want: membership.ErrUnavailable, state: func(s scaling.State) scaling.State {
			return &flakyState{State: s, fail: errors.New("connection refused"), joins: 1 << 20}
		}},
		{name: "share lost for good", want: membership.ErrUnavailable, state: func(s scaling.State) scaling.State {
			return &flakyState{State: s, fail: scaling.ErrShareLost, joins: 1 << 20}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testApp()
			app.MaxPresenceMembers = tt.limit
			manager := channels.NewManager()
			var state scaling.State = scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{})
			if tt.state != nil {
				state = tt.state(state)
			}
			m := running(t, manager, connection.NewRegistry(), state)
			if tt.limit > 0 {
				other, _ := newConn(t, "1.0", app)
				require.NoError(t, m.Join(ctx, other, "presence-room", &pusher.Member{UserID: "u0"}))
			}
			c, rec := newConn(t, "1.1", app)

			err := m.Join(ctx, c, "presence-room", &pusher.Member{UserID: "u1"})

			require.ErrorIs(t, err, tt.want)
			_, subscribed := manager.Subscription(c, "presence-room")
			assert.False(t, subscribed)
			assert.False(t, c.Subscribed("presence-room"))
			assert.Empty(t, rec.Payloads(), "the handler answers a refusal")
		})
	}
}

func TestJoinRefusesTooManyChannels(t *testing.T) {
	ctx := context.Background()
	m := running(t, channels.NewManager(), connection.NewRegistry(), scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}))
	c, _ := newConn(t, "1.1", testApp())
	for i := range membership.MaxChannelsPerSocket {
		require.NoError(t, m.Join(ctx, c, "news-"+string(rune('a'+i%26))+"-"+time.Duration(i).String(), nil))
	}
	require.ErrorIs(t, m.Join(ctx, c, "one-more", nil), membership.ErrTooManyChannels)
	assert.Equal(t, membership.MaxChannelsPerSocket, c.ChannelCount())
}

// flakyState fails the first joins, leaves and connection counts with
// fail, then delegates; it counts Recover calls.
type flakyState struct {
	scaling.State
	fail                 error
	mu                   sync.Mutex
	joins, leaves, conns int
	removes              int
	recovers             atomic.Int32
	recoverErr           error
	// onLeave runs before each LeavePresence, failed or not.
	onLeave func()
}

func (s *flakyState) failing(n *int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (s *flakyState) JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (scaling.Snapshot, []scaling.Transition, error) {
	if s.failing(&s.joins) {
		return scaling.Snapshot{}, nil, s.fail
	}
	return s.State.JoinPresence(ctx, appID, channel, userID, info, maxMembers)
}

func (s *flakyState) LeavePresence(ctx context.Context, appID, channel, userID string) ([]scaling.Transition, error) {
	if s.onLeave != nil {
		s.onLeave()
	}
	if s.failing(&s.leaves) {
		return nil, s.fail
	}
	return s.State.LeavePresence(ctx, appID, channel, userID)
}

func (s *flakyState) AddConnection(ctx context.Context, appID string, limit int) (bool, error) {
	if s.failing(&s.conns) {
		return false, s.fail
	}
	return s.State.AddConnection(ctx, appID, limit)
}

func (s *flakyState) RemoveConnection(ctx context.Context, appID string) error {
	if s.failing(&s.removes) {
		return s.fail
	}
	return s.State.RemoveConnection(ctx, appID)
}

func (s *flakyState) Recover(context.Context) error {
	s.recovers.Add(1)
	return s.recoverErr
}

// TestChangesRecoverALostShare: an admission or a join that finds the
// shared state lost (scaling.ErrShareLost) has it made whole and is made
// again, once. A leave has the socket out of this node's channels before
// the state hears of it, so it asks for the recovery and is not made
// again: the re-assert writes the share without it.
func TestChangesRecoverALostShare(t *testing.T) {
	ctx := context.Background()
	app := testApp()
	manager := channels.NewManager()
	registry := connection.NewRegistry()
	state := &flakyState{State: scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}), fail: scaling.ErrShareLost, joins: 1, leaves: 1, conns: 1}
	m := running(t, manager, registry, state)
	c, rec := newConn(t, "1.1", app)

	require.Nil(t, m.Admit(ctx, c))
	assert.Equal(t, 1, registry.Count(app.ID), "admitted once")
	assert.Equal(t, int32(1), state.recovers.Load())

	require.NoError(t, m.Join(ctx, c, "presence-room", &pusher.Member{UserID: "u1"}))
	require.Eventually(t, func() bool { return len(rec.Payloads()) > 0 }, waitFor, time.Millisecond)
	assert.Equal(t, []string{pusher.EventSubscriptionSucceeded}, events(t, rec), "one answer")
	assert.Equal(t, int32(2), state.recovers.Load())
	snap, err := state.PresenceMembers(ctx, app.ID, "presence-room")
	require.NoError(t, err)
	assert.Len(t, snap.Members, 1)

	var stillThere []bool
	state.onLeave = func() {
		_, ok := manager.Subscription(c, "presence-room")
		stillThere = append(stillThere, ok)
	}
	m.Leave(ctx, c, "presence-room")
	assert.Equal(t, []bool{false}, stillThere, "out of the node's channels before the state hears of it, and asked once")
	assert.Equal(t, int32(3), state.recovers.Load())
	_, ok := manager.Subscription(c, "presence-room")
	assert.False(t, ok)
}

// TestGivingUpOnALostShare: when the shared state stays lost (Recover
// fails, or it is lost again and again), a leave and a release still take
// the socket out of this node, and the leave is left for the state to
// announce once it is whole.
func TestGivingUpOnALostShare(t *testing.T) {
	tests := []struct {
		name       string
		recoverErr error
		recovers   int32
	}{
		{name: "recover fails", recoverErr: errors.New("the link is down"), recovers: 2},
		{name: "lost again and again", recovers: 4}, // the leave's one, the release's three
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			app := testApp()
			manager := channels.NewManager()
			registry := connection.NewRegistry()
			state := &flakyState{State: scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}), fail: scaling.ErrShareLost, recoverErr: tt.recoverErr}
			m := running(t, manager, registry, state)
			c, _ := newConn(t, "1.1", app)
			require.Nil(t, m.Admit(ctx, c))
			require.NoError(t, m.Join(ctx, c, "presence-room", &pusher.Member{UserID: "u1"}))
			state.mu.Lock()
			state.leaves, state.removes = 1<<20, 1<<20
			state.mu.Unlock()

			m.Disconnect(ctx, c)
			m.Release(ctx, c)

			_, subscribed := manager.Subscription(c, "presence-room")
			assert.False(t, subscribed)
			assert.Empty(t, manager.Held())
			assert.Zero(t, registry.Count(app.ID))
			assert.Equal(t, tt.recovers, state.recovers.Load(), "recoveries asked for by the leave and the release")
		})
	}
}

// TestAdmitWithoutTheSharedState: a socket is admitted when the state
// cannot count it, so that a Redis outage never locks clients out.
func TestAdmitWithoutTheSharedState(t *testing.T) {
	tests := []struct {
		name       string
		fail       error
		recoverErr error
	}{
		{name: "unreachable", fail: errors.New("connection refused")},
		{name: "lost and not recovered", fail: scaling.ErrShareLost, recoverErr: errors.New("the link is down")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			registry := connection.NewRegistry()
			state := &flakyState{State: scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}), fail: tt.fail, conns: 1 << 20, recoverErr: tt.recoverErr}
			m := running(t, channels.NewManager(), registry, state)
			c, _ := newConn(t, "1.1", testApp())

			require.Nil(t, m.Admit(context.Background(), c))
			assert.Equal(t, 1, registry.Count("app-1"))
		})
	}
}

func TestAdmitRefusesOverQuota(t *testing.T) {
	ctx := context.Background()
	app := testApp()
	app.MaxConnections = 1
	registry := connection.NewRegistry()
	m := running(t, channels.NewManager(), registry, scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}))
	first, _ := newConn(t, "1.1", app)
	second, _ := newConn(t, "1.2", app)

	require.Nil(t, m.Admit(ctx, first))
	perr := m.Admit(ctx, second)
	require.NotNil(t, perr)
	assert.Equal(t, pusher.CodeOverQuota, perr.Code)
	assert.Equal(t, 1, registry.Count(app.ID))

	m.Release(ctx, first)
	require.Nil(t, m.Admit(ctx, second), "room again once the first left")
}

// TestWithShare: the share lists what this node holds, and no change of
// it runs while WithShare does.
func TestWithShare(t *testing.T) {
	ctx := context.Background()
	app := testApp()
	manager := channels.NewManager()
	registry := connection.NewRegistry()
	m := running(t, manager, registry, scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}))
	a, _ := newConn(t, "1.1", app)
	b, _ := newConn(t, "1.2", app)
	info := json.RawMessage(`{"name":"Ann"}`)
	for _, c := range []*connection.Conn{a, b} {
		require.Nil(t, m.Admit(ctx, c))
		require.NoError(t, m.Join(ctx, c, "presence-room", &pusher.Member{UserID: "u1", UserInfo: info}))
	}
	require.NoError(t, m.Join(ctx, b, "news", nil))

	var got scaling.Share
	m.WithShare(func(s scaling.Share) { got = s })
	assert.Equal(t, map[string]int{"app-1": 2}, got.Connections)
	assert.Equal(t, []scaling.PresenceShare{{AppID: "app-1", Channel: "presence-room", UserID: "u1", Info: info, Sockets: 2}}, got.Presence)
	require.Len(t, got.Channels, 2)
	counts := map[string]int{}
	for _, ch := range got.Channels {
		counts[ch.Channel] = ch.Subscriptions
	}
	assert.Equal(t, map[string]int{"presence-room": 2, "news": 1}, counts)

	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		m.WithShare(func(scaling.Share) {
			close(entered)
			<-release
		})
	}()
	<-entered
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		_ = m.Join(ctx, a, "later", nil)
	}()
	select {
	case <-joined:
		t.Fatal("a join ran while the share was being re-asserted")
	case <-time.After(30 * time.Millisecond):
	}
	close(release)
	<-done
	<-joined
	assert.True(t, a.Subscribed("later"))
}

// TestHandlePresenceEnvelopes: a member transition becomes member_added
// or member_removed; a malformed one is dropped.
func TestHandlePresenceEnvelopes(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    string // "": nothing is sent
	}{
		{name: "added", payload: `{"added":true,"channel":"presence-room","user_id":"u2","user_info":"{\"a\":1}"}`,
			want: `{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"u2\",\"user_info\":{\"a\":1}}"}`},
		{name: "added without info", payload: `{"added":true,"channel":"presence-room","user_id":"u2","user_info":"null"}`,
			want: `{"event":"pusher_internal:member_added","channel":"presence-room","data":"{\"user_id\":\"u2\",\"user_info\":null}"}`},
		{name: "removed", payload: `{"channel":"presence-room","user_id":"u2"}`,
			want: `{"event":"pusher_internal:member_removed","channel":"presence-room","data":"{\"user_id\":\"u2\"}"}`},
		{name: "not JSON", payload: `{"channel":`},
		{name: "no user", payload: `{"channel":"presence-room"}`},
		{name: "user_info not JSON", payload: `{"added":true,"channel":"presence-room","user_id":"u2","user_info":"{"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			manager := channels.NewManager()
			m := running(t, manager, connection.NewRegistry(), scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}))
			c, rec := newConn(t, "1.1", testApp())
			require.NoError(t, m.Join(ctx, c, "presence-room", &pusher.Member{UserID: "u1"}))

			m.Handle(ctx, scaling.Envelope{V: scaling.Version, Kind: scaling.KindPresence, AppID: "app-1", Payload: json.RawMessage(tt.payload)})
			m.Handle(ctx, scaling.Envelope{V: scaling.Version, Kind: scaling.KindPresence, AppID: "app-1",
				Payload: json.RawMessage(`{"channel":"presence-room","user_id":"marker"}`)})

			want := []string{`"pusher_internal:subscription_succeeded"`}
			if tt.want != "" {
				want = append(want, tt.want)
			}
			require.Eventually(t, func() bool { return len(rec.Payloads()) == len(want)+1 }, waitFor, time.Millisecond)
			got := rec.Payloads()
			assert.Contains(t, got[0], want[0])
			if tt.want != "" {
				assert.JSONEq(t, tt.want, got[1])
			}
			assert.Contains(t, got[len(got)-1], "marker")
		})
	}
}

// gatedState holds every SetSubscriptions until the test lets one through;
// entered (optional, buffered) hears each one as it starts waiting.
type gatedState struct {
	scaling.State
	gate    chan struct{}
	entered chan struct{}
}

func (s *gatedState) SetSubscriptions(ctx context.Context, counts []scaling.ChannelCount) ([]scaling.Transition, error) {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	<-s.gate
	return s.State.SetSubscriptions(ctx, counts)
}

// TestSubscriptionWaitsUntilTheClusterCountsTheNode: the first socket of
// this node on a channel is answered once the cluster counts the node
// there; the next ones are answered at once.
func TestSubscriptionWaitsUntilTheClusterCountsTheNode(t *testing.T) {
	ctx := context.Background()
	app := testApp()
	state := &gatedState{State: scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}), gate: make(chan struct{})}
	m := running(t, channels.NewManager(), connection.NewRegistry(), state)
	t.Cleanup(func() { close(state.gate) }) // before Run stops: lets any last write through
	first, _ := newConn(t, "1.1", app)
	second, _ := newConn(t, "1.2", app)

	joined := make(chan error, 1)
	go func() { joined <- m.Join(ctx, first, "news", nil) }()
	select {
	case <-joined:
		t.Fatal("answered before the cluster counted the node on the channel")
	case <-time.After(30 * time.Millisecond):
	}
	state.gate <- struct{}{}
	require.NoError(t, <-joined)

	done := make(chan error, 1)
	go func() { done <- m.Join(ctx, second, "news", nil) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("a second subscriber waited for the count")
	}
	state.gate <- struct{}{} // the second subscriber's count
}

// TestSubscriptionDuringTheWriteOfALeave: a socket subscribes while the
// counter writes the node's last leave of the channel (count 0, read
// before the subscription). The node counted the channel before that
// write, but the write is about to take it back: the subscription waits
// for the next write, which counts it again. (It was answered at once,
// and when it left before the next write, the cluster never saw the
// channel occupied again: TestChannelTransitionsAreDecidedOnce, 1 run in
// about 20 under load.)
func TestSubscriptionDuringTheWriteOfALeave(t *testing.T) {
	ctx := context.Background()
	app := testApp()
	state := &gatedState{State: scaling.NewLocalState(scaling.NewLocal(nil), scaling.Config{}), gate: make(chan struct{}), entered: make(chan struct{}, 8)}
	m := running(t, channels.NewManager(), connection.NewRegistry(), state)
	t.Cleanup(func() { close(state.gate) })
	first, _ := newConn(t, "1.1", app)
	second, _ := newConn(t, "1.2", app)

	joined := make(chan error, 1)
	go func() { joined <- m.Join(ctx, first, "news", nil) }()
	<-state.entered
	state.gate <- struct{}{} // the count of 1
	require.NoError(t, <-joined)
	m.Leave(ctx, first, "news")
	<-state.entered // the leave's write of 0 waits at the gate

	go func() { joined <- m.Join(ctx, second, "news", nil) }()
	select {
	case <-joined:
		t.Fatal("answered while the write of the leave could still take the channel back")
	case <-time.After(30 * time.Millisecond):
	}
	state.gate <- struct{}{} // the leave: 0
	select {
	case <-joined:
		t.Fatal("answered before the write that counts it")
	case <-time.After(30 * time.Millisecond):
	}
	state.gate <- struct{}{} // the subscription: 1
	require.NoError(t, <-joined)
}
