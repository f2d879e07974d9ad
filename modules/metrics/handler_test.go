package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/scaling/scalingtest"
)

var discard = slog.New(slog.DiscardHandler)

// nopConn is the transport of a socket that is never written to.
type nopConn struct{}

func (nopConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (nopConn) Write(b []byte) (int, error)      { return len(b), nil }
func (nopConn) Close() error                     { return nil }
func (nopConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (nopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (nopConn) SetDeadline(time.Time) error      { return nil }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }

// node is one node's local state: sockets and their subscriptions.
type node struct {
	channels *channels.Manager
	registry *connection.Registry
}

func newNode() *node {
	return &node{channels: channels.NewManager(), registry: connection.NewRegistry()}
}

// join opens a socket of appID on n, subscribed to channel (as user on a
// presence channel).
func (n *node) join(t *testing.T, appID, id, channel, user string) {
	t.Helper()
	c := connection.New(id, &apps.App{ID: appID, PingInterval: time.Hour}, nopConn{}, connection.Options{Log: discard})
	t.Cleanup(func() { c.Finish(true) })
	require.NoError(t, n.registry.Add(c))
	n.channels.Subscribe(c, channel, member(user))
}

// member returns the presence member user, or nil off presence channels.
func member(user string) *pusher.Member {
	if user == "" {
		return nil
	}
	return &pusher.Member{UserID: user}
}

// startLocal returns a Handler on a subscribed Local provider, routing
// queries and replies as the metrics module does.
func startLocal(t *testing.T, n *node, timeout time.Duration) *Handler {
	t.Helper()
	l := scaling.NewLocal(nil)
	h := New(l, n.channels, n.registry, timeout, nil, discard)
	route(t, l, h)
	return h
}

// route subscribes p with a router holding h's query and reply handlers.
func route(t *testing.T, p scaling.PubSubProvider, h *Handler) {
	t.Helper()
	r, err := scaling.NewRouter([]scaling.Handler{Queries{h}, Replies{h}}, discard)
	require.NoError(t, err)
	require.NoError(t, p.Subscribe(context.Background(), r.Deliver))
	t.Cleanup(func() { require.NoError(t, p.Close()) })
}

func TestGatherWithLocal(t *testing.T) {
	n := newNode()
	n.join(t, "app-1", "1.1", "news", "")
	n.join(t, "app-1", "1.2", "news", "")
	n.join(t, "app-1", "1.3", "presence-room", "u1")
	n.join(t, "app-1", "1.4", "presence-room", "u1")
	n.join(t, "app-1", "1.5", "presence-room", "u2")
	n.join(t, "app-2", "2.1", "news", "")
	h := startLocal(t, n, time.Second)

	tests := []struct {
		name string
		give Query
		want Result
	}{
		{
			name: "everything",
			give: Query{},
			want: Result{Connections: 5, Nodes: 1, Channels: map[string]*Channel{
				"news":          {Subscriptions: 2},
				"presence-room": {Subscriptions: 3},
			}},
		},
		{
			name: "by prefix, with users",
			give: Query{Prefix: "presence-", Users: true},
			want: Result{Connections: 5, Nodes: 1, Channels: map[string]*Channel{
				"presence-room": {Subscriptions: 3, Users: map[string]struct{}{"u1": {}, "u2": {}}},
			}},
		},
		{
			name: "by name, an unoccupied one left out",
			give: Query{Names: []string{"news", "empty"}},
			want: Result{Connections: 5, Nodes: 1, Channels: map[string]*Channel{"news": {Subscriptions: 2}}},
		},
		{
			name: "connections only",
			give: Query{ConnectionsOnly: true},
			want: Result{Connections: 5, Nodes: 1, Channels: map[string]*Channel{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := h.Gather(context.Background(), "app-1", tt.give)

			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// silent adds n nodes to bus that receive every envelope and never answer.
func silent(t *testing.T, bus *scalingtest.Bus, n int) {
	t.Helper()
	for range n {
		p := bus.Node()
		require.NoError(t, p.Subscribe(context.Background(), func(context.Context, scaling.Envelope) {}))
		t.Cleanup(func() { require.NoError(t, p.Close()) })
	}
}

func TestGatherPartial(t *testing.T) {
	tests := []struct {
		name       string
		giveSilent int   // other nodes, which never answer
		giveCutOff error // this node's link to the others is down (CutOff)
		wantNodes  int
	}{
		{name: "two of three nodes never answer", giveSilent: 2, wantNodes: 1},
		{name: "cut off from the cluster", giveSilent: 2, giveCutOff: scaling.ErrLocalOnly, wantNodes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const timeout = 100 * time.Millisecond
			n := newNode()
			n.join(t, "app-1", "1.1", "news", "")
			bus := scalingtest.NewBus()
			p := bus.Node()
			p.CutOff(tt.giveCutOff)
			silent(t, bus, tt.giveSilent)
			h := New(p, n.channels, n.registry, timeout, nil, discard)
			route(t, p, h)

			start := time.Now()
			got, err := h.Gather(context.Background(), "app-1", Query{})
			elapsed := time.Since(start)

			require.NoError(t, err, "a partial answer is not an error")
			assert.True(t, got.Partial)
			assert.Equal(t, tt.wantNodes, got.Nodes)
			assert.Equal(t, 1, got.Connections, "the answers that came are kept")
			assert.Less(t, elapsed, 10*timeout, "Gather overran its timeout")
		})
	}
}

func TestGatherWaitsNoLongerThanCtx(t *testing.T) {
	n := newNode()
	bus := scalingtest.NewBus()
	p := bus.Node()
	silent(t, bus, 1)
	h := New(p, n.channels, n.registry, time.Hour, nil, discard)
	route(t, p, h)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()

	got, err := h.Gather(ctx, "app-1", Query{})

	require.NoError(t, err)
	assert.True(t, got.Partial)
}

func TestGatherPublishError(t *testing.T) {
	n := newNode()
	p := scalingtest.NewBus().Node()
	p.FailPublish(errors.New("no route to redis"))
	h := New(p, n.channels, n.registry, time.Second, nil, discard)

	_, err := h.Gather(context.Background(), "app-1", Query{})

	assert.ErrorContains(t, err, "no route to redis")
}

func TestGatherForgetsItsQuery(t *testing.T) {
	n := newNode()
	h := startLocal(t, n, time.Second)

	for range 3 {
		_, err := h.Gather(context.Background(), "app-1", Query{})
		require.NoError(t, err)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	assert.Empty(t, h.pending)
}

func TestResultMerge(t *testing.T) {
	tests := []struct {
		name string
		give []Answer
		want Result
	}{
		{name: "no answers", give: nil, want: Result{Channels: map[string]*Channel{}}},
		{
			name: "sums connections and subscriptions",
			give: []Answer{
				{Connections: 2, Channels: map[string]ChannelAnswer{"news": {Subscriptions: 2}}},
				{Connections: 3, Channels: map[string]ChannelAnswer{"news": {Subscriptions: 1}, "alerts": {Subscriptions: 3}}},
				{Connections: 0},
			},
			want: Result{Connections: 5, Nodes: 3, Channels: map[string]*Channel{
				"news":   {Subscriptions: 3},
				"alerts": {Subscriptions: 3},
			}},
		},
		{
			name: "de-duplicates users across nodes",
			give: []Answer{
				{Connections: 2, Channels: map[string]ChannelAnswer{"presence-r": {Subscriptions: 2, Users: []string{"u1", "u2"}}}},
				{Connections: 2, Channels: map[string]ChannelAnswer{"presence-r": {Subscriptions: 2, Users: []string{"u2", "u3"}}}},
			},
			want: Result{Connections: 4, Nodes: 2, Channels: map[string]*Channel{
				"presence-r": {Subscriptions: 4, Users: map[string]struct{}{"u1": {}, "u2": {}, "u3": {}}},
			}},
		},
		{
			name: "a node without the users' list",
			give: []Answer{
				{Channels: map[string]ChannelAnswer{"presence-r": {Subscriptions: 1}}},
				{Channels: map[string]ChannelAnswer{"presence-r": {Subscriptions: 1, Users: []string{"u1"}}}},
			},
			want: Result{Nodes: 2, Channels: map[string]*Channel{
				"presence-r": {Subscriptions: 2, Users: map[string]struct{}{"u1": {}}},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Result{Channels: make(map[string]*Channel)}
			for _, a := range tt.give {
				got.merge(a)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestAnswerSurvivesTheWire(t *testing.T) {
	give := Answer{ID: "q1", Connections: 3, Channels: map[string]ChannelAnswer{"presence-r": {Subscriptions: 2, Users: []string{"1", "2"}}}}

	b, err := json.Marshal(give)
	require.NoError(t, err)
	var got Answer
	require.NoError(t, json.Unmarshal(b, &got))

	assert.Equal(t, give, got)
}

// inbox records what one node of a bus receives.
type inbox struct {
	node *scalingtest.Provider
	mu   sync.Mutex
	got  []scaling.Envelope
}

// newInbox subscribes a new node of bus that records what it receives.
func newInbox(t *testing.T, bus *scalingtest.Bus) *inbox {
	t.Helper()
	in := &inbox{node: bus.Node()}
	require.NoError(t, in.node.Subscribe(context.Background(), func(_ context.Context, e scaling.Envelope) {
		in.mu.Lock()
		defer in.mu.Unlock()
		in.got = append(in.got, e)
	}))
	t.Cleanup(func() { require.NoError(t, in.node.Close()) })
	return in
}

// received returns what the node has received once everything queued for
// it so far has been delivered.
func (in *inbox) received(t *testing.T) []scaling.Envelope {
	t.Helper()
	require.NoError(t, in.node.Flush(context.Background()))
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]scaling.Envelope(nil), in.got...)
}

func TestQueriesHandle(t *testing.T) {
	tests := []struct {
		name string
		give string // query payload
		want int    // replies
	}{
		{name: "a query", give: `{"id":"q1"}`, want: 1},
		{name: "no id", give: `{"prefix":"x"}`, want: 0},
		{name: "not JSON", give: `{"id":`, want: 0},
		{name: "an array", give: `[]`, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode()
			n.join(t, "app-1", "1.1", "news", "")
			bus := scalingtest.NewBus()
			self := bus.Node()
			asker, bystander := newInbox(t, bus), newInbox(t, bus)
			h := New(self, n.channels, n.registry, time.Second, nil, discard)

			assert.NotPanics(t, func() {
				Queries{h}.Handle(context.Background(), scaling.Envelope{V: 1, Kind: KindQuery, AppID: "app-1", Origin: asker.node.Node(), Payload: json.RawMessage(tt.give)})
			})

			replies := asker.received(t)
			require.Len(t, replies, tt.want)
			for _, e := range replies {
				assert.Equal(t, self.Node(), e.Origin)
				assert.Equal(t, KindReply, e.Kind)
				assert.JSONEq(t, `{"id":"q1","connections":1,"channels":{"news":{"subscriptions":1}}}`, string(e.Payload))
			}
			assert.Empty(t, bystander.received(t), "the answer goes to the asker only")
		})
	}
}

func TestRepliesHandleIgnoresStrayAnswers(t *testing.T) {
	n := newNode()
	h := New(scalingtest.NewBus().Node(), n.channels, n.registry, time.Second, nil, discard)
	tests := []struct {
		name string
		give string
	}{
		{name: "an answer to nobody's query", give: `{"id":"gone","connections":1}`},
		{name: "no id", give: `{"connections":1}`},
		{name: "not JSON", give: `{`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.NotPanics(t, func() {
				Replies{h}.Handle(context.Background(), scaling.Envelope{V: 1, Kind: KindReply, Payload: json.RawMessage(tt.give)})
			})
		})
	}
}

func TestNewDefaultsTheTimeout(t *testing.T) {
	h := New(scalingtest.NewBus().Node(), nil, nil, 0, nil, discard)
	assert.Equal(t, DefaultTimeout, h.timeout)
}
