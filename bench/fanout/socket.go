package fanout

import (
	"net"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

// socket is one client connection: a bounded queue of complete WebSocket
// frames and the long-lived writer goroutine that drains it.
type socket struct {
	mode Mode
	ws   *websocket.Conn
	nc   net.Conn

	mu     sync.Mutex
	queue  [][]byte
	spare  [][]byte
	closed bool
	wake   chan struct{} // capacity 1: "the queue is not empty"
	done   chan struct{} // closed when the writer has exited

	channels map[string]struct{} // reader only
}

func newSocket(mode Mode, ws *websocket.Conn) *socket {
	return &socket{
		mode:     mode,
		ws:       ws,
		nc:       ws.NetConn(),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		channels: make(map[string]struct{}),
	}
}

// start runs the writer goroutine; stop ends it.
func (c *socket) start() { go c.writeLoop() }

// stop lets the writer send what is queued (a close frame, say) within
// closeWait, then closes the connection.
func (c *socket) stop() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	<-c.done
	_ = c.nc.Close() // the socket is finished; a second close is harmless
}

// send queues a complete frame without blocking. A full queue is a slow
// consumer: the socket is closed.
func (c *socket) send(frame []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= QueueSize {
		c.closed = true
		c.mu.Unlock()
		_ = c.nc.Close() // the reader sees the error and cleans up
		return
	}
	c.queue = append(c.queue, frame)
	first := len(c.queue) == 1
	c.mu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// buffers holds coalescing buffers between writes.
var buffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 4096)
	return &b
}}

func (c *socket) writeLoop() {
	defer close(c.done)
	for range c.wake {
		c.mu.Lock()
		batch, closed := c.queue, c.closed
		c.queue, c.spare = c.spare, nil
		c.mu.Unlock()
		if len(batch) > 0 {
			timeout := writeTimeout
			if closed {
				timeout = closeWait
			}
			err := c.write(batch, timeout)
			clear(batch)
			c.mu.Lock()
			c.spare = batch[:0]
			c.mu.Unlock()
			if err != nil {
				_ = c.nc.Close() // the reader sees the error and cleans up
				return
			}
		}
		if closed {
			return
		}
	}
}

// write sends batch under one write deadline: with one write call
// (Coalesce) or one per frame (Frame).
func (c *socket) write(batch [][]byte, timeout time.Duration) error {
	if err := c.nc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if c.mode == Frame {
		for _, f := range batch {
			if _, err := c.nc.Write(f); err != nil {
				return err
			}
		}
		return nil
	}
	buf := buffers.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= 64<<10 {
			*buf = (*buf)[:0]
			buffers.Put(buf)
		}
	}()
	for _, f := range batch {
		*buf = append(*buf, f...)
	}
	_, err := c.nc.Write(*buf)
	return err
}

// WebSocket opcodes with FIN set.
const (
	opText  = 0x81
	opClose = 0x88
	opPong  = 0x8A
)

func textFrame(payload []byte) []byte { return appendFrame(nil, opText, payload) }

func controlFrame(op byte, payload []byte) []byte {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	return appendFrame(nil, op, payload)
}

// appendFrame frames payload as one unmasked server frame.
func appendFrame(b []byte, op byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, op, byte(n))
	case n <= 0xFFFF:
		b = append(b, op, 126, byte(n>>8), byte(n))
	default:
		u := uint64(n)
		b = append(b, op, 127, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
			byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
	return append(b, payload...)
}
