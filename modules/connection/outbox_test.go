package connection

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestOutboxStates walks the outbox through its states: what push and
// close report, what the writer takes, and when it is done.
func TestOutboxStates(t *testing.T) {
	a, b, c := []byte("a"), []byte("b"), []byte("c")
	final := [][]byte{[]byte("error"), []byte("close")}
	type step struct {
		op        string // push, close, take, finish, finish-gone, fail
		frame     []byte
		wantStart bool
		wantFull  bool
		wantOK    bool     // close
		wantBatch [][]byte // take
		wantFinal bool     // take
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"one writer for many pushes", []step{
			{op: "push", frame: a, wantStart: true},
			{op: "push", frame: b},
			{op: "take", wantBatch: [][]byte{a, b}},
			{op: "push", frame: c},
			{op: "take", wantBatch: [][]byte{c}},
			{op: "take"}, // done
			{op: "push", frame: a, wantStart: true},
			{op: "take", wantBatch: [][]byte{a}},
			{op: "take"},
		}},
		{"close drops the queue for the final frames", []step{
			{op: "push", frame: a, wantStart: true},
			{op: "close", wantOK: true},
			{op: "push", frame: b},
			{op: "take", wantBatch: final, wantFinal: true},
			{op: "take"},
			{op: "close"}, // a second close does nothing
		}},
		{"close starts a writer when none runs", []step{
			{op: "close", wantOK: true, wantStart: true},
			{op: "take", wantBatch: final, wantFinal: true},
			{op: "take"},
		}},
		{"finish keeps the final frames for a peer still there", []step{
			{op: "close", wantOK: true, wantStart: true},
			{op: "finish"},
			{op: "take", wantBatch: final, wantFinal: true},
			{op: "take"},
		}},
		{"a gone peer gets nothing", []step{
			{op: "push", frame: a, wantStart: true},
			{op: "close", wantOK: true},
			{op: "finish-gone"},
			{op: "take"},
			{op: "push", frame: b},
		}},
		{"a failed write closes", []step{
			{op: "push", frame: a, wantStart: true},
			{op: "take", wantBatch: [][]byte{a}},
			{op: "fail"},
			{op: "push", frame: b},
			{op: "close"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o outbox
			o.init()
			for i, s := range tt.steps {
				switch s.op {
				case "push":
					start, full := o.push(s.frame)
					assert.Equal(t, s.wantStart, start, "step %d: start", i)
					assert.Equal(t, s.wantFull, full, "step %d: full", i)
				case "close":
					start, ok := o.close(4009, final)
					assert.Equal(t, s.wantStart, start, "step %d: start", i)
					assert.Equal(t, s.wantOK, ok, "step %d: ok", i)
				case "take":
					batch, isFinal := o.take()
					assert.Equal(t, s.wantBatch, batch, "step %d: batch", i)
					assert.Equal(t, s.wantFinal, isFinal, "step %d: final", i)
					if batch != nil {
						o.recycle(batch, isFinal)
					}
				case "finish":
					o.finish(false)
				case "finish-gone":
					o.finish(true)
					assert.True(t, o.isCut())
				case "fail":
					o.fail()
				default:
					t.Fatalf("unknown op %s", s.op)
				}
			}
			done := make(chan struct{})
			go func() { o.wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Second):
				t.Fatal("a writer is still counted after the steps")
			}
		})
	}
}

func TestOutboxFull(t *testing.T) {
	var o outbox
	o.init()
	start, _ := o.push([]byte("0"))
	require.True(t, start)
	for range QueueSize - 1 {
		_, full := o.push([]byte("x"))
		require.False(t, full)
	}
	_, full := o.push([]byte("over"))
	assert.True(t, full, "the frame after QueueSize")
	assert.True(t, o.isOpen(), "full is the caller's to act on")
	batch, _ := o.take()
	assert.Len(t, batch, QueueSize)
	o.recycle(batch, false)
	_, full = o.push([]byte("room again"))
	assert.False(t, full)
}

func TestOutboxThrottle(t *testing.T) {
	var o outbox
	o.init()
	for range QueueSize/2 + 1 {
		o.push([]byte("x"))
	}
	released := make(chan struct{})
	go func() { o.throttle(time.Minute); close(released) }()
	select {
	case <-released:
		t.Fatal("throttle returned with more than half the queue taken")
	case <-time.After(20 * time.Millisecond):
	}
	batch, _ := o.take()
	o.recycle(batch, false)
	<-released

	for range QueueSize/2 + 1 {
		o.push([]byte("x"))
	}
	start := time.Now()
	o.throttle(10 * time.Millisecond)
	assert.GreaterOrEqual(t, time.Since(start), 10*time.Millisecond, "waits for the timeout when nothing is taken")
}
