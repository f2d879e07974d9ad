package channels

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

func TestShareSourceReportsThisNodesShare(t *testing.T) {
	m := NewManager()
	r := connection.NewRegistry()
	app1, app2 := testApp("app-1"), testApp("app-2")
	a, _ := newConn(t, "1.1", app1, "")
	b, _ := newConn(t, "1.2", app1, "")
	c, _ := newConn(t, "2.1", app2, "")
	for _, conn := range []*connection.Conn{a, b, c} {
		require.NoError(t, r.Add(conn))
	}
	info := json.RawMessage(`{"name":"Ann"}`)
	m.Subscribe(a, "presence-room", &pusher.Member{UserID: "u1", UserInfo: info})
	m.Subscribe(b, "presence-room", &pusher.Member{UserID: "u1", UserInfo: info})
	m.Subscribe(b, "news", nil)
	m.Subscribe(c, "presence-room", &pusher.Member{UserID: "u9"})
	s := NewShareSource(m, r)

	var got scaling.Share
	s.WithShare(func(share scaling.Share) { got = share })

	assert.Equal(t, map[string]int{"app-1": 2, "app-2": 1}, got.Connections)
	assert.ElementsMatch(t, []scaling.PresenceShare{
		{AppID: "app-1", Channel: "presence-room", UserID: "u1", Info: info, Sockets: 2},
		{AppID: "app-2", Channel: "presence-room", UserID: "u9", Sockets: 1},
	}, got.Presence)
}

func TestShareSourceWithShareExcludesChanges(t *testing.T) {
	s := NewShareSource(NewManager(), connection.NewRegistry())
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WithShare(func(scaling.Share) {
			close(entered)
			<-release
		})
	}()
	<-entered

	var changed atomic.Bool
	changeDone := make(chan struct{})
	go func() {
		defer close(changeDone)
		s.Change(func() { changed.Store(true) })
	}()
	assert.Never(t, changed.Load, 30*time.Millisecond, time.Millisecond, "a change ran during a re-assert")
	close(release)
	<-done
	<-changeDone

	assert.True(t, changed.Load())
}

func TestShareSourceChangesRunConcurrently(t *testing.T) {
	s := NewShareSource(NewManager(), connection.NewRegistry())
	inner := make(chan struct{})

	s.Change(func() {
		// A second change while the first runs must not wait for it.
		go s.Change(func() { close(inner) })
		select {
		case <-inner:
		case <-time.After(waitFor):
			t.Error("changes exclude each other")
		}
	})
}
