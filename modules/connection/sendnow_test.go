package connection

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
)

// TestSendNowWritesBeforeItReturns: an idle socket's frame is written by
// the caller itself, so no pool goroutine is started for it.
func TestSendNowWritesBeforeItReturns(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	c, tr := pooled(t, w, -1, false)
	for i, e := range []string{"one", "two"} {
		assert.True(t, c.SendNow(TextFrame([]byte(`{"event":"`+e+`"}`))), "the caller wrote")
		require.Len(t, tr.frames(t), i+1, "written when SendNow returns")
	}
	w.mu.Lock()
	assert.Zero(t, w.size, "no pool goroutine was needed")
	w.mu.Unlock()
	assert.Len(t, tr.Writes(), 2, "one write per frame")
}

// TestSendNowQueuesBehindAWriter: a socket whose writer is busy gets the
// frame queued behind what it is writing, in order.
func TestSendNowQueuesBehindAWriter(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	c, tr := pooled(t, w, -1, true)
	c.Send([]byte(`{"event":"first"}`)) // the pool's writer blocks in it
	<-tr.entered
	assert.False(t, c.SendNow(TextFrame([]byte(`{"event":"second"}`))), "queued")
	c.SendNow(TextFrame([]byte(`{"event":"third"}`)))
	assert.Empty(t, tr.Writes(), "SendNow did not write past the busy writer")
	tr.release()
	require.Eventually(t, func() bool { return len(tr.frames(t)) == 3 }, waitFor, time.Millisecond)
	got := tr.frames(t)
	for i, want := range []string{"first", "second", "third"} {
		assert.Equal(t, want, got[i].event(t), "frame %d", i)
	}
}

// TestSendNowDuringItsWrite: what comes for the socket while SendNow's
// own write is in flight follows it: frames from other goroutines, a
// close, or the end of the peer.
func TestSendNowDuringItsWrite(t *testing.T) {
	tests := []struct {
		name   string
		during func(c *Conn)
		want   []seen
	}{
		{"frames queued meanwhile follow it", func(c *Conn) {
			c.Send([]byte(`{"event":"second"}`))
			c.SendNow(TextFrame([]byte(`{"event":"third"}`)))
		}, []seen{{op: opText, event: "first"}, {op: opText, event: "second"}, {op: opText, event: "third"}}},
		{"a close meanwhile is written after it", func(c *Conn) {
			c.Close(pusher.Fatalf(pusher.CodeOverCapacity, "Over capacity"))
		}, []seen{{op: opText, event: "first"}, {op: opText, event: "pusher:error", code: 4100, msg: "Over capacity"}, {op: opClose, code: 4100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriters()
			w.Start()
			defer w.Stop()
			c, tr := pooled(t, w, -1, true)
			done := make(chan struct{})
			go func() {
				defer close(done)
				c.SendNow(TextFrame([]byte(`{"event":"first"}`)))
			}()
			<-tr.entered
			tt.during(c)
			tr.release()
			<-done
			require.Eventually(t, func() bool { return len(tr.frames(t)) == len(tt.want) }, waitFor, time.Millisecond)
			assert.Equal(t, tt.want, describeAll(t, tr.frames(t)))
		})
	}
}

// TestSendNowPeerGoneDuringItsWrite: Finish(true) while SendNow's write is
// in flight waits for that write (a non-blocking one: it ends at once on
// a socket) and nothing is written after it.
func TestSendNowPeerGoneDuringItsWrite(t *testing.T) {
	c, tr := pooled(t, nil, -1, true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.SendNow(TextFrame([]byte(`{"event":"first"}`)))
	}()
	<-tr.entered
	finished := make(chan struct{})
	go func() { c.Finish(true); close(finished) }()
	select {
	case <-finished:
		t.Fatal("Finish returned while SendNow's write was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	tr.release()
	select {
	case <-finished:
	case <-time.After(waitFor):
		t.Fatal("Finish did not return after the write ended")
	}
	<-done
	c.SendNow(TextFrame([]byte(`{"event":"late"}`)))
	c.SendFrame(TextFrame([]byte(`{"event":"later"}`)))
	time.Sleep(10 * time.Millisecond)
	assert.Len(t, tr.Writes(), 1, "nothing written after Finish")
}

// TestSendNowQueuesWhileThePoolIsBehind: while sockets wait for a pool
// goroutine (a burst is being written), SendNow queues even for an idle
// socket and leaves the CPU to the writers; once the pool has caught up,
// it writes at once again.
func TestSendNowQueuesWhileThePoolIsBehind(t *testing.T) {
	w := NewWriters()
	w.max = 1
	w.Start()
	defer w.Stop()
	busy, busyTr := pooled(t, w, -1, true)
	busy.Send([]byte(`{"event":"in flight"}`)) // holds the only pool goroutine
	<-busyTr.entered
	waiting, _ := pooled(t, w, -1, false)
	waiting.Send([]byte(`{"event":"waiting"}`)) // in line: the pool is behind
	idle, idleTr := pooled(t, w, -1, false)

	idle.SendNow(TextFrame([]byte(`{"event":"queued"}`)))
	assert.Empty(t, idleTr.Writes(), "queued behind the burst")
	busyTr.release()
	require.Eventually(t, func() bool { return len(idleTr.frames(t)) == 1 }, waitFor, time.Millisecond)
	require.Eventually(t, func() bool { return !w.isBehind() }, waitFor, time.Millisecond)

	idle.SendNow(TextFrame([]byte(`{"event":"at once"}`)))
	assert.Len(t, idleTr.frames(t), 2, "written when SendNow returns")
}
