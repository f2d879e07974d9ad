package connection

import (
	"errors"
	"os"
	"time"
)

// The write path. A socket's writer drains its outbox, coalescing every
// queued frame into one write. It runs on the node's Writers pool, where
// it never waits for the peer (writePooled), or on a goroutine of the
// socket's own, which may (writeOwn): when the pool is not running, when
// the transport cannot write without waiting, and when the peer's socket
// buffer is full, so that one slow peer never holds a pool goroutine.
// spawn is the one place that goroutine starts. A frame sent with SendNow
// to an idle socket is written by the sender itself (writeNow), which
// never waits for the peer either.

// startWriter runs the writer the outbox asked for: on the pool when it
// takes it, else on a goroutine of its own.
func (c *Conn) startWriter() {
	if c.tryWrite != nil && c.pool != nil && c.pool.offer((*pooledWriter)(c)) {
		return
	}
	c.spawn(nil)
}

// spawn runs the writer on a goroutine of its own, after writing rest
// (what a write on the pool left over; nil for none).
func (c *Conn) spawn(rest *leftover) { go c.writeOwn(rest) }

// writeNow writes frame to a socket whose outbox the caller claimed,
// without waiting for the peer: what the kernel does not take goes on
// on a goroutine of the socket's own, and frames queued meanwhile go to
// the writer.
func (c *Conn) writeNow(frame []byte) {
	sent, err := c.tryWrite(frame, true)
	if err == nil && sent < len(frame) {
		buf := getBuffer()
		*buf = append(*buf, frame...)
		c.out.waiting(false)
		c.spawn(&leftover{buf: buf, sent: sent, frames: 1})
		return
	}
	if c.wrote(1, len(frame), false, err) && c.out.release() {
		c.startWriter()
	}
}

// leftover is the unwritten tail of a batch that a non-blocking write
// could not finish.
type leftover struct {
	buf    *[]byte
	sent   int // bytes of *buf already written
	frames int
	final  bool
}

// pooledWriter is a Conn's writer as a job of the Writers pool.
type pooledWriter Conn

func (w *pooledWriter) run()    { (*Conn)(w).writePooled() }
func (w *pooledWriter) detach() { (*Conn)(w).spawn(nil) }

// writePooled writes batches without waiting for the peer. It hands the
// socket to a goroutine of its own when the peer cannot take a whole
// batch, and goes to the back of the pool's line between batches when
// other sockets wait.
func (c *Conn) writePooled() {
	for {
		buf, frames, final, ok := c.nextBatch()
		if !ok {
			return
		}
		size := len(*buf)
		sent, err := c.tryWrite(*buf, false)
		if err == nil && sent < size {
			c.out.waiting(false)
			c.spawn(&leftover{buf: buf, sent: sent, frames: frames, final: final})
			return
		}
		putBuffer(buf)
		if !c.wrote(frames, size, final, err) {
			return
		}
		if c.pool.yield((*pooledWriter)(c)) {
			return // back of the line: the sockets waiting go first
		}
	}
}

// writeOwn finishes rest, then writes batches, waiting for the peer at
// most limits.Grace for progress, until the outbox has nothing left.
func (c *Conn) writeOwn(rest *leftover) {
	if rest != nil {
		size := len(*rest.buf)
		err := c.writeAll((*rest.buf)[rest.sent:])
		putBuffer(rest.buf)
		if !c.wrote(rest.frames, size, rest.final, err) {
			return
		}
	}
	for {
		buf, frames, final, ok := c.nextBatch()
		if !ok {
			return
		}
		size := len(*buf)
		err := c.writeAll(*buf)
		putBuffer(buf)
		if !c.wrote(frames, size, final, err) {
			return
		}
	}
}

// nextBatch takes the outbox's next batch and joins its frames into one
// pooled buffer. ok is false when the writer is done.
func (c *Conn) nextBatch() (buf *[]byte, frames int, final, ok bool) {
	batch, final := c.out.take()
	if batch == nil {
		return nil, 0, false, false
	}
	buf = getBuffer()
	for _, f := range batch {
		*buf = append(*buf, f...)
	}
	c.out.recycle(batch, final)
	return buf, len(batch), final, true
}

// wrote records a write's outcome and reports whether the writer goes on:
// a failed write closes the outbox and the transport, and the reader then
// finishes.
func (c *Conn) wrote(frames, size int, final bool, err error) bool {
	if err != nil {
		c.out.fail()
		_ = c.transport.Close()
		return false
	}
	if c.observer != nil {
		c.observer.MessagesSent(frames, size)
	}
	if final {
		// Our close frame is out: the client answers with its own, or
		// the reader gives up after CloseGrace.
		_ = c.transport.SetReadDeadline(time.Now().Add(CloseGrace))
	}
	return true
}

// writeAll writes b, waiting for the peer while it makes progress: a
// write that moves no byte for limits.Grace fails, and the socket is
// then a slow consumer.
func (c *Conn) writeAll(b []byte) error {
	c.out.waiting(false)
	for {
		if err := c.transport.SetWriteDeadline(time.Now().Add(c.out.limits.Grace)); err != nil {
			return err
		}
		// Finish(true) may have set its past deadline just before ours; it
		// cuts the outbox first, so checking after our deadline closes the gap.
		if c.out.isCut() {
			return errPeerGone
		}
		n, err := c.transport.Write(b)
		b = b[n:]
		if err == nil {
			c.out.waiting(true)
		}
		switch {
		case err == nil && c.tryWrite != nil:
			// Non-blocking writes check the deadline too: lift it.
			return c.transport.SetWriteDeadline(time.Time{})
		case err == nil:
			return nil
		case n > 0 && errors.Is(err, os.ErrDeadlineExceeded):
			continue // slow, but moving
		case errors.Is(err, os.ErrDeadlineExceeded) && !c.out.isCut():
			c.slowConsumer("a write made no progress for the grace period")
		}
		return err
	}
}

// errPeerGone ends a write that would start after Finish(true).
var errPeerGone = errors.New("connection: peer gone")
