// Package connectiontest provides transports that stand in for a socket's
// net.Conn in tests and benchmarks of code built on connection.Conn: a
// Recorder that decodes every frame written to it and a Counter that only
// counts bytes. Both are safe for concurrent use.
package connectiontest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Frame is one WebSocket frame a socket was sent.
type Frame struct {
	Op      byte // with the FIN bit: 0x81 text, 0x88 close, 0x89 ping, 0x8A pong
	Payload []byte
}

// Recorder is a transport that decodes and keeps every frame written to it.
// Reads block until Close.
type Recorder struct {
	mu     sync.Mutex
	frames []Frame
	closed chan struct{}
	once   sync.Once
	tries  atomic.Int64
}

var _ net.Conn = (*Recorder)(nil)

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{closed: make(chan struct{})} }

// Write decodes the unmasked server frames in b.
func (r *Recorder) Write(b []byte) (int, error) {
	rd := bytes.NewReader(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	for rd.Len() > 0 {
		var h [2]byte
		if _, err := io.ReadFull(rd, h[:]); err != nil {
			return 0, err
		}
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var ext [2]byte
			if _, err := io.ReadFull(rd, ext[:]); err != nil {
				return 0, err
			}
			n = uint64(binary.BigEndian.Uint16(ext[:]))
		case 127:
			var ext [8]byte
			if _, err := io.ReadFull(rd, ext[:]); err != nil {
				return 0, err
			}
			n = binary.BigEndian.Uint64(ext[:])
		}
		if n > uint64(rd.Len()) {
			return 0, io.ErrUnexpectedEOF
		}
		p := make([]byte, n)
		_, _ = io.ReadFull(rd, p) // length checked above
		r.frames = append(r.frames, Frame{Op: h[0], Payload: p})
	}
	return len(b), nil
}

// TryWrite is Write: a Recorder always has room, like a socket whose peer
// keeps up, so Conns over it write on the writer pool as TCP sockets do.
func (r *Recorder) TryWrite(b []byte) (int, error) {
	r.tries.Add(1)
	return r.Write(b)
}

// TryWrites returns how many writes were made without waiting (TryWrite):
// without a writer pool, only Conn.SendNow makes them; a socket's own
// writer waits (Write).
func (r *Recorder) TryWrites() int64 { return r.tries.Load() }

// Frames returns every frame received so far.
func (r *Recorder) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Frame(nil), r.frames...)
}

// Payloads returns the payload of every frame received so far.
func (r *Recorder) Payloads() []string {
	frames := r.Frames()
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f.Payload)
	}
	return out
}

// Read blocks until Close, then reports EOF.
func (r *Recorder) Read([]byte) (int, error) { <-r.closed; return 0, io.EOF }

// Close ends pending Reads.
func (r *Recorder) Close() error {
	r.once.Do(func() { close(r.closed) })
	return nil
}

// LocalAddr, RemoteAddr and the deadline setters do nothing.
func (r *Recorder) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r *Recorder) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r *Recorder) SetDeadline(time.Time) error      { return nil }
func (r *Recorder) SetReadDeadline(time.Time) error  { return nil }
func (r *Recorder) SetWriteDeadline(time.Time) error { return nil }

// Counter is a transport that discards what is written to it and counts
// the bytes, for benchmarks. Its other methods do nothing.
type Counter struct {
	net.Conn
	written atomic.Int64
	writes  atomic.Int64
}

// Write counts b.
func (c *Counter) Write(b []byte) (int, error) {
	c.written.Add(int64(len(b)))
	c.writes.Add(1)
	return len(b), nil
}

// TryWrite is Write: Conns over a Counter write on the writer pool, as
// TCP sockets do.
func (c *Counter) TryWrite(b []byte) (int, error) { return c.Write(b) }

// Written returns the bytes written so far.
func (c *Counter) Written() int64 { return c.written.Load() }

// Writes returns how many writes there were.
func (c *Counter) Writes() int64 { return c.writes.Load() }

// Close, SetWriteDeadline and SetReadDeadline do nothing.
func (c *Counter) Close() error                     { return nil }
func (c *Counter) SetWriteDeadline(time.Time) error { return nil }
func (c *Counter) SetReadDeadline(time.Time) error  { return nil }
