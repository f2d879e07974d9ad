package channels

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
)

const waitFor = 5 * time.Second

func testApp(id string) *apps.App {
	return &apps.App{ID: id, Key: id + "-key", PingInterval: time.Hour, MaxPresenceMembers: 100}
}

// recorder is the transport of a test socket: it decodes every text frame
// written to it and keeps the payloads.
type recorder struct {
	mu       sync.Mutex
	payloads []string
	closed   chan struct{}
	once     sync.Once
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
		r.payloads = append(r.payloads, string(p))
	}
	return len(b), nil
}

// Payloads returns every payload received so far.
func (r *recorder) Payloads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.payloads...)
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

// newConn returns a socket of app that records what it is sent, and
// optionally belongs to userID.
func newConn(t *testing.T, id string, app *apps.App, userID string) (*connection.Conn, *recorder) {
	t.Helper()
	rec := &recorder{closed: make(chan struct{})}
	c := connection.New(id, app, rec, slog.New(slog.DiscardHandler), false)
	if userID != "" {
		require.True(t, c.SetUserID(userID))
	}
	t.Cleanup(func() { c.Finish(true) })
	return c, rec
}

// eventually waits until rec holds want payloads and returns them.
func eventually(t *testing.T, rec *recorder, want int) []string {
	t.Helper()
	require.Eventually(t, func() bool { return len(rec.Payloads()) >= want }, waitFor, time.Millisecond,
		"got %d payloads, want %d", len(rec.Payloads()), want)
	return rec.Payloads()
}
