package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

func TestDispatchPublishesOneEnvelope(t *testing.T) {
	tests := []struct {
		name       string
		give       dispatcher.Event
		giveExcept string
		want       string // the envelope's payload
	}{
		{
			name: "trigger on two channels",
			give: dispatcher.Event{Channels: []string{"a", "b"}, Name: "greet", Data: json.RawMessage(`"hi"`)},
			want: `{"channels":["a","b"],"event":"greet","data":"hi"}`,
		},
		{
			name:       "client event on a presence channel",
			give:       dispatcher.Event{Channels: []string{"presence-r"}, Name: "client-typing", Data: json.RawMessage(`{}`), UserID: "u1", Client: true},
			giveExcept: "1.1",
			want:       `{"channels":["presence-r"],"event":"client-typing","data":{},"user_id":"u1","client":true}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := &fakePubSub{}
			d := dispatcher.New(ps, channels.NewManager(), discard)

			require.NoError(t, d.Dispatch(context.Background(), "app-1", tt.give, tt.giveExcept))

			got := ps.Published()
			require.Len(t, got, 1)
			assert.Equal(t, scaling.Version, got[0].V)
			assert.Equal(t, dispatcher.KindEvent, got[0].Kind)
			assert.Equal(t, "app-1", got[0].AppID)
			assert.Equal(t, tt.giveExcept, got[0].SocketID)
			assert.JSONEq(t, tt.want, string(got[0].Payload))
		})
	}
}

func TestDispatchReportsPublishErrors(t *testing.T) {
	ps := &fakePubSub{err: scaling.ErrClosed}
	d := dispatcher.New(ps, channels.NewManager(), discard)

	err := d.Dispatch(context.Background(), "app-1", dispatcher.Event{Channels: []string{"a"}, Name: "e"}, "")

	assert.ErrorIs(t, err, scaling.ErrClosed)
}

func TestDispatchRefusesUnencodableData(t *testing.T) {
	ps := &fakePubSub{}
	d := dispatcher.New(ps, channels.NewManager(), discard)

	err := d.Dispatch(context.Background(), "app-1", dispatcher.Event{Channels: []string{"a"}, Name: "e", Data: json.RawMessage(`{not json`)}, "")

	assert.Error(t, err)
	assert.Empty(t, ps.Published())
}

// eventEnvelope returns the envelope Dispatch would publish for ev.
func eventEnvelope(t *testing.T, appID string, ev dispatcher.Event, exceptID string) scaling.Envelope {
	t.Helper()
	payload, err := json.Marshal(ev)
	require.NoError(t, err)
	return scaling.Envelope{V: scaling.Version, Kind: dispatcher.KindEvent, AppID: appID, Origin: "n1", SocketID: exceptID, Payload: payload}
}

func TestHandleDeliversOncePerChannelToSubscribers(t *testing.T) {
	app := testApp("app-1")
	m := channels.NewManager()
	d := dispatcher.New(&fakePubSub{}, m, discard)
	both, recBoth := newConn(t, "1.1", app, "")
	sender, recSender := newConn(t, "1.2", app, "")
	onlyB, recOnlyB := newConn(t, "1.3", app, "")
	other, recOther := newConn(t, "2.1", testApp("app-2"), "")
	m.Subscribe(both, "a", nil)
	m.Subscribe(both, "b", nil)
	m.Subscribe(sender, "a", nil)
	m.Subscribe(onlyB, "b", nil)
	m.Subscribe(other, "a", nil)

	d.Handle(context.Background(), eventEnvelope(t, app.ID,
		dispatcher.Event{Channels: []string{"a", "b"}, Name: "greet", Data: json.RawMessage(`"hi"`), UserID: "u7"}, sender.ID()))
	// A marker to every socket: once it arrives, nothing else will.
	d.Handle(context.Background(), eventEnvelope(t, app.ID, dispatcher.Event{Channels: []string{"a", "b"}, Name: "marker"}, ""))

	tests := []struct {
		name string
		give *recorder
		want []string // channels of "greet" frames, in order
		// markers is how many markers follow: one per channel subscribed.
		markers int
	}{
		{name: "subscribed to both", give: recBoth, want: []string{"a", "b"}, markers: 2},
		{name: "the excluded sender", give: recSender, want: []string{}, markers: 1},
		{name: "subscribed to b", give: recOnlyB, want: []string{"b"}, markers: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frames := tt.give.wait(t, len(tt.want)+tt.markers)
			require.Len(t, frames, len(tt.want)+tt.markers)
			got := []string{}
			for _, f := range frames[:len(tt.want)] {
				ev := f.event(t)
				assert.Equal(t, "greet", ev.Event)
				assert.JSONEq(t, `"hi"`, string(ev.Data))
				assert.Equal(t, "u7", ev.UserID)
				got = append(got, ev.Channel)
			}
			assert.Equal(t, tt.want, got)
			for _, f := range frames[len(tt.want):] {
				assert.Equal(t, "marker", f.event(t).Event)
			}
		})
	}
	assert.Empty(t, recOther.Frames(), "another app's channel of the same name")
}

func TestHandleDropsMalformedEnvelopes(t *testing.T) {
	tests := []struct {
		name string
		give string // payload
	}{
		{name: "not JSON", give: `{"channels":`},
		{name: "no event name", give: `{"channels":["a"],"data":"x"}`},
		{name: "channels of the wrong type", give: `{"channels":"a","event":"e"}`},
		{name: "an array", give: `["a"]`},
		{name: "empty", give: ``},
		{name: "null", give: `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testApp("app-1")
			m := channels.NewManager()
			d := dispatcher.New(&fakePubSub{}, m, discard)
			c, rec := newConn(t, "1.1", app, "")
			m.Subscribe(c, "a", nil)

			assert.NotPanics(t, func() {
				d.Handle(context.Background(), scaling.Envelope{V: 1, Kind: dispatcher.KindEvent, AppID: app.ID, Payload: json.RawMessage(tt.give)})
			})
			d.Handle(context.Background(), eventEnvelope(t, app.ID, dispatcher.Event{Channels: []string{"a"}, Name: "marker"}, ""))

			frames := rec.wait(t, 1)
			require.Len(t, frames, 1, "only the marker")
			assert.Equal(t, "marker", frames[0].event(t).Event)
		})
	}
}

func TestMemberEvents(t *testing.T) {
	tests := []struct {
		name       string
		give       func(d *dispatcher.Dispatcher) error
		wantEvent  string
		wantData   string // the JSON inside the data string
		wantExcept string
		wantSeq    uint64
	}{
		{
			name: "member added",
			give: func(d *dispatcher.Dispatcher) error {
				return d.MemberAdded(context.Background(), "app-1", "presence-r", "u1", json.RawMessage(`{"name":"Ann"}`), 7, "1.1")
			},
			wantEvent:  pusher.EventMemberAdded,
			wantData:   `{"user_id":"u1","user_info":{"name":"Ann"}}`,
			wantExcept: "1.1",
			wantSeq:    7,
		},
		{
			name: "member added without info or seq",
			give: func(d *dispatcher.Dispatcher) error {
				return d.MemberAdded(context.Background(), "app-1", "presence-r", "u1", nil, 0, "1.1")
			},
			wantEvent:  pusher.EventMemberAdded,
			wantData:   `{"user_id":"u1"}`,
			wantExcept: "1.1",
		},
		{
			name: "member removed",
			give: func(d *dispatcher.Dispatcher) error {
				return d.MemberRemoved(context.Background(), "app-1", "presence-r", "u1", 1<<60)
			},
			wantEvent: pusher.EventMemberRemoved,
			wantData:  `{"user_id":"u1"}`,
			wantSeq:   1 << 60,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := &fakePubSub{}
			d := dispatcher.New(ps, channels.NewManager(), discard)

			require.NoError(t, tt.give(d))

			got := ps.Published()
			require.Len(t, got, 1)
			assert.Equal(t, tt.wantExcept, got[0].SocketID)
			assert.Equal(t, tt.wantSeq, got[0].Seq, "the seq travels in the envelope")
			assert.NotContains(t, string(got[0].Payload), "seq", "the event sent to clients does not change")
			var ev dispatcher.Event
			require.NoError(t, json.Unmarshal(got[0].Payload, &ev))
			assert.Equal(t, []string{"presence-r"}, ev.Channels)
			assert.Equal(t, tt.wantEvent, ev.Name)
			var data string
			require.NoError(t, json.Unmarshal(ev.Data, &data), "data is a JSON string, as Pusher sends it")
			assert.JSONEq(t, tt.wantData, data)
		})
	}
}

func TestAnnounce(t *testing.T) {
	ps := &fakePubSub{}
	d := dispatcher.New(ps, channels.NewManager(), discard)

	d.Announce(context.Background(), []scaling.PresenceChange{
		{AppID: "app-1", Channel: "presence-a", UserID: "u1", Info: json.RawMessage(`{}`), Added: true, Seq: 3},
		{AppID: "app-2", Channel: "presence-b", UserID: "u2", Seq: 9},
	})

	got := ps.Published()
	require.Len(t, got, 2)
	names := make([]string, 0, 2)
	for _, e := range got {
		var ev dispatcher.Event
		require.NoError(t, json.Unmarshal(e.Payload, &ev))
		names = append(names, fmt.Sprintf("%s %s %s %d", e.AppID, ev.Channels[0], ev.Name, e.Seq))
		assert.Empty(t, e.SocketID, "nobody is excluded")
	}
	assert.Equal(t, []string{
		"app-1 presence-a " + pusher.EventMemberAdded + " 3",
		"app-2 presence-b " + pusher.EventMemberRemoved + " 9",
	}, names)
}

func TestAnnounceKeepsWhatFailedForTheNextCall(t *testing.T) {
	ps := &fakePubSub{}
	ps.setErr(errors.New("redis down"))
	d := dispatcher.New(ps, channels.NewManager(), discard)

	assert.NotPanics(t, func() {
		d.Announce(context.Background(), []scaling.PresenceChange{{AppID: "a", Channel: "presence-a", UserID: "u", Seq: 1}})
	})
	require.Empty(t, ps.Published())

	ps.setErr(nil)
	d.Announce(context.Background(), nil)
	d.Announce(context.Background(), nil)
	got := ps.Published()
	require.Len(t, got, 1, "published once, on the first call that could")
	assert.Equal(t, uint64(1), got[0].Seq)
}

// TestAnnounceWaitsForTheClusterLink: the shared state is back (Redis
// answers) but this node's pub/sub link is not, and the state hands over
// presence changes: a member who left during the outage, one restored.
// They must reach every node once the link is up, in order, and this
// node's sockets exactly once: nothing may go to them alone first.
func TestAnnounceWaitsForTheClusterLink(t *testing.T) {
	tests := []struct {
		name string
		// failAfter is how many envelopes the link carries before it
		// fails (-1: it is down from the start).
		failAfter int
	}{
		{name: "the link is not back yet", failAfter: -1},
		{name: "the link fails between two changes", failAfter: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := &redisLike{failAfter: tt.failAfter}
			d := dispatcher.New(ps, channels.NewManager(), discard)
			ctx := context.Background()

			d.Announce(ctx, []scaling.PresenceChange{{AppID: "app-1", Channel: "presence-r", UserID: "leaver", Seq: 5}})
			d.Announce(ctx, []scaling.PresenceChange{
				{AppID: "app-1", Channel: "presence-r", UserID: "back", Info: json.RawMessage(`{"n":1}`), Added: true, Seq: 6},
				{AppID: "app-1", Channel: "presence-r", UserID: "gone", Seq: 7},
			})
			assert.Empty(t, memberEvents(t, ps.localOnly()), "nothing reaches this node's sockets alone")
			assert.Len(t, ps.cluster(), max(tt.failAfter, 0))

			ps.linkUp()
			d.Announce(ctx, nil) // the next heartbeat
			d.Announce(ctx, nil)

			assert.Empty(t, memberEvents(t, ps.localOnly()), "nothing reaches this node's sockets alone")
			assert.Equal(t, []string{
				pusher.EventMemberRemoved + " 5",
				pusher.EventMemberAdded + " 6",
				pusher.EventMemberRemoved + " 7",
			}, memberEvents(t, ps.cluster()), "every change reaches the cluster once, in order")
		})
	}
}

// memberEvents returns the event name and Seq of each envelope.
func memberEvents(t *testing.T, envelopes []scaling.Envelope) []string {
	t.Helper()
	var out []string
	for _, e := range envelopes {
		var ev dispatcher.Event
		require.NoError(t, json.Unmarshal(e.Payload, &ev))
		out = append(out, fmt.Sprintf("%s %d", ev.Name, e.Seq))
	}
	return out
}

// memberEnvelope returns the envelope MemberAdded would publish for user,
// numbered seq.
func memberEnvelope(t *testing.T, user string, seq uint64) scaling.Envelope {
	t.Helper()
	ps := &fakePubSub{}
	d := dispatcher.New(ps, channels.NewManager(), discard)
	require.NoError(t, d.MemberAdded(context.Background(), "app-1", "presence-r", user, nil, seq, ""))
	return ps.Published()[0]
}

func TestHandleKeepsMemberEventsInStepWithTheMemberList(t *testing.T) {
	app := testApp("app-1")
	m := channels.NewManager()
	d := dispatcher.New(&fakePubSub{}, m, discard)
	c, rec := newConn(t, "1.1", app, "me")
	m.Subscribe(c, "presence-r", &pusher.Member{UserID: "me"})
	deliver := func(e scaling.Envelope) { d.Handle(context.Background(), e) }

	deliver(memberEnvelope(t, "in-the-list", 4)) // held: the socket waits for its list
	deliver(memberEnvelope(t, "after-the-list", 6))
	deliver(eventEnvelope(t, app.ID, dispatcher.Event{Channels: []string{"presence-r"}, Name: "regular"}, ""))
	m.Ready(c, "presence-r", 5, []byte(`{"event":"list"}`))
	deliver(memberEnvelope(t, "late-but-listed", 5))
	deliver(memberEnvelope(t, "older-node", 0))
	deliver(memberEnvelope(t, "new", 7))
	// A marker: once it arrives, nothing else will.
	deliver(eventEnvelope(t, app.ID, dispatcher.Event{Channels: []string{"presence-r"}, Name: "marker"}, ""))

	frames := rec.wait(t, 6)
	got := make([]string, 0, len(frames))
	for _, f := range frames {
		ev := f.event(t)
		var member struct {
			UserID string `json:"user_id"`
		}
		if ev.Event == pusher.EventMemberAdded {
			var data string
			require.NoError(t, json.Unmarshal(ev.Data, &data))
			require.NoError(t, json.Unmarshal([]byte(data), &member))
		}
		got = append(got, ev.Event+" "+member.UserID)
	}
	assert.Equal(t, []string{
		"regular ",
		"list ",
		pusher.EventMemberAdded + " after-the-list",
		pusher.EventMemberAdded + " older-node",
		pusher.EventMemberAdded + " new",
		"marker ",
	}, got)
}
