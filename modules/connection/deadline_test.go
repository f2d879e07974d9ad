package connection

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deadlineTransport honours write deadlines like a real socket to a dead
// peer: Write blocks until the latest deadline passes. The first
// SetWriteDeadline (the writer's) signals inSet and waits for release
// before it takes effect, so a test can run Finish in that window.
type deadlineTransport struct {
	fakeTransport
	inSet     chan struct{}
	release   chan struct{}
	finishSet chan struct{}

	dmu      sync.Mutex
	calls    int
	deadline time.Time
	changed  chan struct{} // closed and replaced on every deadline change
}

func newDeadlineTransport() *deadlineTransport {
	return &deadlineTransport{
		fakeTransport: *newFakeTransport(false),
		inSet:         make(chan struct{}),
		release:       make(chan struct{}),
		finishSet:     make(chan struct{}),
		changed:       make(chan struct{}),
	}
}

func (t *deadlineTransport) SetWriteDeadline(d time.Time) error {
	t.dmu.Lock()
	t.calls++
	call := t.calls
	t.dmu.Unlock()
	switch call {
	case 1:
		close(t.inSet)
		<-t.release
	case 2:
		defer close(t.finishSet)
	}
	t.dmu.Lock()
	defer t.dmu.Unlock()
	t.deadline = d
	close(t.changed)
	t.changed = make(chan struct{})
	return nil
}

func (t *deadlineTransport) Write([]byte) (int, error) {
	for {
		t.dmu.Lock()
		d, changed := t.deadline, t.changed
		t.dmu.Unlock()
		select {
		case <-time.After(time.Until(d)):
			return 0, &net.OpError{Op: "write", Err: errTimeout{}}
		case <-changed:
		case <-t.closed:
			return 0, net.ErrClosed
		}
	}
}

type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

func TestConnFinishGoneWinsOverTheWritersDeadline(t *testing.T) {
	// The reader's Finish(true) lands after the writer took its batch but
	// before the writer set its write deadline. The cut must still hold:
	// Finish may not wait DefaultSlowConsumerGrace for a dead peer.
	tr := newDeadlineTransport()
	c := New("1.1", testApp(), tr, Options{Log: discard})
	c.Send([]byte(`{"n":0}`))
	<-tr.inSet

	finished := make(chan struct{})
	go func() {
		c.Finish(true)
		close(finished)
	}()
	select {
	case <-tr.finishSet:
	case <-finished: // Finish no longer sets the deadline itself
	}
	close(tr.release)

	select {
	case <-finished:
	case <-time.After(DefaultSlowConsumerGrace / 5):
		t.Error("Finish(true) waited for a write to a dead peer")
		_ = tr.Close() // let the writer go
		<-finished
	}
}

func TestWriteGraceForProgress(t *testing.T) {
	tests := []struct {
		name     string
		readEach time.Duration // the peer reads a byte this often; 0: never
		wantSlow bool
	}{
		{"a peer that never reads", 0, true},
		{"a slow peer that keeps reading", 5 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, client := net.Pipe()
			defer client.Close()
			obs := &countingObserver{}
			c := New("1.1", testApp(), server, Options{Log: discard, Observer: obs, Limits: Limits{Grace: 50 * time.Millisecond}})
			defer c.Finish(true)
			frame := TextFrame([]byte(`{"event":"a","data":"0123456789012345678901234567890123456789"}`))
			read := make(chan int)
			if tt.readEach > 0 {
				go func() {
					n, b := 0, make([]byte, 1)
					for n < len(frame) {
						time.Sleep(tt.readEach)
						if _, err := client.Read(b); err != nil {
							break
						}
						n++
					}
					read <- n
				}()
			}
			c.SendFrame(frame) // 70 bytes, one byte per 5 ms: 350 ms, seven graces
			if tt.wantSlow {
				require.Eventually(t, func() bool { _, _, _, slow := obs.snapshot(); return len(slow) == 1 }, waitFor, time.Millisecond)
				_, err := client.Read(make([]byte, 1))
				assert.Error(t, err, "the transport is closed")
				return
			}
			assert.Equal(t, len(frame), <-read, "every byte arrived")
			_, _, _, slow := obs.snapshot()
			assert.Empty(t, slow)
		})
	}
}
