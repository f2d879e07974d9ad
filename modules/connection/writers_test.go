package connection

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pooled returns a Conn over a fake transport whose writers run on w.
func pooled(t *testing.T, w *Writers, blockFirst bool) (*Conn, *fakeTransport) {
	t.Helper()
	tr := newFakeTransport(blockFirst)
	c := New("1.1", testApp(), tr, discard, false)
	c.writerSet = w
	t.Cleanup(func() { c.Finish(true) })
	return c, tr
}

func TestWritersRunQueuedFrames(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	c, tr := pooled(t, w, false)
	c.Send([]byte(`{"event":"one"}`))
	c.Send([]byte(`{"event":"two"}`))
	require.Eventually(t, func() bool { return len(tr.frames(t)) == 2 }, waitFor, time.Millisecond)

	// The writer went back to the pool and serves the next burst.
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.idle) == 1 && w.size == 1
	}, waitFor, time.Millisecond)
	c.Send([]byte(`{"event":"three"}`))
	require.Eventually(t, func() bool { return len(tr.frames(t)) == 3 }, waitFor, time.Millisecond)
	w.mu.Lock()
	assert.Equal(t, 1, w.size, "an idle pool writer was reused, not a new one started")
	w.mu.Unlock()
}

func TestWritersSlowSocketDoesNotHoldUpAnother(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	slow, slowTr := pooled(t, w, true) // its first write blocks
	slow.Send([]byte(`{"event":"stuck"}`))
	<-slowTr.entered

	fast, fastTr := pooled(t, w, false)
	fast.Send([]byte(`{"event":"quick"}`))
	require.Eventually(t, func() bool { return len(fastTr.frames(t)) == 1 }, waitFor, time.Millisecond,
		"a socket waited for a pool writer stuck on another socket")
	slowTr.release()
	require.Eventually(t, func() bool { return len(slowTr.frames(t)) == 1 }, waitFor, time.Millisecond)
}

func TestWritersBeforeStartAndAfterStop(t *testing.T) {
	tests := []struct {
		name string
		give func(*Writers)
	}{
		{"never started", func(*Writers) {}},
		{"stopped", func(w *Writers) { w.Start(); w.Stop() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriters()
			tt.give(w)
			c, tr := pooled(t, w, false)
			c.Send([]byte(`{"event":"own goroutine"}`))
			require.Eventually(t, func() bool { return len(tr.frames(t)) == 1 }, waitFor, time.Millisecond)
		})
	}
}

func TestWritersStopWaitsForBusyWriters(t *testing.T) {
	w := NewWriters()
	w.Start()
	c, tr := pooled(t, w, true)
	c.Send([]byte(`{"event":"in flight"}`))
	<-tr.entered
	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a pool writer was still writing")
	case <-time.After(50 * time.Millisecond):
	}
	tr.release()
	select {
	case <-stopped:
	case <-time.After(waitFor):
		t.Fatal("Stop did not return after the write finished")
	}
	assert.Len(t, tr.frames(t), 1)
}
