package connection

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
)

const (
	// QueueSize bounds the frames waiting for one socket. A socket whose
	// queue is full is a slow consumer and is closed with 4100.
	QueueSize = 256
	// WriteTimeout bounds one write to a socket.
	WriteTimeout = 10 * time.Second
	// CloseGrace is how long a socket may take to answer our close frame
	// before the reader gives up on it.
	CloseGrace = 2 * time.Second
	// maxPongWindow caps the wait for an answer to the server's ping.
	maxPongWindow = 30 * time.Second
)

// Conn state, guarded by Conn.mu.
const (
	stateOpen    = iota // sending and receiving
	stateClosing        // final frames queued; nothing else is sent
	stateClosed         // the reader has finished; nothing is sent
)

// Conn is one client socket of one app. It mirrors Reverb's Connection.
type Conn struct {
	id        string
	app       *apps.App
	transport net.Conn
	tryWrite  func([]byte) (int, error) // nil: the transport cannot write without waiting
	log       *slog.Logger
	debug     bool

	mu        sync.Mutex
	state     int
	queue     [][]byte
	spare     [][]byte // the writer's last batch, reused as the next queue
	final     [][]byte // written instead of the queue once closing
	writing   bool     // a writer goroutine runs
	writers   sync.WaitGroup
	taken     chan struct{} // signalled (cap 1) when the writer takes a batch
	cut       bool          // Finish(true): the peer is gone, no write may start
	closeCode int
	userID    string
	onClose   []func()
	observer  Observer // set by Registry.Add; nil: nothing observed
	writerSet *Writers // set by Registry.Add; nil: a goroutine per writer

	lastActivity atomic.Int64 // unix nanoseconds of the last frame received
	pingSentAt   atomic.Int64 // unix nanoseconds, 0 when no ping is pending
	controlPings atomic.Bool  // the client speaks WebSocket ping frames
	timer        *time.Timer

	// Owned by the reader goroutine.
	tokens     float64
	tokensAt   time.Time
	channelSet map[string]struct{}
}

// New returns an open Conn for transport and starts its liveness timer.
// The caller runs the read loop and calls Finish when it ends.
func New(id string, app *apps.App, transport net.Conn, log *slog.Logger, debug bool) *Conn {
	c := &Conn{
		taken:      make(chan struct{}, 1),
		id:         id,
		app:        app,
		transport:  transport,
		tryWrite:   nonBlocking(transport),
		log:        log,
		debug:      debug,
		channelSet: make(map[string]struct{}),
		tokens:     float64(app.ClientEventsPerSecond),
		tokensAt:   time.Now(),
	}
	c.Touch()
	// checkAlive reads c.timer after taking c.mu: assigning it under c.mu
	// orders the write before a timer that fires at once.
	c.mu.Lock()
	c.timer = time.AfterFunc(app.PingInterval, c.checkAlive)
	c.mu.Unlock()
	return c
}

// ID returns the socket id ("123.456").
func (c *Conn) ID() string { return c.id }

// App returns the app the socket belongs to.
func (c *Conn) App() *apps.App { return c.app }

// RemoteAddr returns the peer address.
func (c *Conn) RemoteAddr() net.Addr { return c.transport.RemoteAddr() }

// UserID returns the user the socket authenticated as, or "".
func (c *Conn) UserID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userID
}

// SetUserID records the user the socket authenticated as. It reports false
// when the socket already belongs to another user.
func (c *Conn) SetUserID(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.userID != "" && c.userID != id {
		return false
	}
	c.userID = id
	return true
}

// OnClose registers f to run once when the socket finishes. f runs on the
// reader goroutine after the read loop has ended.
func (c *Conn) OnClose(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onClose = append(c.onClose, f)
}

// Touch records activity from the client.
func (c *Conn) Touch() {
	c.lastActivity.Store(time.Now().UnixNano())
}

// UseControlPings records that the client sends WebSocket ping frames, so
// the server pings it the same way.
func (c *Conn) UseControlPings() { c.controlPings.Store(true) }

// Subscribed reports whether the socket is subscribed to channel. Reader only.
func (c *Conn) Subscribed(channel string) bool {
	_, ok := c.channelSet[channel]
	return ok
}

// AddChannel and RemoveChannel track the socket's subscriptions. Reader only.
func (c *Conn) AddChannel(channel string)    { c.channelSet[channel] = struct{}{} }
func (c *Conn) RemoveChannel(channel string) { delete(c.channelSet, channel) }

// ChannelCount returns how many channels the socket is subscribed to.
// Reader only.
func (c *Conn) ChannelCount() int { return len(c.channelSet) }

// Channels returns the socket's subscriptions. Reader only.
func (c *Conn) Channels() []string {
	out := make([]string, 0, len(c.channelSet))
	for ch := range c.channelSet {
		out = append(out, ch)
	}
	return out
}

// AllowClientEvent takes one token from the socket's client-event bucket
// (ClientEventsPerSecond per second, bursting to the same). Reader only.
func (c *Conn) AllowClientEvent(now time.Time) bool {
	rate := float64(c.app.ClientEventsPerSecond)
	if rate <= 0 {
		return true
	}
	c.tokens += now.Sub(c.tokensAt).Seconds() * rate
	c.tokensAt = now
	if c.tokens > rate {
		c.tokens = rate
	}
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// Send queues a JSON payload as one text frame.
func (c *Conn) Send(payload []byte) {
	if c.debug {
		c.log.Debug("frame out", "socket_id", c.id, "frame", Excerpt(payload))
	}
	c.SendFrame(TextFrame(payload))
}

// SendError queues a pusher:error frame; a fatal error also closes the socket.
func (c *Conn) SendError(e *pusher.Error) {
	if e.Fatal {
		c.Close(e)
		return
	}
	c.Send(pusher.ErrorFrame(e))
}

// SendFrame queues a complete WebSocket frame. It never blocks: a socket
// whose queue is full is closed with 4100. The frame must not be changed
// afterwards; the same bytes may be queued to many sockets.
func (c *Conn) SendFrame(frame []byte) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= QueueSize {
		obs := c.observer
		c.mu.Unlock()
		c.log.Warn("closing slow consumer", "app_id", c.app.ID, "socket_id", c.id)
		if obs != nil {
			obs.SlowConsumer(c.app.ID)
		}
		c.Close(pusher.Fatalf(pusher.CodeOverCapacity, "Over capacity"))
		return
	}
	c.queue = append(c.queue, frame)
	start := c.startWriterLocked()
	pool := c.writerSet
	c.mu.Unlock()
	if start {
		c.runWriter(pool)
	}
}

// runWriter runs the writer loop on the pool, or on a goroutine of its own
// when there is no pool or the transport cannot be written without waiting.
func (c *Conn) runWriter(pool *Writers) {
	if c.tryWrite == nil || pool == nil || !pool.offer(c) {
		go c.writeLoop(false)
	}
}

// Throttle is called by the reader between frames: while more than half
// of the queue is taken, it waits for the writer (at most WriteTimeout).
// A client that pipelines frames is then slowed by TCP rather than closed
// as a slow consumer because of the server's own answers.
func (c *Conn) Throttle() {
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		backlog, open := len(c.queue), c.state == stateOpen
		c.mu.Unlock()
		if backlog <= QueueSize/2 || !open {
			return
		}
		if timeout == nil {
			t := time.NewTimer(WriteTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-c.taken:
		case <-timeout:
			return
		}
	}
}

// sendControl queues a control frame (a pong or a ping).
func (c *Conn) sendControl(op byte, payload []byte) {
	c.SendFrame(controlFrame(op, payload))
}

// Pong answers a WebSocket ping frame from the client.
func (c *Conn) Pong(payload []byte) { c.sendControl(opPong, payload) }

// Close sends e as a pusher:error (when e is not nil) and a close frame with
// its code, then lets the client close. Frames still queued are dropped.
// Close is safe to call from any goroutine, any number of times.
func (c *Conn) Close(e *pusher.Error) {
	code, reason := 1000, ""
	var frames [][]byte
	if e != nil {
		code, reason = e.Code, e.Message
		frames = append(frames, TextFrame(pusher.ErrorFrame(e)))
	}
	frames = append(frames, closeFrame(code, reason))
	c.closeWith(code, frames)
}

// CloseFrame sends a bare close frame: the answer to the client's own close
// frame (same code), or the end of a socket that broke the WebSocket
// protocol.
func (c *Conn) CloseFrame(code int, reason string) {
	c.closeWith(code, [][]byte{closeFrame(code, reason)})
}

func (c *Conn) closeWith(code int, frames [][]byte) {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return
	}
	c.state = stateClosing
	c.closeCode = code
	c.final = frames
	c.queue = nil
	start := c.startWriterLocked()
	pool := c.writerSet
	c.mu.Unlock()
	c.timer.Stop()
	if start {
		c.runWriter(pool)
	}
}

// CloseCode returns the code the server closed the socket with, or 0.
func (c *Conn) CloseCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode
}

// Abort closes the transport at once, without a close frame.
func (c *Conn) Abort() { _ = c.transport.Close() } // the reader reports any error

// Finish is called by the reader when its loop has ended: no frame is sent
// afterwards. It waits for a running writer, then runs the OnClose funcs.
// When the client vanished (gone is true), a blocked write is cut short.
func (c *Conn) Finish(gone bool) {
	c.mu.Lock()
	c.state = stateClosed
	c.queue, c.spare = nil, nil
	if gone {
		c.final = nil // nobody is left to read our close frame
		c.cut = true
	}
	onClose := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	c.timer.Stop()
	if gone {
		// Unblock a writer stuck on a dead peer; it then exits with an error.
		_ = c.transport.SetWriteDeadline(time.Now())
	}
	c.writers.Wait()
	for _, f := range onClose {
		f()
	}
}

// startWriterLocked reports whether the caller must start the writer.
// Caller holds c.mu.
func (c *Conn) startWriterLocked() bool {
	if c.writing || c.state == stateClosed {
		return false
	}
	c.writing = true
	c.writers.Add(1)
	return true
}

// writeLoop drains the queue, coalescing every queued frame into one
// write, until the queue is empty; once closing it writes the final frames
// and exits for good. On the pool (onPool) it never waits for the peer:
// what the peer's socket buffer cannot take now goes to a goroutine of the
// socket's own (writeRest), which carries on as its writer, so one slow
// peer never holds up a pool goroutine.
func (c *Conn) writeLoop(onPool bool) {
	for {
		batch, final := c.takeBatch()
		if batch == nil {
			c.writers.Done()
			return
		}
		buf := getBuffer()
		for _, f := range batch {
			*buf = append(*buf, f...)
		}
		frames, size := len(batch), len(*buf)
		c.recycle(batch, final)
		var err error
		if onPool && c.tryWrite != nil {
			var sent int
			if sent, err = c.tryWrite(*buf); err == nil && sent < size {
				go c.writeRest(buf, sent, frames, final)
				return
			}
		} else {
			err = c.writeAll(*buf)
		}
		putBuffer(buf)
		if !c.wrote(frames, size, final, err) {
			c.writers.Done()
			return
		}
		if onPool && c.writerSet.yield(c) {
			return // back of the line: the sockets waiting go first
		}
	}
}

// writeRest writes what a non-blocking write left over, waiting for the
// peer, then goes on as the socket's writer off the pool.
func (c *Conn) writeRest(buf *[]byte, sent, frames int, final bool) {
	size := len(*buf)
	err := c.writeAll((*buf)[sent:])
	putBuffer(buf)
	if !c.wrote(frames, size, final, err) {
		c.writers.Done()
		return
	}
	c.writeLoop(false)
}

// takeBatch takes what the writer sends next: the final frames once
// closing, else every queued frame. A nil batch means the writer is done.
func (c *Conn) takeBatch() (batch [][]byte, final bool) {
	c.mu.Lock()
	switch {
	case c.final != nil:
		// Still written after Finish(false): the answer to the client's
		// close frame must go out (RFC 6455 5.5.1).
		batch, c.final, final = c.final, nil, true
	case c.state == stateClosed:
	case len(c.queue) > 0:
		batch = c.queue
		c.queue, c.spare = c.spare, nil
	}
	if batch == nil {
		c.writing = false
	}
	c.mu.Unlock()
	if batch != nil {
		select {
		case c.taken <- struct{}{}:
		default:
		}
	}
	return batch, final
}

// recycle keeps a written batch's slice as the next queue.
func (c *Conn) recycle(batch [][]byte, final bool) {
	if final {
		return
	}
	clear(batch)
	c.mu.Lock()
	if c.spare == nil && cap(batch) <= QueueSize {
		c.spare = batch[:0]
	}
	c.mu.Unlock()
}

// wrote records a write's outcome and reports whether the writer goes on:
// a failed write closes the transport, and the reader then finishes.
func (c *Conn) wrote(frames, size int, final bool, err error) bool {
	c.mu.Lock()
	obs := c.observer
	if err != nil {
		c.state = stateClosed
		c.writing = false
	}
	c.mu.Unlock()
	if err != nil {
		_ = c.transport.Close()
		return false
	}
	if obs != nil {
		obs.MessagesSent(frames, size)
	}
	if final {
		// Our close frame is out: the client answers with its own, or
		// the reader gives up after CloseGrace.
		_ = c.transport.SetReadDeadline(time.Now().Add(CloseGrace))
	}
	return true
}

// writeAll writes b, waiting for the peer at most WriteTimeout.
func (c *Conn) writeAll(b []byte) error {
	if err := c.transport.SetWriteDeadline(time.Now().Add(WriteTimeout)); err != nil {
		return err
	}
	// Finish(true) may have set its past deadline just before ours; it
	// sets cut first, so checking cut after our deadline closes the gap.
	c.mu.Lock()
	cut := c.cut
	c.mu.Unlock()
	if cut {
		return errPeerGone
	}
	if _, err := c.transport.Write(b); err != nil {
		return err
	}
	if c.tryWrite != nil {
		// Non-blocking writes check the deadline too: lift it.
		return c.transport.SetWriteDeadline(time.Time{})
	}
	return nil
}

// checkAlive runs on the liveness timer: it pings a silent socket and closes
// one that did not answer the previous ping with 4201.
func (c *Conn) checkAlive() {
	c.mu.Lock()
	open := c.state == stateOpen
	c.mu.Unlock()
	if !open {
		return
	}
	now := time.Now()
	last := time.Unix(0, c.lastActivity.Load())
	interval := c.app.PingInterval
	if sent := c.pingSentAt.Load(); sent != 0 {
		if last.UnixNano() <= sent {
			c.Close(pusher.Fatalf(pusher.CodePongTimeout, "Pong reply not received in time"))
			return
		}
		c.pingSentAt.Store(0)
	}
	if idle := now.Sub(last); idle < interval {
		c.timer.Reset(interval - idle)
		return
	}
	c.pingSentAt.Store(now.UnixNano())
	if c.controlPings.Load() {
		c.sendControl(opPing, nil)
	} else {
		c.Send(pingFrame)
	}
	c.timer.Reset(pongWindow(interval))
}

// errPeerGone ends a write that would start after Finish(true).
var errPeerGone = errors.New("connection: peer gone")

var pingFrame = pusher.EncodeEvent(pusher.EventPing, "", []byte("{}"), "")

// pongWindow is how long a pinged client has to answer: the ping interval,
// at most maxPongWindow.
func pongWindow(interval time.Duration) time.Duration {
	return min(interval, maxPongWindow)
}

// Excerpt shortens a frame for the debug log, as Reverb's --debug does.
func Excerpt(b []byte) string {
	const max = 512
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
