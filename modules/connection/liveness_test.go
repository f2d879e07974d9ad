package connection

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
)

const testPingInterval = 50 * time.Millisecond

func TestConnLivenessSilentClientIsClosed(t *testing.T) {
	timeout := []seen{
		{op: opText, event: "pusher:error", code: pusher.CodePongTimeout, msg: "Pong reply not received in time"},
		{op: opClose, code: pusher.CodePongTimeout},
	}
	tests := []struct {
		name string
		give func(c *Conn)
		want []seen
	}{
		{name: "pusher:ping", give: func(*Conn) {}, want: append([]seen{{op: opText, event: "pusher:ping"}}, timeout...)},
		{name: "control ping", give: (*Conn).UseControlPings, want: append([]seen{{op: opPing}}, timeout...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testApp()
			app.PingInterval = testPingInterval
			c, p := newPipeConn(t, "1.1", app)
			tt.give(c)

			got := p.untilClose(t)

			assert.Equal(t, tt.want, describeAll(t, got))
			assert.Equal(t, pusher.CodePongTimeout, c.CloseCode())
		})
	}
}

func TestConnLivenessAnsweredPingKeepsItOpen(t *testing.T) {
	app := testApp()
	app.PingInterval = testPingInterval
	c, p := newPipeConn(t, "1.1", app)

	for round := range 3 {
		f := p.next(t)
		require.Equal(t, pusher.EventPing, f.event(t), "round %d", round)
		c.Touch() // the client's pusher:pong
	}

	assert.Zero(t, c.CloseCode())
}

func TestConnLivenessActiveClientIsNotPinged(t *testing.T) {
	app := testApp()
	app.PingInterval = testPingInterval
	c, p := newPipeConn(t, "1.1", app)

	// Activity every few milliseconds, for several ping intervals.
	assert.Never(t, func() bool {
		c.Touch()
		return len(p.frames) > 0
	}, 6*testPingInterval, 5*time.Millisecond, "an active client got a frame")
	assert.Zero(t, c.CloseCode())
}

func TestPongWindow(t *testing.T) {
	tests := []struct {
		give time.Duration
		want time.Duration
	}{
		{give: testPingInterval, want: testPingInterval},
		{give: time.Minute, want: maxPongWindow},
	}
	for _, tt := range tests {
		t.Run(tt.give.String(), func(t *testing.T) {
			assert.Equal(t, tt.want, pongWindow(tt.give))
		})
	}
}
