package channels

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
	"github.com/fizz-server/fizz/modules/pusher"
)

func TestManagerSubscribeUnsubscribe(t *testing.T) {
	tests := []struct {
		name       string
		give       string // channel
		giveMember *pusher.Member
		wantNew    bool
		wantGone   string
		wantUsers  int
	}{
		{name: "public", give: "news"},
		{name: "private", give: "private-news"},
		{name: "cache", give: "cache-news"},
		{
			name:       "presence",
			give:       "presence-room",
			giveMember: &pusher.Member{UserID: "u1", UserInfo: json.RawMessage(`{"name":"Ann"}`)},
			wantNew:    true,
			wantGone:   "u1",
			wantUsers:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager()
			app := testApp("app-1")
			c, _ := newConn(t, "1.1", app, "")

			joined := m.Subscribe(c, tt.give, tt.giveMember)
			again := m.Subscribe(c, tt.give, tt.giveMember)

			assert.Equal(t, tt.give, joined.Channel.Name())
			assert.Equal(t, tt.wantNew, joined.NewMember)
			assert.False(t, joined.Already)
			assert.True(t, again.Already, "the second subscription is a no-op")
			assert.False(t, again.NewMember)
			assert.Same(t, joined.Channel, m.Find(app.ID, tt.give))
			assert.True(t, c.Subscribed(tt.give))
			assert.Equal(t, Info{Name: tt.give, SubscriptionCount: 1, UserCount: tt.wantUsers}, joined.Channel.Info())
			assert.Nil(t, m.Find("app-2", tt.give), "apps do not share channels")

			gone := m.Unsubscribe(c, tt.give)

			assert.Equal(t, tt.wantGone, gone)
			assert.False(t, c.Subscribed(tt.give))
			assert.Nil(t, m.Find(app.ID, tt.give), "an empty channel is removed")
			assert.Empty(t, m.Channels(app.ID, ""))
			assert.Empty(t, m.Unsubscribe(c, tt.give), "unsubscribing twice")
		})
	}
}

func TestManagerPresenceMembers(t *testing.T) {
	const channel = "presence-room"
	type step struct {
		conn int    // socket index
		user string // user of that socket; "" leaves instead
	}
	tests := []struct {
		name     string
		give     []step
		wantNew  []bool   // NewMember per join, false per leave
		wantGone []string // user per leave, "" per join
		wantIDs  []string // members at the end
	}{
		{
			name:     "one user, two sockets",
			give:     []step{{conn: 0, user: "u1"}, {conn: 1, user: "u1"}, {conn: 0}, {conn: 1}},
			wantNew:  []bool{true, false, false, false},
			wantGone: []string{"", "", "u1", "u1"},
			wantIDs:  []string{},
		},
		{
			name:     "two users",
			give:     []step{{conn: 0, user: "u1"}, {conn: 1, user: "u2"}, {conn: 0}},
			wantNew:  []bool{true, true, false},
			wantGone: []string{"", "", "u1"},
			wantIDs:  []string{"u2"},
		},
		{
			name:     "the user's last socket leaves, the user comes back",
			give:     []step{{conn: 0, user: "u1"}, {conn: 0}, {conn: 1, user: "u1"}},
			wantNew:  []bool{true, false, true},
			wantGone: []string{"", "u1", ""},
			wantIDs:  []string{"u1"},
		},
		{
			name:     "leaving a channel never joined",
			give:     []step{{conn: 0}},
			wantNew:  []bool{false},
			wantGone: []string{""},
			wantIDs:  []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager()
			app := testApp("app-1")
			conns := make([]*connection.Conn, 2)
			for i := range conns {
				conns[i], _ = newConn(t, fmt.Sprintf("1.%d", i), app, "")
			}
			ops := map[bool]func(c *connection.Conn, user string) (bool, string){
				true: func(c *connection.Conn, user string) (bool, string) {
					return m.Subscribe(c, channel, &pusher.Member{UserID: user}).NewMember, ""
				},
				false: func(c *connection.Conn, _ string) (bool, string) {
					return false, m.Unsubscribe(c, channel)
				},
			}

			var gotNew []bool
			var gotGone []string
			for _, st := range tt.give {
				isNew, gone := ops[st.user != ""](conns[st.conn], st.user)
				gotNew = append(gotNew, isNew)
				gotGone = append(gotGone, gone)
			}

			assert.Equal(t, tt.wantNew, gotNew)
			assert.Equal(t, tt.wantGone, gotGone)
			assert.ElementsMatch(t, tt.wantIDs, presenceIDs(m, app.ID, channel))
		})
	}
}

// presenceIDs returns the members of a presence channel on m, none when
// nobody is subscribed.
func presenceIDs(m *Manager, appID, channel string) []string {
	ch := m.Find(appID, channel)
	if ch == nil {
		return []string{}
	}
	return ch.Presence().IDs
}

func TestManagerDisconnect(t *testing.T) {
	m := NewManager()
	app := testApp("app-1")
	a, _ := newConn(t, "1.1", app, "u1")
	b, _ := newConn(t, "1.2", app, "u1")
	m.Subscribe(a, "news", nil)
	m.Subscribe(a, "presence-one", &pusher.Member{UserID: "u1"})
	m.Subscribe(a, "presence-two", &pusher.Member{UserID: "u1"})
	m.Subscribe(b, "presence-two", &pusher.Member{UserID: "u1"})

	left := m.Disconnect(a)

	assert.ElementsMatch(t, []Left{{Channel: "presence-one", UserID: "u1"}, {Channel: "presence-two", UserID: "u1"}}, left,
		"every presence subscription the socket held")
	assert.Empty(t, a.Channels())
	assert.Nil(t, m.Find(app.ID, "news"))
	assert.Nil(t, m.Find(app.ID, "presence-one"))
	assert.Equal(t, []string{"u1"}, presenceIDs(m, app.ID, "presence-two"), "b is still there")
	assert.Empty(t, m.Disconnect(a), "twice")
}

func TestChannelPresence(t *testing.T) {
	m := NewManager()
	app := testApp("app-1")
	a, _ := newConn(t, "1.1", app, "")
	b, _ := newConn(t, "1.2", app, "")
	m.Subscribe(a, "presence-room", &pusher.Member{UserID: "1", UserInfo: json.RawMessage(`{"name":"Ann"}`)})
	j := m.Subscribe(b, "presence-room", &pusher.Member{UserID: "2"})

	got, err := json.Marshal(j.Channel.Presence())
	require.NoError(t, err)

	var p struct {
		IDs   []string                   `json:"ids"`
		Hash  map[string]json.RawMessage `json:"hash"`
		Count int                        `json:"count"`
	}
	require.NoError(t, json.Unmarshal(got, &p))
	assert.ElementsMatch(t, []string{"1", "2"}, p.IDs)
	assert.Equal(t, 2, p.Count)
	assert.JSONEq(t, `{"name":"Ann"}`, string(p.Hash["1"]))
	assert.JSONEq(t, `null`, string(p.Hash["2"]), "no user_info is null")
}

func TestManagerBroadcast(t *testing.T) {
	tests := []struct {
		name       string
		giveExcept string
		want       []int // payloads per socket 1.0, 1.1, 1.2
	}{
		{name: "everyone", giveExcept: "", want: []int{1, 1, 1}},
		{name: "all but the sender", giveExcept: "1.1", want: []int{1, 0, 1}},
		{name: "an unknown socket excludes nobody", giveExcept: "9.9", want: []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager()
			app := testApp("app-1")
			var recs []*recorder
			for i := range 3 {
				c, rec := newConn(t, fmt.Sprintf("1.%d", i), app, "")
				m.Subscribe(c, "news", nil)
				recs = append(recs, rec)
			}
			other, otherRec := newConn(t, "2.0", testApp("app-2"), "")
			m.Subscribe(other, "news", nil)

			n := m.Broadcast(app.ID, "news", connection.TextFrame([]byte(`{"event":"e"}`)), tt.giveExcept, nil)
			// A marker after the event: once it arrives, nothing else will.
			m.Broadcast(app.ID, "news", connection.TextFrame([]byte(`{"event":"marker"}`)), "", nil)

			sum := 0
			for i, rec := range recs {
				got := eventually(t, rec, tt.want[i]+1)
				assert.Len(t, got, tt.want[i]+1, "socket %d", i)
				sum += tt.want[i]
			}
			assert.Equal(t, sum, n)
			assert.Empty(t, otherRec.Payloads(), "another app's channel of the same name")
			assert.Zero(t, m.Broadcast(app.ID, "nobody-here", []byte("x"), "", nil))
		})
	}
}

// TestManagerBroadcastPace: while nothing waits behind a broadcast, it
// writes to each idle socket itself (a write without waiting); once
// something does, it queues the rest for their writers. Every socket gets
// the event once either way.
func TestManagerBroadcastPace(t *testing.T) {
	const sockets = 100
	tests := []struct {
		name   string
		more   func(looks int) bool // the answer to the looks-th look
		except string
		busy   int // sockets whose writer is still writing an earlier frame
		want   int // sockets written to by the broadcast itself; -1: fewer than paceEvery
	}{
		{name: "nothing known: all queued", want: 0},
		{name: "nothing waits: all at once", more: func(int) bool { return false }, want: sockets},
		{name: "something waits: all queued", more: func(int) bool { return true }, want: 0},
		{name: "something comes after the first look", more: func(looks int) bool { return looks > 1 }, want: paceEvery},
		{name: "comes later", more: func(looks int) bool { return looks > 2 }, want: 2 * paceEvery},
		{name: "the sender is skipped", more: func(int) bool { return false }, except: "1.7", want: sockets - 1},
		// Half the sockets still write an earlier frame: a burst. Only
		// idle sockets among the first paceEvery are written at once.
		{name: "busy sockets", more: func(int) bool { return false }, busy: sockets / 2, want: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager()
			app := testApp("app-1")
			var ts []*connectiontest.Recorder
			gate := make(chan struct{})
			for i := range sockets {
				tr := connectiontest.NewRecorder()
				var transport net.Conn = tr
				if i < tt.busy {
					transport = &gated{Recorder: tr, gate: gate}
				}
				c := connection.New(fmt.Sprintf("1.%d", i), app, transport, connection.Options{Log: slog.New(slog.DiscardHandler)})
				t.Cleanup(func() { c.Finish(true) })
				m.Subscribe(c, "news", nil)
				if i < tt.busy {
					c.SendFrame(connection.TextFrame([]byte(`{"event":"earlier"}`))) // its writer waits at the gate
				}
				ts = append(ts, tr)
			}
			var more func() bool
			looks := 0
			if tt.more != nil {
				more = func() bool { looks++; return tt.more(looks) }
			}
			m.Broadcast(app.ID, "news", connection.TextFrame([]byte(`{"event":"e"}`)), tt.except, more)
			now := 0
			for _, tr := range ts {
				now += int(tr.TryWrites())
			}
			close(gate)
			for i, tr := range ts {
				want := 1
				if i < tt.busy {
					want = 2 // the earlier frame, then this one
				}
				if fmt.Sprintf("1.%d", i) == tt.except {
					want = 0
				}
				require.Eventually(t, func() bool { return len(tr.Payloads()) == want }, waitFor, time.Millisecond, "socket %d", i)
			}
			if tt.want < 0 {
				assert.Less(t, now, paceEvery, "written by the broadcast itself")
			} else {
				assert.Equal(t, tt.want, now, "written by the broadcast itself")
			}
		})
	}
}

func TestManagerBroadcastSeesChanges(t *testing.T) {
	m := NewManager()
	app := testApp("app-1")
	a, recA := newConn(t, "1.1", app, "")
	b, recB := newConn(t, "1.2", app, "")
	frame := func(s string) []byte { return connection.TextFrame([]byte(s)) }
	m.Subscribe(a, "news", nil)

	assert.Equal(t, 1, m.Broadcast(app.ID, "news", frame(`"one"`), "", nil)) // builds the snapshot
	m.Subscribe(b, "news", nil)
	assert.Equal(t, 2, m.Broadcast(app.ID, "news", frame(`"two"`), "", nil))
	m.Unsubscribe(a, "news")
	assert.Equal(t, 1, m.Broadcast(app.ID, "news", frame(`"three"`), "", nil))

	assert.Equal(t, []string{`"one"`, `"two"`}, eventually(t, recA, 2))
	assert.Equal(t, []string{`"two"`, `"three"`}, eventually(t, recB, 2))
}

func TestManagerChannels(t *testing.T) {
	m := NewManager()
	app := testApp("app-1")
	subscribe := func(id, channel string, user *pusher.Member) {
		c, _ := newConn(t, id, app, "")
		m.Subscribe(c, channel, user)
	}
	subscribe("1.1", "news", nil)
	subscribe("1.2", "news", nil)
	subscribe("1.3", "alerts", nil)
	subscribe("1.4", "presence-room", &pusher.Member{UserID: "u1"})
	subscribe("1.5", "presence-room", &pusher.Member{UserID: "u1"})
	subscribe("1.6", "presence-room", &pusher.Member{UserID: "u2"})
	subscribe("1.7", "private-x", nil)

	tests := []struct {
		give string
		want []Info
	}{
		{give: "", want: []Info{
			{Name: "alerts", SubscriptionCount: 1},
			{Name: "news", SubscriptionCount: 2},
			{Name: "presence-room", SubscriptionCount: 3, UserCount: 2},
			{Name: "private-x", SubscriptionCount: 1},
		}},
		{give: "presence-", want: []Info{{Name: "presence-room", SubscriptionCount: 3, UserCount: 2}}},
		{give: "n", want: []Info{{Name: "news", SubscriptionCount: 2}}},
		{give: "none-", want: []Info{}},
	}
	for _, tt := range tests {
		t.Run("prefix "+tt.give, func(t *testing.T) {
			assert.Equal(t, tt.want, m.Channels(app.ID, tt.give))
		})
	}
}

func TestManagerUserConns(t *testing.T) {
	m := NewManager()
	app := testApp("app-1")
	a, _ := newConn(t, "1.1", app, "u1")
	b, _ := newConn(t, "1.2", app, "u1")
	c, _ := newConn(t, "1.3", app, "u2")
	anon, _ := newConn(t, "1.4", app, "")
	for _, conn := range []*connection.Conn{a, b, c, anon} {
		m.AddUser(conn)
	}
	m.AddUser(a) // twice is once

	assert.ElementsMatch(t, []*connection.Conn{a, b}, m.UserConns(app.ID, "u1"))
	assert.ElementsMatch(t, []*connection.Conn{c}, m.UserConns(app.ID, "u2"))
	assert.Empty(t, m.UserConns(app.ID, ""))
	assert.Empty(t, m.UserConns("app-2", "u1"))

	m.Disconnect(a)
	assert.ElementsMatch(t, []*connection.Conn{b}, m.UserConns(app.ID, "u1"))
	m.Disconnect(b)
	m.Disconnect(anon)
	assert.Empty(t, m.UserConns(app.ID, "u1"))
	assert.ElementsMatch(t, []*connection.Conn{c}, m.UserConns(app.ID, "u2"))
}

func TestManagerConcurrentUse(t *testing.T) {
	m := NewManager()
	app := testApp("app-1")
	channels := []string{"news", "private-news", "presence-room", "cache-news"}
	const sockets, rounds = 8, 50

	var wg sync.WaitGroup
	for i := range sockets {
		// Each socket has one reader goroutine, as in production.
		c, _ := newConn(t, fmt.Sprintf("1.%d", i), app, fmt.Sprintf("u%d", i%3))
		wg.Go(func() {
			m.AddUser(c)
			for r := range rounds {
				for _, ch := range channels {
					m.Subscribe(c, ch, &pusher.Member{UserID: c.UserID()})
				}
				if r%2 == 0 {
					m.Unsubscribe(c, channels[r%len(channels)])
				}
			}
			m.Disconnect(c)
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for i := range 4 {
		readers.Go(func() {
			frame := connection.TextFrame([]byte(`{"event":"e"}`))
			for {
				select {
				case <-stop:
					return
				default:
				}
				ch := channels[i%len(channels)]
				m.Broadcast(app.ID, ch, frame, "1.0", nil)
				m.Channels(app.ID, "")
				m.UserConns(app.ID, "u1")
				if found := m.Find(app.ID, "presence-room"); found != nil {
					found.Presence()
				}
				m.Held()
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()

	assert.Empty(t, m.Channels(app.ID, ""), "every socket left")
	assert.Empty(t, m.UserConns(app.ID, "u1"))
}

// gated is a recorder whose writes that may wait (a socket's own writer's)
// wait for gate: the socket is busy until then.
type gated struct {
	*connectiontest.Recorder
	gate chan struct{}
}

func (g *gated) Write(b []byte) (int, error) {
	<-g.gate
	return g.Recorder.Write(b)
}
