package channels

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
)

// memberStep is one thing that happens to a presence subscription in
// TestMemberEventsAroundReady.
type memberStep struct {
	ready   bool   // Ready with seq (and a member list named "list@seq")
	regular bool   // a regular event, not a member event
	name    string // the event's payload
	seq     uint64
	except  string // socket excluded from the event
}

// memberEvent is a member event step, named for its payload.
func memberEvent(name string, seq uint64) memberStep {
	return memberStep{name: fmt.Sprintf("%q", fmt.Sprintf("%s@%d", name, seq)), seq: seq}
}

// readyAt is a Ready step with a member list as of seq.
func readyAt(seq uint64) memberStep { return memberStep{ready: true, seq: seq} }

func list(seq uint64) string { return fmt.Sprintf("%q", fmt.Sprintf("list@%d", seq)) }

func TestMemberEventsAroundReady(t *testing.T) {
	const channel = "presence-room"
	tests := []struct {
		name string
		give []memberStep
		want []string // payloads the socket gets, in order
	}{
		{
			name: "held events newer than the list follow it",
			give: []memberStep{memberEvent("a", 3), memberEvent("b", 5), memberEvent("c", 7), readyAt(5)},
			want: []string{list(5), `"c@7"`},
		},
		{
			name: "a ready subscriber drops what its list has",
			give: []memberStep{readyAt(5), memberEvent("a", 4), memberEvent("b", 5), memberEvent("c", 6)},
			want: []string{list(5), `"c@6"`},
		},
		{
			name: "events without a seq are never dropped",
			give: []memberStep{memberEvent("a", 0), memberEvent("b", 3), readyAt(5), memberEvent("c", 0), memberEvent("d", 2)},
			want: []string{list(5), `"a@0"`, `"c@0"`},
		},
		{
			name: "held events keep the order they came in",
			give: []memberStep{memberEvent("c", 9), memberEvent("a", 0), memberEvent("b", 8), readyAt(1)},
			want: []string{list(1), `"c@9"`, `"a@0"`, `"b@8"`},
		},
		{
			name: "regular events are not held",
			give: []memberStep{memberEvent("a", 6), {regular: true, name: `"hello"`}, readyAt(5), {regular: true, name: `"again"`}},
			want: []string{`"hello"`, list(5), `"a@6"`, `"again"`},
		},
		{
			name: "the excluded socket gets nothing, held or not",
			give: []memberStep{{name: `"own-1"`, seq: 9, except: "1.1"}, readyAt(5), {name: `"own-2"`, seq: 10, except: "1.1"}},
			want: []string{list(5)},
		},
		{
			name: "a repeated subscription sends the new list and raises the bar",
			give: []memberStep{readyAt(5), memberEvent("a", 7), readyAt(9), memberEvent("b", 8), readyAt(3), memberEvent("c", 9), memberEvent("d", 10)},
			want: []string{list(5), `"a@7"`, list(9), list(3), `"d@10"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager()
			app := testApp("app-1")
			c, rec := newConn(t, "1.1", app, "u1")
			m.Subscribe(c, channel, &pusher.Member{UserID: "u1"})

			for _, st := range tt.give {
				frame := connection.TextFrame([]byte(st.name))
				switch {
				case st.ready:
					m.Ready(c, channel, st.seq, []byte(list(st.seq)))
				case st.regular:
					m.Broadcast(app.ID, channel, frame, st.except, nil)
				default:
					m.BroadcastMember(app.ID, channel, frame, st.except, st.seq)
				}
			}
			// A marker after everything: once it arrives, nothing else will.
			m.Broadcast(app.ID, channel, connection.TextFrame([]byte(`"marker"`)), "", nil)

			got := eventually(t, rec, len(tt.want)+1)
			assert.Equal(t, append(slices.Clone(tt.want), `"marker"`), got)
		})
	}
}

func TestMemberEventsReachOtherSubscribers(t *testing.T) {
	tests := []struct {
		name    string
		channel string
		member  *pusher.Member
		want    []string
	}{
		// A presence subscription that never waited (no member) has no
		// list to compare with: it gets every member event.
		{name: "presence without a member", channel: "presence-room", want: []string{`"a@3"`, `"b@0"`}},
		// BroadcastMember on another kind of channel is Broadcast.
		{name: "public channel", channel: "news", want: []string{`"a@3"`, `"b@0"`}},
		{name: "pending presence member", channel: "presence-room", member: &pusher.Member{UserID: "u1"}, want: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewManager()
			app := testApp("app-1")
			c, rec := newConn(t, "1.1", app, "u1")
			m.Subscribe(c, tt.channel, tt.member)

			for _, st := range []memberStep{memberEvent("a", 3), memberEvent("b", 0)} {
				m.BroadcastMember(app.ID, tt.channel, connection.TextFrame([]byte(st.name)), "", st.seq)
			}
			m.Broadcast(app.ID, tt.channel, connection.TextFrame([]byte(`"marker"`)), "", nil)

			got := eventually(t, rec, len(tt.want)+1)
			assert.Equal(t, append(slices.Clone(tt.want), `"marker"`), got)
			assert.Zero(t, m.BroadcastMember(app.ID, "presence-nobody", []byte("x"), "", 1))
		})
	}
}

func TestHeldMemberEventsOverflow(t *testing.T) {
	const channel = "presence-room"
	m := NewManager()
	app := testApp("app-1")
	pending, _ := newConn(t, "1.1", app, "u1")
	ready, readyRec := newConn(t, "1.2", app, "u2")
	m.Subscribe(pending, channel, &pusher.Member{UserID: "u1"})
	m.Subscribe(ready, channel, &pusher.Member{UserID: "u2"})
	m.Ready(ready, channel, 0, nil)

	for i := range MaxHeldMemberEvents {
		m.BroadcastMember(app.ID, channel, connection.TextFrame([]byte(`"m"`)), "1.2", uint64(i+1))
	}
	require.Zero(t, pending.CloseCode(), "a full buffer is still fine")
	m.BroadcastMember(app.ID, channel, connection.TextFrame([]byte(`"one too many"`)), "", MaxHeldMemberEvents+1)

	assert.Equal(t, pusher.CodeOverCapacity, pending.CloseCode(), "a subscription that holds too much is a slow consumer")
	assert.Equal(t, []string{`"one too many"`}, eventually(t, readyRec, 1), "the other socket is not affected")
	assert.NotPanics(t, func() { m.Ready(pending, channel, 5, []byte(`"list"`)) })
}

// TestReadyIsAtomicWithMemberEvents races a stream of numbered member
// events against Ready with the number last handed out, as a handler reads
// a member list: the socket must get its list and then every later event,
// each once and in order, wherever the race puts Ready.
func TestReadyIsAtomicWithMemberEvents(t *testing.T) {
	const channel = "presence-room"
	const events = 200 // below MaxHeldMemberEvents and the socket's queue
	for round := range 20 {
		m := NewManager()
		app := testApp("app-1")
		c, rec := newConn(t, fmt.Sprintf("1.%d", round), app, "u1")
		m.Subscribe(c, channel, &pusher.Member{UserID: "u1"})

		var last atomic.Uint64
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := range uint64(events) {
				seq := last.Add(1)
				m.BroadcastMember(app.ID, channel, connection.TextFrame(fmt.Appendf(nil, "%d", seq)), "", seq)
				if i == events/4 {
					runtime.Gosched()
				}
			}
		})
		for last.Load() < uint64(round*events/20) {
			runtime.Gosched()
		}
		s := last.Load()
		m.Ready(c, channel, s, []byte(`"list"`))
		wg.Wait()
		m.Broadcast(app.ID, channel, connection.TextFrame([]byte(`"marker"`)), "", nil)

		want := []string{`"list"`}
		for seq := s + 1; seq <= events; seq++ {
			want = append(want, fmt.Sprint(seq))
		}
		got := eventually(t, rec, len(want)+1)
		require.Equal(t, append(want, `"marker"`), got, "round %d, list at %d", round, s)
	}
}

func TestHeldReportsTheSeqSeen(t *testing.T) {
	m := NewManager()
	app := testApp("app-1")
	a, _ := newConn(t, "1.1", app, "u1")
	b, _ := newConn(t, "1.2", app, "u2")
	m.Subscribe(a, "presence-a", &pusher.Member{UserID: "u1"})
	m.Subscribe(b, "presence-b", &pusher.Member{UserID: "u2"})
	m.Ready(a, "presence-a", 40, nil)
	m.BroadcastMember(app.ID, "presence-a", connection.TextFrame([]byte(`"x"`)), "", 42)
	m.BroadcastMember(app.ID, "presence-a", connection.TextFrame([]byte(`"y"`)), "", 41)
	m.Ready(b, "presence-b", 7, nil)

	got := map[string]uint64{}
	for _, h := range m.Held() {
		got[h.Channel] = h.Seen
	}

	assert.Equal(t, map[string]uint64{"presence-a": 42, "presence-b": 7}, got)
}

func TestHeldListsEveryChannelWithItsMembers(t *testing.T) {
	m := NewManager()
	app1, app2 := testApp("app-1"), testApp("app-2")
	a, _ := newConn(t, "1.1", app1, "")
	b, _ := newConn(t, "1.2", app1, "")
	c, _ := newConn(t, "2.1", app2, "")
	info := json.RawMessage(`{"name":"Ann"}`)
	m.Subscribe(a, "presence-room", &pusher.Member{UserID: "u1", UserInfo: info})
	m.Subscribe(b, "presence-room", &pusher.Member{UserID: "u1", UserInfo: info})
	m.Subscribe(b, "news", nil)
	m.Subscribe(c, "presence-room", &pusher.Member{UserID: "u9"})
	m.Subscribe(c, "news", nil)
	m.Unsubscribe(c, "news")

	assert.ElementsMatch(t, []Held{
		{AppID: "app-1", Channel: "presence-room", Subscriptions: 2, Members: []HeldMember{{UserID: "u1", Info: info, Sockets: 2}}},
		{AppID: "app-1", Channel: "news", Subscriptions: 1},
		{AppID: "app-2", Channel: "presence-room", Subscriptions: 1, Members: []HeldMember{{UserID: "u9", Sockets: 1}}},
	}, m.Held())
}
