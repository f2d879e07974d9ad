package connection

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
)

const (
	// QueueSize is the frames a socket's reader lets its own answers
	// queue (Throttle waits past half of it), and the bound on events
	// held for a socket that is not ready yet. It does not close a
	// socket: Limits do.
	QueueSize = 256
	// CloseGrace is how long a socket may take to answer our close frame
	// before the reader gives up on it.
	CloseGrace = 2 * time.Second
	// maxPongWindow caps the wait for an answer to the server's ping.
	maxPongWindow = 30 * time.Second
)

// Conn is one client socket of one app. It mirrors Reverb's Connection.
type Conn struct {
	id        string
	app       *apps.App
	transport net.Conn
	tryWrite  tryWriter // nil: the transport cannot write without waiting
	log       *slog.Logger
	debug     bool
	observer  Observer // nil: nothing observed
	pool      *Writers // nil: each writer on a goroutine of its own

	out outbox // the outbound queue and its writer

	mu      sync.Mutex
	userID  string
	onClose []func()

	lastActivity atomic.Int64 // unix nanoseconds of the last frame received
	pingSentAt   atomic.Int64 // unix nanoseconds, 0 when no ping is pending
	controlPings atomic.Bool  // the client speaks WebSocket ping frames
	timer        *time.Timer

	// Owned by the reader goroutine.
	events     bucket // client events allowed
	messages   window // data messages, for the app's RateLimit
	channelSet map[string]struct{}
}

// Options are what a Conn works with besides its socket. The zero value
// works: no debug log, nothing observed, every writer on a goroutine of
// its own.
type Options struct {
	Log      *slog.Logger // nil: discard; carries the app_id
	Debug    bool         // log every frame out
	Observer Observer     // hears what the socket sends; nil: none
	Writers  *Writers     // the pool that runs writers; nil: none
	Limits   Limits       // when the socket is a slow consumer; zero: the defaults
}

// Limits say when a socket is a slow consumer, closed with 4100: by time
// and bytes, not by frames, so that a burst a reader drains promptly
// never closes it.
type Limits struct {
	// Grace is how long frames may wait unwritten, and a write make no
	// progress, before the socket is closed.
	Grace time.Duration
	// MaxBytes caps the bytes queued for the socket (a broadcast frame is
	// shared, so this is the node's memory only for frames no other socket
	// holds).
	MaxBytes int
}

// Defaults of Limits.
const (
	DefaultSlowConsumerGrace = 5 * time.Second
	DefaultMaxQueuedBytes    = 32 << 20
)

func (l Limits) withDefaults() Limits {
	if l.Grace <= 0 {
		l.Grace = DefaultSlowConsumerGrace
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxQueuedBytes
	}
	return l
}

// New returns an open Conn for transport and starts its liveness timer.
// The caller runs the read loop and calls Finish when it ends.
func New(id string, app *apps.App, transport net.Conn, o Options) *Conn {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	c := &Conn{
		id:         id,
		app:        app,
		transport:  transport,
		tryWrite:   nonBlocking(transport),
		log:        o.Log,
		debug:      o.Debug,
		observer:   o.Observer,
		pool:       o.Writers,
		channelSet: make(map[string]struct{}),
		events:     newBucket(app.ClientEventsPerSecond, time.Now()),
	}
	c.out.init(o.Limits.withDefaults())
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
func (c *Conn) AllowClientEvent(now time.Time) bool { return c.events.take(now) }

// AllowMessage counts a data message against the app's RateLimit and
// reports whether it is within it (always, when the limit is off). Called
// by the reader only.
func (c *Conn) AllowMessage() bool {
	l := c.app.RateLimit
	return !l.Enabled || c.messages.hit(time.Now(), l.MaxAttempts, l.Decay) // the clock only when on
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

// SendFrame queues a complete WebSocket frame. It never blocks: a slow
// consumer (see Limits) is closed with 4100. The frame must not be changed
// afterwards; the same bytes may be queued to many sockets.
func (c *Conn) SendFrame(frame []byte) {
	switch start, slow := c.out.push(frame); {
	case slow != "":
		c.closeSlowConsumer(slow)
	case start:
		c.startWriter()
	}
}

// SendNow is SendFrame for a frame that nothing is expected to follow
// soon: when the socket has nothing queued and no writer, the caller
// writes it at once, without waiting for the peer (what the kernel does
// not take goes on as SendFrame would), and saves the hand-off to a
// writer. While the writer pool is behind, a burst is being written: the
// frame is queued, so that the caller leaves the CPU to the writers,
// which join it with what follows. It reports whether the caller wrote.
func (c *Conn) SendNow(frame []byte) (wrote bool) {
	if c.tryWrite != nil && !c.pool.isBehind() && c.out.claim() {
		c.writeNow(frame)
		return true
	}
	c.SendFrame(frame)
	return false
}

// closeSlowConsumer closes a socket that fell behind, for why. (Kept out
// of SendFrame, so that the broadcast loop's call stays small.)
func (c *Conn) closeSlowConsumer(why string) {
	c.slowConsumer(why)
	c.Close(pusher.Fatalf(pusher.CodeOverCapacity, "Over capacity"))
}

// slowConsumer logs and counts a slow consumer, once: the writer and a
// sender may both find it behind at the same moment.
func (c *Conn) slowConsumer(why string) {
	if !c.out.judgeSlow() {
		return
	}
	c.log.Warn("closing slow consumer", "socket_id", c.id, "reason", why)
	if c.observer != nil {
		c.observer.SlowConsumer(c.app.ID)
	}
}

// Throttle is called by the reader between frames: while more than half
// of the queue is taken, it waits for the writer (at most Limits.Grace).
// A client that pipelines frames is then slowed by TCP rather than closed
// as a slow consumer because of the server's own answers.
func (c *Conn) Throttle() { c.out.throttle(c.out.limits.Grace) }

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
	start, ok := c.out.close(code, frames)
	if !ok {
		return
	}
	c.timer.Stop()
	if start {
		c.startWriter()
	}
}

// CloseCode returns the code the server closed the socket with, or 0.
func (c *Conn) CloseCode() int { return c.out.closeCode() }

// Abort closes the transport at once, without a close frame.
func (c *Conn) Abort() { _ = c.transport.Close() } // the reader reports any error

// Finish is called by the reader when its loop has ended: no frame is sent
// afterwards. It waits for a running writer, then runs the OnClose funcs.
// When the client vanished (gone is true), a blocked write is cut short.
func (c *Conn) Finish(gone bool) {
	c.out.finish(gone)
	c.mu.Lock()
	onClose := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	c.timer.Stop()
	if gone {
		// Unblock a writer stuck on a dead peer; it then exits with an error.
		_ = c.transport.SetWriteDeadline(time.Now())
	}
	c.out.wait()
	for _, f := range onClose {
		f()
	}
}

// checkAlive runs on the liveness timer: it pings a silent socket and closes
// one that did not answer the previous ping with 4201.
func (c *Conn) checkAlive() {
	// Taking c.mu orders New's assignment of c.timer before this read,
	// even when the timer fires at once.
	c.mu.Lock()
	timer := c.timer
	c.mu.Unlock()
	if !c.out.isOpen() {
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
		timer.Reset(interval - idle)
		return
	}
	c.pingSentAt.Store(now.UnixNano())
	if c.controlPings.Load() {
		c.sendControl(opPing, nil)
	} else {
		c.Send(pingFrame)
	}
	timer.Reset(pongWindow(interval))
}

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
