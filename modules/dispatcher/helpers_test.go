package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/scaling"
)

const waitFor = 5 * time.Second

var discard = slog.New(slog.DiscardHandler)

func testApp(id string) *apps.App {
	return &apps.App{ID: id, Key: id + "-key", Secret: "secret", PingInterval: time.Hour}
}

// frame is one WebSocket frame a test socket was sent.
type frame struct {
	op      byte
	payload []byte
}

// event decodes a text frame's Pusher event.
func (f frame) event(t *testing.T) (ev struct {
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	UserID  string          `json:"user_id"`
}) {
	t.Helper()
	require.NoError(t, json.Unmarshal(f.payload, &ev), "frame %q", f.payload)
	return ev
}

// recorder is the transport of a test socket: it decodes and keeps every
// frame written to it.
type recorder struct {
	mu     sync.Mutex
	frames []frame
	closed chan struct{}
	once   sync.Once
}

func (r *recorder) Write(b []byte) (int, error) {
	rd := bytes.NewReader(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	for rd.Len() > 0 {
		var h [2]byte
		_, _ = io.ReadFull(rd, h[:])
		n := int(h[1] & 0x7F)
		switch n {
		case 126:
			var ext [2]byte
			_, _ = io.ReadFull(rd, ext[:])
			n = int(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			_, _ = io.ReadFull(rd, ext[:])
			n = int(binary.BigEndian.Uint64(ext[:]))
		}
		p := make([]byte, n)
		_, _ = io.ReadFull(rd, p)
		r.frames = append(r.frames, frame{op: h[0], payload: p})
	}
	return len(b), nil
}

// Frames returns every frame received so far.
func (r *recorder) Frames() []frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]frame(nil), r.frames...)
}

// wait returns the frames once there are at least n.
func (r *recorder) wait(t *testing.T, n int) []frame {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.Frames()) >= n }, waitFor, time.Millisecond,
		"got %d frames, want %d", len(r.Frames()), n)
	return r.Frames()
}

func (r *recorder) Read([]byte) (int, error) { <-r.closed; return 0, io.EOF }
func (r *recorder) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}
func (r *recorder) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r *recorder) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r *recorder) SetDeadline(time.Time) error      { return nil }
func (r *recorder) SetReadDeadline(time.Time) error  { return nil }
func (r *recorder) SetWriteDeadline(time.Time) error { return nil }

// newConn returns a socket of app that records what it is sent and, when
// userID is set, belongs to that user.
func newConn(t *testing.T, id string, app *apps.App, userID string) (*connection.Conn, *recorder) {
	t.Helper()
	rec := &recorder{closed: make(chan struct{})}
	c := connection.New(id, app, rec, discard, false)
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
