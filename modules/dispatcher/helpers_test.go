package dispatcher_test

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
	"github.com/fizz-server/fizz/scaling/scalingtest"
)

const waitFor = 5 * time.Second

var discard = slog.New(slog.DiscardHandler)

func testApp(id string) *apps.App {
	return &apps.App{ID: id, Key: id + "-key", Secret: "secret", PingInterval: time.Hour}
}

// frame is one WebSocket frame a test socket was sent.
type frame struct{ connectiontest.Frame }

// event decodes a text frame's Pusher event.
func (f frame) event(t *testing.T) (ev struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  string          `json:"user_id"`
}) {
	t.Helper()
	require.NoError(t, json.Unmarshal(f.Payload, &ev), "frame %q", f.Payload)
	return ev
}

// recorder is the transport of a test socket: it keeps every frame.
type recorder struct{ *connectiontest.Recorder }

// Frames returns every frame received so far.
func (r *recorder) Frames() []frame {
	var out []frame
	for _, f := range r.Recorder.Frames() {
		out = append(out, frame{f})
	}
	return out
}

// wait returns the frames once there are at least n.
func (r *recorder) wait(t *testing.T, n int) []frame {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.Frames()) >= n }, waitFor, time.Millisecond,
		"got %d frames, want %d", len(r.Frames()), n)
	return r.Frames()
}

// newConn returns a socket of app that records what it is sent and, when
// userID is set, belongs to that user.
func newConn(t *testing.T, id string, app *apps.App, userID string) (*connection.Conn, *recorder) {
	t.Helper()
	rec := &recorder{connectiontest.NewRecorder()}
	c := connection.New(id, app, rec.Recorder, connection.Options{Log: discard})
	if userID != "" {
		require.True(t, c.SetUserID(userID))
	}
	t.Cleanup(func() { c.Finish(true) })
	return c, rec
}

// lone returns a node of a new bus that never subscribes: what is
// published through it reaches no node, and its Published lists it.
func lone(t *testing.T) *scalingtest.Provider {
	t.Helper()
	p := scalingtest.NewBus().Node()
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}
