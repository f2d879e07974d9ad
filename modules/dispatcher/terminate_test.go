package dispatcher_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

func TestTerminatePublishes(t *testing.T) {
	ps := lone(t)
	d := dispatcher.New(ps, channels.NewManager(), nil, discard)

	require.NoError(t, d.Terminate(context.Background(), "app-1", "u1"))

	got := ps.Published()
	require.Len(t, got, 1)
	assert.Equal(t, dispatcher.KindTerminate, got[0].Kind)
	assert.Equal(t, "app-1", got[0].AppID)
	assert.JSONEq(t, `{"user_id":"u1"}`, string(got[0].Payload))
}

func TestTerminatorClosesTheUsersSockets(t *testing.T) {
	tests := []struct {
		name       string
		giveApp    string
		givePaylod string
		want       []int // close code per socket: u1, u1, u2
	}{
		{name: "the user's sockets", giveApp: "app-1", givePaylod: `{"user_id":"u1"}`, want: []int{4009, 4009, 0}},
		{name: "another app's user", giveApp: "app-2", givePaylod: `{"user_id":"u1"}`, want: []int{0, 0, 0}},
		{name: "an unknown user", giveApp: "app-1", givePaylod: `{"user_id":"nobody"}`, want: []int{0, 0, 0}},
		{name: "no user id", giveApp: "app-1", givePaylod: `{}`, want: []int{0, 0, 0}},
		{name: "not JSON", giveApp: "app-1", givePaylod: `{"user_id":`, want: []int{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testApp("app-1")
			m := channels.NewManager()
			term := dispatcher.NewTerminator(m, discard)
			var conns []*connection.Conn
			var recs []*recorder
			for i, user := range []string{"u1", "u1", "u2"} {
				c, rec := newConn(t, []string{"1.1", "1.2", "1.3"}[i], app, user)
				m.AddUser(c)
				conns = append(conns, c)
				recs = append(recs, rec)
			}

			assert.NotPanics(t, func() {
				term.Handle(context.Background(), scaling.Envelope{V: 1, Kind: dispatcher.KindTerminate, AppID: tt.giveApp, Payload: json.RawMessage(tt.givePaylod)})
			})

			got := make([]int, 0, len(conns))
			for _, c := range conns {
				got = append(got, c.CloseCode())
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestTerminatorSendsErrorThenClose(t *testing.T) {
	app := testApp("app-1")
	m := channels.NewManager()
	c, rec := newConn(t, "1.1", app, "u1")
	m.AddUser(c)

	dispatcher.NewTerminator(m, discard).Handle(context.Background(),
		scaling.Envelope{V: 1, Kind: dispatcher.KindTerminate, AppID: app.ID, Payload: json.RawMessage(`{"user_id":"u1"}`)})

	frames := rec.wait(t, 2)
	ev := frames[0].event(t)
	assert.Equal(t, pusher.EventError, ev.Event)
	var data struct{ Code int }
	require.NoError(t, json.Unmarshal(ev.Data, &data))
	assert.Equal(t, pusher.CodeUnauthorized, data.Code)
	assert.Equal(t, byte(0x88), frames[1].Op)
	assert.Equal(t, []byte{4009 >> 8, 4009 & 0xFF}, frames[1].Payload[:2])
}
