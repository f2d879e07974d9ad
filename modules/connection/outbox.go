package connection

import (
	"sync"
	"time"
)

// Outbox states.
const (
	stateOpen    = iota // frames are queued and written
	stateClosing        // the final frames are written; nothing else is queued
	stateClosed         // nothing is written: the reader has finished, or a write failed
)

// outbox is a socket's outbound queue and the state of its one writer:
//
//	open ──close──▶ closing ──finish──▶ closed
//	  └───────── finish, a failed write ──────┘
//
// While open, push queues frames; close swaps the queue for the final
// frames (an error and a close frame), which are written instead;
// finish ends it all (gone: the peer vanished, so even the final frames
// are dropped). At most one writer runs: push and close report when the
// caller must start one, take hands it each batch and reports when it is
// done, and fail stops it after a failed write. finish waits for it.
// Every method is safe for concurrent use.
type outbox struct {
	mu      sync.Mutex
	state   int
	queue   [][]byte
	spare   [][]byte // the writer's last batch, reused as the next queue
	final   [][]byte // written instead of the queue once closing
	code    int      // the close code, once closing
	writing bool     // a writer runs
	cut     bool     // finish(gone): no write may start
	limits  Limits
	bytes   int   // queued bytes
	stuck   int64 // unix nanoseconds since a write the peer has not taken yet; 0: none
	writers sync.WaitGroup
	watched bool          // throttle waits for the next take
	slow    bool          // judged a slow consumer (logged and counted once)
	taken   chan struct{} // signalled (cap 1) when the writer takes a batch that throttle waits for
}

// init readies a zero outbox (it lives inside its Conn).
func (o *outbox) init(l Limits) { o.taken, o.limits = make(chan struct{}, 1), l }

// agePeriod is how often push checks the age of a queue: every so many
// frames, so that a broadcast does not read the clock for every socket.
const agePeriod = 16

// push queues frame. It reports whether the caller must start the writer,
// and why the socket is a slow consumer, "" when it is not (frame is then
// dropped): the queue would pass limits.MaxBytes, or a write has waited
// for the peer longer than limits.Grace while frames queue behind it (a
// socket that waits for a pool goroutine waits for the node, not for
// its peer, and is not judged by time). Once closing, frames are
// dropped silently.
func (o *outbox) push(frame []byte) (start bool, slow string) {
	o.mu.Lock()
	switch {
	case o.state != stateOpen:
	case o.bytes+len(frame) > o.limits.MaxBytes:
		slow = "queued bytes over the cap"
	case len(o.queue)%agePeriod == agePeriod-1 && o.stuck != 0 && time.Now().UnixNano()-o.stuck > int64(o.limits.Grace):
		slow = "a write waited for the peer longer than the grace period"
	default:
		o.queue = append(o.queue, frame)
		o.bytes += len(frame)
		start = o.startLocked()
	}
	o.mu.Unlock()
	return start, slow
}

// waiting records that a write waits for the peer (from now, unless it
// already did), or with done that the peer took all it was given.
func (o *outbox) waiting(done bool) {
	o.mu.Lock()
	switch {
	case done:
		o.stuck = 0
	case o.stuck == 0:
		o.stuck = time.Now().UnixNano()
	}
	o.mu.Unlock()
}

// judgeSlow reports whether the socket is judged a slow consumer now for
// the first time.
func (o *outbox) judgeSlow() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	first := !o.slow
	o.slow = true
	return first
}

// frames calls f with each frame waiting to be taken, under the lock (f
// must be quick), and returns their bytes.
func (o *outbox) frames(f func([]byte)) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, frame := range o.queue {
		f(frame)
	}
	return o.bytes
}

// close drops the queue and makes frames the last ones written. It
// reports false when the outbox was not open (a second close does
// nothing), and whether the caller must start the writer.
func (o *outbox) close(code int, frames [][]byte) (start, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state != stateOpen {
		return false, false
	}
	o.state, o.code, o.final, o.queue, o.bytes = stateClosing, code, frames, nil, 0
	return o.startLocked(), true
}

// finish ends the outbox: nothing more is queued or taken, except the
// final frames when the peer is still there (the answer to its close
// frame must go out, RFC 6455 5.5.1). gone also stops any write from
// starting (cut). The caller then unblocks a write in progress and waits.
func (o *outbox) finish(gone bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.state = stateClosed
	o.queue, o.spare, o.bytes = nil, nil, 0
	if gone {
		o.final, o.cut = nil, true
	}
}

// wait waits until no writer runs.
func (o *outbox) wait() { o.writers.Wait() }

// startLocked reports whether a writer must be started, and counts it.
func (o *outbox) startLocked() bool {
	if o.writing || o.state == stateClosed {
		return false
	}
	o.writing = true
	o.writers.Add(1)
	return true
}

// claim makes the caller the writer of an idle outbox (open, nothing
// queued, no writer) and reports whether it did. The caller writes and
// then calls release.
func (o *outbox) claim() bool {
	o.mu.Lock()
	ok := o.state == stateOpen && !o.writing && len(o.queue) == 0
	if ok {
		o.writing = true
		o.writers.Add(1)
	}
	o.mu.Unlock()
	return ok
}

// release ends a claim's write. It reports true when frames came
// meanwhile: the turn goes on, and the caller must start the writer.
func (o *outbox) release() (more bool) {
	o.mu.Lock()
	more = o.final != nil || (o.state != stateClosed && len(o.queue) > 0)
	if !more {
		o.writing = false
	}
	o.mu.Unlock()
	if !more {
		o.writers.Done()
	}
	return more
}

// take hands the writer its next batch: the final frames once closing
// (final is true), else every queued frame. A nil batch means the writer
// is done and must exit.
func (o *outbox) take() (batch [][]byte, final bool) {
	o.mu.Lock()
	switch {
	case o.final != nil:
		batch, o.final, final = o.final, nil, true
	case o.state == stateClosed:
	case len(o.queue) > 0:
		batch = o.queue
		o.queue, o.spare, o.bytes = o.spare, nil, 0
	}
	if batch == nil {
		o.writing = false
	}
	signal := o.watched && batch != nil
	if signal {
		o.watched = false
	}
	o.mu.Unlock()
	if batch == nil {
		o.writers.Done()
		return nil, false
	}
	if signal {
		select {
		case o.taken <- struct{}{}:
		default:
		}
	}
	return batch, final
}

// recycle keeps a written batch's slice as the next queue.
func (o *outbox) recycle(batch [][]byte, final bool) {
	if final {
		return
	}
	clear(batch)
	o.mu.Lock()
	if o.spare == nil && cap(batch) <= QueueSize {
		o.spare = batch[:0]
	}
	o.mu.Unlock()
}

// fail records a failed write: the outbox is closed and the writer exits.
func (o *outbox) fail() {
	o.mu.Lock()
	o.state = stateClosed
	o.writing = false
	o.mu.Unlock()
	o.writers.Done()
}

// isCut reports whether finish(true) forbade writes.
func (o *outbox) isCut() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cut
}

// isOpen reports whether frames are still queued.
func (o *outbox) isOpen() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state == stateOpen
}

// closeCode returns the code the outbox was closed with, or 0.
func (o *outbox) closeCode() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.code
}

// throttle waits, at most timeout, while more than half of the queue is
// taken and the outbox is open.
func (o *outbox) throttle(timeout time.Duration) {
	var expired <-chan time.Time
	for {
		o.mu.Lock()
		backlog, open := len(o.queue), o.state == stateOpen
		o.watched = backlog > QueueSize/2 && open
		o.mu.Unlock()
		if backlog <= QueueSize/2 || !open {
			return
		}
		if expired == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-o.taken:
		case <-expired:
			return
		}
	}
}
