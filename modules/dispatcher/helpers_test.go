package dispatcher_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
	"github.com/fizz-server/fizz/scaling"
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
	c := connection.New(id, app, rec.Recorder, discard, false)
	if userID != "" {
		require.True(t, c.SetUserID(userID))
	}
	t.Cleanup(func() { c.Finish(true) })
	return c, rec
}

// fakePubSub is a PubSubProvider that records what is published and
// delivers nothing.
type fakePubSub struct {
	mu        sync.Mutex
	published []scaling.Envelope
	err       error // returned by Publish
}

var _ scaling.PubSubProvider = (*fakePubSub)(nil)

func (f *fakePubSub) Publish(_ context.Context, e scaling.Envelope) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return 0, f.err
	}
	f.published = append(f.published, e)
	return 1, nil
}

// setErr makes Publish fail with err (nil: succeed).
func (f *fakePubSub) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakePubSub) Reply(context.Context, string, scaling.Envelope) error { return nil }
func (f *fakePubSub) Node() string                                          { return "fake-node" }
func (f *fakePubSub) Subscribe(context.Context, func(context.Context, scaling.Envelope)) error {
	return nil
}
func (f *fakePubSub) Close() error { return nil }

// Published returns what was published so far.
func (f *fakePubSub) Published() []scaling.Envelope {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]scaling.Envelope(nil), f.published...)
}
