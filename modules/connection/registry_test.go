package connection

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
)

func TestRegistryAddRemoveCount(t *testing.T) {
	type op struct {
		remove bool
		conn   int // index into the test's sockets: 1.x of app-1, 2.x of app-2
	}
	tests := []struct {
		name string
		give []op
		want map[string]int
	}{
		{
			name: "add and remove",
			give: []op{{conn: 0}, {conn: 1}, {conn: 2}, {remove: true, conn: 0}},
			want: map[string]int{"app-1": 1, "app-2": 1},
		},
		{
			name: "removing twice or an unknown socket changes nothing",
			give: []op{{conn: 0}, {remove: true, conn: 0}, {remove: true, conn: 0}, {remove: true, conn: 1}},
			want: map[string]int{},
		},
		{
			name: "adding twice counts once",
			give: []op{{conn: 0}, {conn: 0}, {conn: 3}},
			want: map[string]int{"app-1": 1, "app-2": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app2 := testApp()
			app2.ID = "app-2"
			conns := []*Conn{
				newIdleConn(t, "1.0", testApp()),
				newIdleConn(t, "2.0", app2),
				newIdleConn(t, "1.1", testApp()),
				newIdleConn(t, "2.1", app2),
			}
			r := NewRegistry()
			ops := map[bool]func(c *Conn){
				false: func(c *Conn) { assert.NoError(t, r.Add(c)) },
				true:  r.Remove,
			}

			for _, o := range tt.give {
				ops[o.remove](conns[o.conn])
			}

			assert.Equal(t, tt.want, r.Counts())
			for _, appID := range []string{"app-1", "app-2", "other"} {
				assert.Equal(t, tt.want[appID], r.Count(appID), appID)
			}
		})
	}
}

func TestRegistryCountsIsACopy(t *testing.T) {
	r := NewRegistry()
	require.NoError(t, r.Add(newIdleConn(t, "1.1", testApp())))

	counts := r.Counts()
	counts["app-1"] = 99

	assert.Equal(t, 1, r.Count("app-1"))
}

// newIdleConn returns a Conn that writes into a fakeTransport.
func newIdleConn(t *testing.T, id string, app *apps.App) *Conn {
	t.Helper()
	c := New(id, app, newFakeTransport(false), Options{Log: discard})
	t.Cleanup(func() { c.Finish(true) })
	return c
}

// serve plays the WebSocket handler of c: it waits for the close frame the
// peer receives (the client would answer it), finishes c and removes it.
func serve(r *Registry, c *Conn, p *peer) <-chan []wsFrame {
	got := make(chan []wsFrame, 1)
	go func() {
		var frames []wsFrame
		defer func() { got <- frames }()
		for f := range p.frames {
			frames = append(frames, f)
			if f.op == opClose {
				c.Finish(false)
				r.Remove(c)
				return
			}
		}
	}()
	return got
}

func TestRegistryCloseAllDrainsEverySocket(t *testing.T) {
	r := NewRegistry()
	var served []<-chan []wsFrame
	for i := range 5 {
		c, p := newPipeConn(t, fmt.Sprintf("1.%d", i), testApp())
		require.NoError(t, r.Add(c))
		c.Send([]byte(`{"event":"hello"}`))
		served = append(served, serve(r, c, p))
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, r.CloseAll(ctx))

	assert.Zero(t, r.Count("app-1"), "CloseAll returned before every socket was removed")
	for _, s := range served {
		frames := <-s
		require.NotEmpty(t, frames)
		closing := frames[len(frames)-2:]
		code, msg := closing[0].pusherError(t)
		assert.Equal(t, pusher.CodeGeneric, code)
		assert.Equal(t, "Server is restarting", msg)
		assert.Equal(t, pusher.CodeGeneric, closing[1].code())
	}
	assert.ErrorIs(t, r.Add(newIdleConn(t, "9.9", testApp())), ErrDraining)
}

func TestRegistryCloseAllWithoutSockets(t *testing.T) {
	r := NewRegistry()
	require.NoError(t, r.CloseAll(context.Background()))
	assert.ErrorIs(t, r.Add(newIdleConn(t, "1.1", testApp())), ErrDraining)
}

func TestRegistryCloseAllAbortsWhenCtxEnds(t *testing.T) {
	r := NewRegistry()
	var peers []*peer
	for i := range 3 {
		// These handlers never finish: their sockets stay registered.
		c, p := newPipeConn(t, fmt.Sprintf("1.%d", i), testApp())
		require.NoError(t, r.Add(c))
		peers = append(peers, p)
		t.Cleanup(func() { r.Remove(c) })
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := r.CloseAll(ctx)

	require.ErrorIs(t, err, context.DeadlineExceeded)
	for _, p := range peers {
		select {
		case <-p.done: // the transport was cut
		case <-time.After(waitFor):
			t.Fatal("CloseAll left a transport open after its ctx ended")
		}
	}
	assert.Equal(t, 3, r.Count("app-1"))
}

func TestRegistryQueuedBytes(t *testing.T) {
	r := NewRegistry()
	var conns []*Conn
	var transports []*fakeTransport
	for _, id := range []string{"1.1", "2.2"} {
		tr := newFakeTransport(true) // the first write waits for release
		c := New(id, testApp(), tr, Options{Log: discard})
		require.NoError(t, r.Add(c))
		c.Send([]byte(`{"n":0}`))
		<-tr.entered // taken: the writer holds it, the queue is empty
		conns, transports = append(conns, c), append(transports, tr)
	}
	held, distinct := r.QueuedBytes()
	assert.Zero(t, held)
	assert.Zero(t, distinct)

	shared := TextFrame([]byte(`{"event":"to-both"}`))
	own := TextFrame([]byte(`{"event":"to-one"}`))
	conns[0].SendFrame(shared)
	conns[1].SendFrame(shared)
	conns[0].SendFrame(own)
	held, distinct = r.QueuedBytes()
	assert.Equal(t, 2*len(shared)+len(own), held, "every queue summed")
	assert.Equal(t, len(shared)+len(own), distinct, "the shared frame once")

	for i, c := range conns {
		transports[i].release()
		c.Finish(false)
	}
}
