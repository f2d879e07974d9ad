package dispatcher_test

import (
	"context"
	"encoding/json"
	"errors"
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

// PublishCluster is Publish: the fake has no link to lose.
func (f *fakePubSub) PublishCluster(ctx context.Context, e scaling.Envelope) (int64, error) {
	return f.Publish(ctx, e)
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

// redisLike is a PubSubProvider whose link fails as scaling.Redis's does:
// while it is down, Publish delivers to this node alone and returns
// scaling.ErrLocalOnly, and PublishCluster delivers nothing and fails.
type redisLike struct {
	fakePubSub
	mu        sync.Mutex
	failAfter int // envelopes carried before the link fails; -1: down
	sent      []scaling.Envelope
	local     []scaling.Envelope
}

func (r *redisLike) Publish(_ context.Context, e scaling.Envelope) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.carry() {
		r.local = append(r.local, e)
		return 1, scaling.ErrLocalOnly
	}
	r.sent = append(r.sent, e)
	return 2, nil
}

func (r *redisLike) PublishCluster(_ context.Context, e scaling.Envelope) (int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.carry() {
		return 0, errors.New("the link is down")
	}
	r.sent = append(r.sent, e)
	return 2, nil
}

// carry reports whether the link carries one more envelope. Caller holds r.mu.
func (r *redisLike) carry() bool {
	if r.failAfter < 0 {
		return false
	}
	if r.failAfter <= len(r.sent) {
		r.failAfter = -1
		return false
	}
	return true
}

// linkUp brings the link back for good.
func (r *redisLike) linkUp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failAfter = 1 << 30
}

// cluster returns what reached every node, this one included.
func (r *redisLike) cluster() []scaling.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]scaling.Envelope(nil), r.sent...)
}

// localOnly returns what reached this node alone.
func (r *redisLike) localOnly() []scaling.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]scaling.Envelope(nil), r.local...)
}
