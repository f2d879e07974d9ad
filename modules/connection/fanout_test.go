package connection

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFanoutDeliversInOrder: sockets in several chunks get every frame of
// a run of broadcasts, and the frames sent to one of them directly in
// between, whole and in order, whether the pool runs or not.
func TestFanoutDeliversInOrder(t *testing.T) {
	tests := []struct {
		name    string
		sockets int
		start   bool // the pool runs
		room    int  // bytes each non-blocking write takes; -1: all
	}{
		{"one socket", 1, true, -1},
		{"one chunk", fanoutChunk, true, -1},
		{"several chunks", 2*fanoutChunk + 3, true, -1},
		{"partial writes", fanoutChunk + 1, true, 9},
		{"no pool", fanoutChunk + 1, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriters()
			w.max = 2
			if tt.start {
				w.Start()
			}
			defer w.Stop()
			conns := make([]*Conn, tt.sockets)
			trs := make([]*tryTransport, tt.sockets)
			for i := range conns {
				conns[i], trs[i] = pooled(t, w, tt.room, false)
			}
			const events = 20
			var want []string
			for e := range events {
				payload := fmt.Sprintf(`{"event":"broadcast","data":"%d"}`, e)
				frame := TextFrame([]byte(payload))
				var out Fanout
				for _, c := range conns {
					out.Send(c, frame)
				}
				out.Flush()
				want = append(want, payload)
				if e%5 == 4 {
					direct := fmt.Sprintf(`{"event":"direct","data":"%d"}`, e)
					conns[0].Send([]byte(direct))
					want = append(want, direct)
				}
			}
			size := func(payloads []string) (n int) {
				for _, p := range payloads {
					n += len(TextFrame([]byte(p)))
				}
				return n
			}
			var broadcast []string
			for _, p := range want {
				if strings.Contains(p, "broadcast") {
					broadcast = append(broadcast, p)
				}
			}
			for i, tr := range trs {
				n := size(broadcast)
				if i == 0 {
					n = size(want)
				}
				// Parse only once every byte is out: a partial write cuts frames.
				require.Eventually(t, func() bool { return len(bytes.Join(tr.Writes(), nil)) == n }, waitFor, time.Millisecond, "socket %d", i)
				for j, f := range tr.frames(t) {
					if i == 0 {
						assert.Equal(t, want[j], string(f.payload), "socket 0, frame %d", j)
					} else {
						assert.Equal(t, fmt.Sprintf(`{"event":"broadcast","data":"%d"}`, j), string(f.payload), "socket %d, frame %d", i, j)
					}
				}
			}
		})
	}
}

// TestFanoutCoalescesWhenBehind: frames broadcast while a socket's write
// is in flight wait in its queue and go out together in its next write.
func TestFanoutCoalescesWhenBehind(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	c, tr := pooled(t, w, -1, false)
	tr.hold = make(chan struct{})
	var out Fanout
	out.Send(c, TextFrame([]byte(`{"event":"first"}`)))
	out.Flush()
	<-tr.entered // the first write is in flight
	for i := range 3 {
		out.Send(c, TextFrame(fmt.Appendf(nil, `{"event":"behind %d"}`, i)))
		out.Flush()
	}
	close(tr.hold)
	done := make(chan struct{})
	defer close(done)
	go func() { // later writes signal entered too
		for {
			select {
			case <-tr.entered:
			case <-done:
				return
			}
		}
	}()
	require.Eventually(t, func() bool { return len(tr.frames(t)) == 4 }, waitFor, time.Millisecond)
	assert.Len(t, tr.Writes(), 2, "the three frames sent while the first write was in flight went out in one write")
}

// TestFanoutLoneFrameIsShared: a lone frame is written as it is, and a
// partial write copies what is left rather than keep the shared bytes.
func TestFanoutLoneFrameIsShared(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	frame := TextFrame([]byte(`{"event":"shared","data":"longer than one write"}`))
	keep := bytes.Clone(frame)
	c, tr := pooled(t, w, 5, false)
	other, otherTr := pooled(t, w, -1, false)
	var out Fanout
	out.Send(c, frame)
	out.Send(other, frame)
	out.Flush()
	for _, tr := range []*tryTransport{tr, otherTr} {
		require.Eventually(t, func() bool { return bytes.Equal(bytes.Join(tr.Writes(), nil), keep) }, waitFor, time.Millisecond)
	}
	assert.Equal(t, keep, frame, "the shared frame was not changed")
}

// TestFanoutSlowConsumer: a socket whose queue would pass its cap is
// closed with 4100; the others get the frame.
func TestFanoutSlowConsumer(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	frame := TextFrame([]byte(`{"event":"big","data":"0123456789"}`))
	stuck := &tryTransport{fakeTransport: newFakeTransport(true), room: 0}
	slow := New("1.1", testApp(), stuck, Options{Log: discard, Writers: w, Limits: Limits{MaxBytes: 2 * len(frame)}})
	t.Cleanup(func() { slow.Finish(true) })
	defer stuck.release() // a fake's write ignores deadlines: Finish would wait for it
	fine, fineTr := pooled(t, w, -1, false)
	for range 4 {
		var out Fanout
		out.Send(slow, frame)
		out.Send(fine, frame)
		out.Flush()
	}
	require.Eventually(t, func() bool { return len(fineTr.frames(t)) == 4 }, waitFor, time.Millisecond)
	assert.Equal(t, 4100, slow.CloseCode())
}

// TestFanoutStopRunsWaitingChunks: at Stop, a chunk still waiting for a
// pool goroutine is written elsewhere.
func TestFanoutStopRunsWaitingChunks(t *testing.T) {
	w, busyTr := busyPool(t)

	trs := make([]*tryTransport, 3)
	var out Fanout
	frame := TextFrame([]byte(`{"event":"waiting"}`))
	for i := range trs {
		var c *Conn
		c, trs[i] = pooled(t, w, -1, false)
		out.Send(c, frame)
	}
	out.Flush()
	w.mu.Lock()
	assert.Len(t, w.waiting, 1, "the three sockets wait as one job")
	w.mu.Unlock()

	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	for _, tr := range trs {
		require.Eventually(t, func() bool { return len(tr.frames(t)) == 1 }, waitFor, time.Millisecond)
	}
	close(busyTr.hold)
	select {
	case <-stopped:
	case <-time.After(waitFor):
		t.Fatal("Stop did not return after the write finished")
	}
}

// refillTransport is a tryTransport whose every non-blocking write first
// calls refill, as a broadcaster that keeps a socket busy would.
type refillTransport struct {
	*tryTransport
	refill func()
}

func (t *refillTransport) TryWrite(b []byte) (int, error) {
	t.refill()
	return t.tryTransport.TryWrite(b)
}

// TestFanoutBusySocketDoesNotHoldUpItsChunk: a socket that has more to
// write after each write lets the sockets after it in its chunk go first.
func TestFanoutBusySocketDoesNotHoldUpItsChunk(t *testing.T) {
	w := NewWriters()
	w.max = 1
	w.Start()
	defer w.Stop()
	var busy *Conn
	refills := 0
	busyTr := &refillTransport{tryTransport: &tryTransport{fakeTransport: newFakeTransport(false), room: -1}}
	busyTr.refill = func() {
		if refills < 1000 { // bounded: the writer would otherwise never run out
			refills++
			busy.Send([]byte(`{"event":"more"}`))
		}
	}
	busy = New("1.1", testApp(), busyTr, Options{Log: discard, Writers: w})
	t.Cleanup(func() { busy.Finish(true) })
	busyWrites := make(chan int, 1) // how many writes the busy socket had made when the quiet one's came
	quietTr := &refillTransport{tryTransport: &tryTransport{fakeTransport: newFakeTransport(false), room: -1}}
	quietTr.refill = func() {
		select {
		case busyWrites <- len(busyTr.Writes()):
		default:
		}
	}
	quiet := New("1.2", testApp(), quietTr, Options{Log: discard, Writers: w})
	t.Cleanup(func() { quiet.Finish(true) })

	var out Fanout
	frame := TextFrame([]byte(`{"event":"broadcast"}`))
	out.Send(busy, frame)
	out.Send(quiet, frame)
	out.Flush()
	select {
	case n := <-busyWrites:
		assert.Less(t, n, 10, "the quiet socket waited for the busy one to run dry")
	case <-time.After(waitFor):
		t.Fatal("the quiet socket was never written to")
	}
	require.Eventually(t, func() bool { return len(busyTr.frames(t)) == 1001 }, waitFor, time.Millisecond)
}
