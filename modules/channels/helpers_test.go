package channels

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
)

const waitFor = 5 * time.Second

func testApp(id string) *apps.App {
	return &apps.App{ID: id, Key: id + "-key", PingInterval: time.Hour, MaxPresenceMembers: 100}
}

// recorder is the transport of a test socket: it keeps every frame.
type recorder = connectiontest.Recorder

// newConn returns a socket of app that records what it is sent, and
// optionally belongs to userID.
func newConn(t *testing.T, id string, app *apps.App, userID string) (*connection.Conn, *recorder) {
	t.Helper()
	rec := connectiontest.NewRecorder()
	c := connection.New(id, app, rec, connection.Options{Log: slog.New(slog.DiscardHandler)})
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
