package dispatcher_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/scaling/scalingtest"
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
			ps := lone(t)
			d := dispatcher.New(ps, channels.NewManager(), nil, discard)

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
	ps := lone(t)
	ps.FailPublish(scaling.ErrClosed)
	d := dispatcher.New(ps, channels.NewManager(), nil, discard)

	err := d.Dispatch(context.Background(), "app-1", dispatcher.Event{Channels: []string{"a"}, Name: "e"}, "")

	assert.ErrorIs(t, err, scaling.ErrClosed)
}

func TestDispatchRefusesUnencodableData(t *testing.T) {
	ps := lone(t)
	d := dispatcher.New(ps, channels.NewManager(), nil, discard)

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
	d := dispatcher.New(lone(t), m, nil, discard)
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

// TestHandleWritesAtOnceWhenNothingWaits: an event that nothing waits
// behind is written to idle sockets by the delivery itself; one with
// envelopes waiting behind it, or a channel with more of the event's
// channels to follow, is queued for the sockets' writers to join with
// what follows.
func TestHandleWritesAtOnceWhenNothingWaits(t *testing.T) {
	tests := []struct {
		name    string
		waiting int             // envelopes queued behind the event
		want    map[string]bool // channel: its socket was written to at once
	}{
		{name: "nothing waits", want: map[string]bool{"a": true}},
		{name: "the event's next channel follows", want: map[string]bool{"a": false, "b": true}},
		{name: "envelopes wait", waiting: 2, want: map[string]bool{"a": false, "b": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testApp("app-1")
			p := scalingtest.NewBus().Node()
			require.NoError(t, p.Subscribe(context.Background(), func(context.Context, scaling.Envelope) {}))
			t.Cleanup(func() { require.NoError(t, p.Close()) })
			p.Hold()
			for range tt.waiting {
				_, err := p.Publish(context.Background(), scaling.Envelope{Kind: "later"})
				require.NoError(t, err)
			}
			require.Equal(t, tt.waiting, p.Waiting())
			m := channels.NewManager()
			d := dispatcher.New(p, m, nil, discard)
			var names []string
			sockets := map[string]*connectiontest.Recorder{}
			for i, channel := range []string{"a", "b"} {
				if _, ok := tt.want[channel]; !ok {
					continue
				}
				tr := connectiontest.NewRecorder()
				c := connection.New(fmt.Sprintf("1.%d", i), app, tr, connection.Options{Log: discard})
				t.Cleanup(func() { c.Finish(true) })
				m.Subscribe(c, channel, nil)
				names, sockets[channel] = append(names, channel), tr
			}
			d.Handle(context.Background(), eventEnvelope(t, app.ID, dispatcher.Event{Channels: names, Name: "greet", Data: json.RawMessage(`"hi"`)}, ""))
			for channel, now := range tt.want {
				tr := sockets[channel]
				assert.Equal(t, now, tr.TryWrites() == 1, "channel %s: written at once", channel)
				require.Eventually(t, func() bool { return len(tr.Frames()) == 1 }, waitFor, time.Millisecond, "channel %s", channel)
			}
		})
	}
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
			d := dispatcher.New(lone(t), m, nil, discard)
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
