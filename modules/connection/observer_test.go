package connection

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// countingObserver records what a Conn reports.
type countingObserver struct {
	mu     sync.Mutex
	writes int
	frames int
	bytes  int
	slow   []string
}

func (o *countingObserver) MessagesSent(frames, bytes int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes++
	o.frames += frames
	o.bytes += bytes
}

func (o *countingObserver) SlowConsumer(appID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.slow = append(o.slow, appID)
}

func (o *countingObserver) snapshot() (writes, frames, bytes int, slow []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writes, o.frames, o.bytes, append([]string(nil), o.slow...)
}

func TestObserverCountsEachWriteBatch(t *testing.T) {
	obs := &countingObserver{}
	r := NewRegistry()
	tr := newFakeTransport(true)
	c := New("1.1", testApp(), tr, Options{Log: discard, Observer: obs})
	t.Cleanup(func() { c.Finish(true) })
	require.NoError(t, r.Add(c))

	c.Send([]byte(`{"n":0}`))
	<-tr.entered // the writer is blocked in its first Write
	const queued = 20
	for i := 1; i <= queued; i++ {
		c.Send(fmt.Appendf(nil, `{"n":%d}`, i))
	}
	tr.release()

	require.Eventually(t, func() bool { return len(tr.frames(t)) == queued+1 }, waitFor, time.Millisecond)
	require.Eventually(t, func() bool { w, _, _, _ := obs.snapshot(); return w == 2 }, waitFor, time.Millisecond)
	writes, frames, n, slow := obs.snapshot()
	assert.Equal(t, 2, writes, "one report per write, not per frame")
	assert.Equal(t, queued+1, frames)
	assert.Equal(t, len(bytes.Join(tr.Writes(), nil)), n, "bytes as written, framing included")
	assert.Empty(t, slow)
}

func TestObserverHearsSlowConsumer(t *testing.T) {
	obs := &countingObserver{}
	r := NewRegistry()
	tr := newFakeTransport(true)
	c := New("1.1", testApp(), tr, Options{Log: discard, Observer: obs, Limits: Limits{MaxBytes: 64}})
	require.NoError(t, r.Add(c))

	c.Send([]byte(`{"n":0}`))
	<-tr.entered
	for i := 0; i <= QueueSize; i++ { // far more than 64 bytes
		c.Send([]byte(`{}`))
	}
	tr.release()
	c.Finish(false)

	_, _, _, slow := obs.snapshot()
	assert.Equal(t, []string{"app-1"}, slow)
}

func TestConnWithoutObserver(t *testing.T) {
	// A Conn never added to an observed Registry reports nothing and works.
	c, p := newPipeConn(t, "1.1", testApp())
	c.Send([]byte(`{"n":1}`))
	assert.JSONEq(t, `{"n":1}`, string(p.next(t).payload))
}

func TestSlowConsumerCountedOnce(t *testing.T) {
	obs := &countingObserver{}
	c := New("1.1", testApp(), newFakeTransport(false), Options{Log: discard, Observer: obs})
	defer c.Finish(true)
	c.slowConsumer("a write made no progress for the grace period")
	c.closeSlowConsumer("a write waited for the peer longer than the grace period")
	_, _, _, slow := obs.snapshot()
	assert.Equal(t, []string{"app-1"}, slow, "the writer and a sender judged it at once: one count")
}
