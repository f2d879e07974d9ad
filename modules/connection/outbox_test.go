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
		op        string // push, close, take, finish, finish-gone, fail, claim, release
		frame     []byte
		wantStart bool // push, close; release: the claim's turn goes on
		wantSlow  bool
		wantOK    bool     // close, claim
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
		{"a claim writes to an idle socket", []step{
			{op: "claim", wantOK: true},
			{op: "release"},
			{op: "claim", wantOK: true}, // again, as each broadcast
			{op: "release"},
			{op: "push", frame: a, wantStart: true},
			{op: "take", wantBatch: [][]byte{a}},
			{op: "take"},
		}},
		{"no claim while frames wait or a writer runs", []step{
			{op: "push", frame: a, wantStart: true},
			{op: "claim"},
			{op: "take", wantBatch: [][]byte{a}},
			{op: "claim"}, // the writer has not ended its turn
			{op: "take"},
			{op: "claim", wantOK: true},
			{op: "release"},
		}},
		{"frames pushed during a claim go to the writer after it", []step{
			{op: "claim", wantOK: true},
			{op: "push", frame: a}, // the claim is the writer: none starts
			{op: "push", frame: b},
			{op: "release", wantStart: true},
			{op: "take", wantBatch: [][]byte{a, b}},
			{op: "take"},
		}},
		{"a close during a claim is written after it", []step{
			{op: "claim", wantOK: true},
			{op: "close", wantOK: true},
			{op: "release", wantStart: true},
			{op: "take", wantBatch: final, wantFinal: true},
			{op: "take"},
		}},
		{"a gone peer during a claim ends the turn", []step{
			{op: "claim", wantOK: true},
			{op: "push", frame: a},
			{op: "finish-gone"},
			{op: "release"},
		}},
		{"no claim once closing or closed", []step{
			{op: "close", wantOK: true, wantStart: true},
			{op: "claim"},
			{op: "take", wantBatch: final, wantFinal: true},
			{op: "take"},
			{op: "claim"},
			{op: "finish"},
			{op: "claim"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o outbox
			o.init(Limits{Grace: time.Hour, MaxBytes: 1 << 20})
			for i, s := range tt.steps {
				switch s.op {
				case "push":
					start, slow := o.push(s.frame)
					assert.Equal(t, s.wantStart, start, "step %d: start", i)
					assert.Equal(t, s.wantSlow, slow != "", "step %d: slow", i)
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
				case "claim":
					assert.Equal(t, s.wantOK, o.claim(), "step %d: claim", i)
				case "release":
					assert.Equal(t, s.wantStart, o.release(), "step %d: release", i)
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

func TestOutboxLimits(t *testing.T) {
	frame := []byte("0123456789") // 10 bytes
	tests := []struct {
		name     string
		limits   Limits
		pushes   int           // frames pushed, none taken, while a write waits
		pause    time.Duration // before the last push
		wantSlow string        // the last push's verdict
	}{
		{"a burst within the limits", Limits{Grace: time.Hour, MaxBytes: 10_000}, 1000, 0, ""},
		{"the frame that passes the byte cap", Limits{Grace: time.Hour, MaxBytes: 100}, 11, 0, "queued bytes over the cap"},
		{"the frame that reaches the cap exactly", Limits{Grace: time.Hour, MaxBytes: 100}, 10, 0, ""},
		{"a write stuck past the grace", Limits{Grace: time.Millisecond, MaxBytes: 1 << 20}, agePeriod, 5 * time.Millisecond, "a write waited for the peer longer than the grace period"},
		{"between age checks", Limits{Grace: time.Millisecond, MaxBytes: 1 << 20}, agePeriod - 1, 5 * time.Millisecond, ""},
		{"a write stuck within the grace", Limits{Grace: time.Hour, MaxBytes: 1 << 20}, agePeriod, 5 * time.Millisecond, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o outbox
			o.init(tt.limits)
			o.waiting(false)
			for range tt.pushes - 1 {
				_, slow := o.push(frame)
				require.Empty(t, slow)
			}
			time.Sleep(tt.pause)
			_, slow := o.push(frame)
			assert.Equal(t, tt.wantSlow, slow)
			assert.True(t, o.isOpen(), "slow is the caller's to act on")
		})
	}
}

func TestOutboxJudgesThePeerNotTheNode(t *testing.T) {
	var o outbox
	o.init(Limits{Grace: time.Millisecond, MaxBytes: 1 << 20})
	for range 10 * agePeriod {
		_, slow := o.push([]byte("x"))
		require.Empty(t, slow, "frames waiting for a writer to start wait for the node")
	}
	batch, _ := o.take()
	o.recycle(batch, false)
	assert.Zero(t, o.frames(func([]byte) {}), "take empties the queue")

	o.waiting(false) // the peer took part of a write
	time.Sleep(5 * time.Millisecond)
	o.waiting(true) // and then the rest
	for range 10 * agePeriod {
		_, slow := o.push([]byte("x"))
		require.Empty(t, slow, "a finished write is not held against the socket")
	}
}

func TestOutboxThrottle(t *testing.T) {
	var o outbox
	o.init(Limits{Grace: time.Hour, MaxBytes: 1 << 20})
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
