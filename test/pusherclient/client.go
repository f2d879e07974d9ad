package pusherclient

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/fizz-server/fizz/modules/pusher"
)

// DefaultTimeout bounds the handshake, the wait for
// pusher:connection_established and the waits of Subscribe and Ping.
const DefaultTimeout = 5 * time.Second

// writeTimeout bounds one write to the server, unless Options.Timeout is
// longer (a client that sends into a burst waits for the server's reader
// as long as it waits for frames).
const writeTimeout = 5 * time.Second

// closeWait is how long Close waits for the server to answer its close frame.
const closeWait = 2 * time.Second

// ErrTimeout is returned when no matching frame arrived before the deadline.
var ErrTimeout = errors.New("pusherclient: timed out")

// ErrClosed is returned when the socket closed before a matching frame came.
var ErrClosed = errors.New("pusherclient: socket closed")

// Options shape a connection.
type Options struct {
	// Header is sent with the upgrade request (Origin, for one).
	Header http.Header
	// Paused dials without starting the reader: nothing is read until
	// Resume, except by the calls that wait for a frame (Dial, Subscribe,
	// Expect), which then read synchronously.
	Paused bool
	// ReceiveBuffer sets the socket's SO_RCVBUF in bytes; 0 keeps the
	// system default. A small buffer makes a paused client's backlog stay
	// in the server's queue rather than in the kernel.
	ReceiveBuffer int
	// AnswerPings answers every pusher:ping with pusher:pong, as pusher-js does.
	AnswerPings bool
	// NoControlPong leaves WebSocket ping frames unanswered (the
	// transport answers them by default).
	NoControlPong bool
	// Timeout replaces DefaultTimeout.
	Timeout time.Duration
	// TLS configures wss:// connections (trusted roots, for one).
	TLS *tls.Config
}

// Client is one Pusher protocol connection.
type Client struct {
	// SocketID and ActivityTimeout (seconds) come from
	// pusher:connection_established; they are empty after Connect.
	SocketID        string
	ActivityTimeout int

	conn    *websocket.Conn
	opts    Options
	writeMu sync.Mutex

	// readMu serialises synchronous reads of a paused client with Resume.
	readMu sync.Mutex

	mu        sync.Mutex
	inbox     []Frame
	changed   chan struct{} // closed and replaced whenever inbox or closed changes
	received  int
	started   bool
	closed    bool
	closeCode int
	closeText string
	done      chan struct{} // closed once the socket has closed

	readerDone chan struct{} // closed when the reader goroutine exits
	closeOnce  sync.Once
}

// Dial connects to url (ws://host/app/{key}?protocol=7) and waits for
// pusher:connection_established.
func Dial(url string) (*Client, error) { return DialWith(url, Options{}) }

// DialWith is Dial with options.
func DialWith(url string, o Options) (*Client, error) {
	c, err := Connect(url, o)
	if err != nil {
		return nil, err
	}
	f, err := c.ExpectFunc(func(f Frame) bool {
		return f.Event == pusher.EventConnectionEstablished || f.Event == pusher.EventError
	}, c.timeout())
	if err == nil && f.Event == pusher.EventError {
		err = fmt.Errorf("refused: %s", f)
	}
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("pusherclient: waiting for %s: %w", pusher.EventConnectionEstablished, err)
	}
	var d struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}
	if err := f.DecodeData(&d); err != nil {
		_ = c.Close()
		return nil, err
	}
	c.SocketID, c.ActivityTimeout = d.SocketID, d.ActivityTimeout
	return c, nil
}

// Connect performs the WebSocket handshake only and starts the reader
// (unless paused). Use it for sockets the server is expected to refuse.
func Connect(url string, o Options) (*Client, error) {
	c := &Client{opts: o, changed: make(chan struct{}), done: make(chan struct{}), readerDone: make(chan struct{})}
	nd := &net.Dialer{Timeout: c.timeout()}
	if o.ReceiveBuffer > 0 {
		nd.Control = func(_, _ string, rc syscall.RawConn) error { return setReceiveBuffer(rc, o.ReceiveBuffer) }
	}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: c.timeout(),
		ReadBufferSize:   4096,
		TLSClientConfig:  o.TLS,
	}
	if o.ReceiveBuffer > 0 {
		d.ReadBufferSize = 512 // keep the client's own buffering small too
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout())
	defer cancel()
	conn, resp, err := d.DialContext(ctx, url, o.Header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close() // the handshake response has no body worth keeping
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("pusherclient: dial %s: %w (HTTP %d)", url, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("pusherclient: dial %s: %w", url, err)
	}
	c.conn = conn
	conn.SetPingHandler(func(payload string) error {
		c.push(Frame{Event: EventControlPing, Raw: []byte(payload)})
		if c.opts.NoControlPong {
			return nil
		}
		err := conn.WriteControl(websocket.PongMessage, []byte(payload), time.Now().Add(c.writeTimeout()))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	conn.SetPongHandler(func(payload string) error {
		c.push(Frame{Event: EventControlPong, Raw: []byte(payload)})
		return nil
	})
	if !o.Paused {
		c.Resume()
	}
	return c, nil
}

func (c *Client) timeout() time.Duration {
	if c.opts.Timeout > 0 {
		return c.opts.Timeout
	}
	return DefaultTimeout
}

func (c *Client) writeTimeout() time.Duration { return max(writeTimeout, c.opts.Timeout) }

// Resume starts the reader of a paused client; it does nothing otherwise.
func (c *Client) Resume() {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return
	}
	c.started = true
	c.notifyLocked()
	c.mu.Unlock()
	go c.readLoop()
}

func (c *Client) readLoop() {
	defer close(c.readerDone)
	for c.readOne() {
	}
}

// readOne reads one message into the inbox; false once the socket has ended.
func (c *Client) readOne() bool {
	kind, msg, err := c.conn.ReadMessage()
	if err != nil {
		c.finish(err)
		return false
	}
	f := DecodeFrame(kind == websocket.BinaryMessage, msg)
	c.push(f)
	if c.opts.AnswerPings && f.Event == pusher.EventPing {
		_ = c.Pong() // a failed write shows up as the socket closing
	}
	return true
}

func (c *Client) push(f Frame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inbox = append(c.inbox, f)
	c.received++
	c.notifyLocked()
}

// notifyLocked wakes every waiter. Caller holds c.mu.
func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// finish records how the socket ended.
func (c *Client) finish(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		c.closeCode, c.closeText = ce.Code, ce.Text
	} else {
		c.closeCode, c.closeText = websocket.CloseAbnormalClosure, err.Error()
	}
	close(c.done)
	c.notifyLocked()
}

// Received returns how many frames have arrived so far, control frames included.
func (c *Client) Received() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.received
}

// CloseStatus returns the close code and reason the socket ended with, and
// whether it has ended. A socket that ended without a close frame reports
// 1006 (abnormal closure).
func (c *Client) CloseStatus() (code int, reason string, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode, c.closeText, c.closed
}

// Done is closed once the socket has ended.
func (c *Client) Done() <-chan struct{} { return c.done }

// WaitClosed waits until the socket ends and returns its close code and
// reason. Frames that arrive meanwhile stay in the inbox.
func (c *Client) WaitClosed(timeout time.Duration) (code int, reason string, err error) {
	_, err = c.ExpectFunc(func(Frame) bool { return false }, timeout)
	if errors.Is(err, ErrClosed) {
		code, reason, _ = c.CloseStatus()
		return code, reason, nil
	}
	return 0, "", err
}

// Expect waits up to timeout for a frame with this event (and channel,
// unless channel is empty) and takes it from the inbox. Frames before it
// stay in the inbox for later calls.
func (c *Client) Expect(event, channel string, timeout time.Duration) (Frame, error) {
	return c.ExpectFunc(Match(event, channel), timeout)
}

// Match returns a matcher for event on channel ("" matches any channel).
func Match(event, channel string) func(Frame) bool {
	return func(f Frame) bool { return f.Event == event && (channel == "" || f.Channel == channel) }
}

// ExpectNone reports an error when a frame with event arrives within the
// given time (or is already in the inbox). It returns early, without error,
// when the socket closes. Zero checks the inbox only.
func (c *Client) ExpectNone(event string, within time.Duration) error {
	return c.ExpectNoneOn(event, "", within)
}

// ExpectNoneOn is ExpectNone for one channel.
func (c *Client) ExpectNoneOn(event, channel string, within time.Duration) error {
	f, err := c.ExpectFunc(Match(event, channel), within)
	if err == nil {
		return fmt.Errorf("pusherclient: unexpected %s", f)
	}
	return nil
}

// Next takes the oldest frame in the inbox, waiting up to timeout for one.
func (c *Client) Next(timeout time.Duration) (Frame, error) {
	return c.ExpectFunc(func(Frame) bool { return true }, timeout)
}

// Pending returns a copy of the frames not yet taken, oldest first.
func (c *Client) Pending() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.inbox...)
}

// ExpectFunc waits up to timeout for the first frame match accepts and takes
// it from the inbox. It fails with ErrClosed once the socket has ended with
// no such frame left, and with ErrTimeout at the deadline.
func (c *Client) ExpectFunc(match func(Frame) bool, timeout time.Duration) (Frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		if f, ok := c.takeLocked(match); ok {
			c.mu.Unlock()
			return f, nil
		}
		if c.closed {
			err := fmt.Errorf("%w (code %d %q); pending: %s", ErrClosed, c.closeCode, c.closeText, c.describeLocked())
			c.mu.Unlock()
			return Frame{}, err
		}
		started, changed := c.started, c.changed
		remaining := time.Until(deadline)
		if remaining <= 0 {
			err := fmt.Errorf("%w after %s; pending: %s", ErrTimeout, timeout, c.describeLocked())
			c.mu.Unlock()
			return Frame{}, err
		}
		c.mu.Unlock()
		if !started {
			c.readSync(deadline)
			continue
		}
		timer := time.NewTimer(remaining)
		select {
		case <-changed:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// readSync reads one message on the caller's goroutine, for a paused client.
// A read that hits the deadline breaks the connection, as any read timeout
// does in this WebSocket library; the socket then counts as closed.
func (c *Client) readSync(deadline time.Time) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	c.mu.Lock()
	skip := c.started || c.closed
	c.mu.Unlock()
	if skip {
		return
	}
	_ = c.conn.SetReadDeadline(deadline) // a failure surfaces on the read
	c.readOne()
	_ = c.conn.SetReadDeadline(time.Time{})
}

// takeLocked removes and returns the first frame match accepts. Caller holds c.mu.
func (c *Client) takeLocked(match func(Frame) bool) (Frame, bool) {
	for i, f := range c.inbox {
		if !match(f) {
			continue
		}
		if i == 0 {
			c.inbox[0] = Frame{}
			c.inbox = c.inbox[1:]
		} else {
			c.inbox = append(c.inbox[:i], c.inbox[i+1:]...)
		}
		return f, true
	}
	return Frame{}, false
}

// describeLocked lists the pending frames for an error message. Caller holds c.mu.
func (c *Client) describeLocked() string {
	if len(c.inbox) == 0 {
		return "none"
	}
	var b strings.Builder
	for i, f := range c.inbox {
		if i == 8 {
			fmt.Fprintf(&b, " … and %d more", len(c.inbox)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.String())
	}
	return b.String()
}

// write sends one message under the write lock and a deadline.
func (c *Client) write(kind int, b []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout())); err != nil {
		return err
	}
	return c.conn.WriteMessage(kind, b)
}

// SendText sends b as one text message, as is.
func (c *Client) SendText(b []byte) error { return c.write(websocket.TextMessage, b) }

// SendBinary sends b as one binary message.
func (c *Client) SendBinary(b []byte) error { return c.write(websocket.BinaryMessage, b) }

// Send sends {"event":event,"channel":channel,"data":data}; the channel is
// left out when empty and the data when nil. data is marshalled as JSON
// unless it is a json.RawMessage.
func (c *Client) Send(event, channel string, data any) error {
	msg := struct {
		Event   string          `json:"event"`
		Channel string          `json:"channel,omitempty"`
		Data    json.RawMessage `json:"data,omitempty"`
	}{Event: event, Channel: channel}
	switch d := data.(type) {
	case nil:
	case json.RawMessage:
		msg.Data = d
	default:
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("pusherclient: encode data of %s: %w", event, err)
		}
		msg.Data = b
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("pusherclient: encode %s: %w", event, err)
	}
	return c.SendText(b)
}

// Subscribe sends pusher:subscribe as pusher-js does (auth and channelData
// are left out when empty) and waits for the answer on that channel:
// pusher_internal:subscription_succeeded or pusher:subscription_error. A
// pusher:error (a refused channel name, for one) is returned as well.
func (c *Client) Subscribe(channel, auth, channelData string) (Frame, error) {
	if err := c.SendSubscribe(channel, auth, channelData); err != nil {
		return Frame{}, err
	}
	return c.ExpectFunc(func(f Frame) bool {
		return (f.Channel == channel && (f.Event == pusher.EventSubscriptionSucceeded || f.Event == pusher.EventSubscriptionError)) ||
			f.Event == pusher.EventError
	}, c.timeout())
}

// SendSubscribe sends pusher:subscribe without waiting for the answer.
func (c *Client) SendSubscribe(channel, auth, channelData string) error {
	data := struct {
		Channel     string `json:"channel"`
		Auth        string `json:"auth,omitempty"`
		ChannelData string `json:"channel_data,omitempty"`
	}{channel, auth, channelData}
	return c.Send(pusher.EventSubscribe, "", data)
}

// Unsubscribe sends pusher:unsubscribe; the server does not answer it.
func (c *Client) Unsubscribe(channel string) error {
	return c.Send(pusher.EventUnsubscribe, "", map[string]string{"channel": channel})
}

// Trigger sends a client event; data is marshalled as JSON.
func (c *Client) Trigger(event, channel string, data any) error {
	return c.Send(event, channel, data)
}

// Ping sends pusher:ping and waits for pusher:pong. The server handles a
// socket's frames in order, so the pong also proves that every frame sent
// before the ping has been handled.
func (c *Client) Ping() error {
	if err := c.Send(pusher.EventPing, "", map[string]any{}); err != nil {
		return err
	}
	_, err := c.Expect(pusher.EventPong, "", c.timeout())
	return err
}

// Pong sends pusher:pong, the answer to the server's pusher:ping.
func (c *Client) Pong() error { return c.Send(pusher.EventPong, "", map[string]any{}) }

// PingFrame sends a WebSocket ping control frame.
func (c *Client) PingFrame(payload []byte) error {
	return c.conn.WriteControl(websocket.PingMessage, payload, time.Now().Add(c.writeTimeout()))
}

// Auth returns the auth value for this socket on channel, as a backend
// signs it with the app's key and secret.
func (c *Client) Auth(key, secret, channel, channelData string) string {
	return ChannelAuth(key, secret, c.SocketID, channel, channelData)
}

// ChannelAuth returns the "key:signature" a backend gives a client to join
// a private or presence channel.
func ChannelAuth(key, secret, socketID, channel, channelData string) string {
	return pusher.ChannelAuth(key, secret, socketID, channel, channelData)
}

// Close sends a 1000 close frame, waits briefly for the server's answer and
// closes the connection; it returns once the reader has stopped. It is safe
// to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		_ = c.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeWait))
		// Take the reader's place, or wait for it to see the server's close.
		c.readMu.Lock()
		c.mu.Lock()
		started := c.started
		c.started = true // a paused client never reads again
		c.mu.Unlock()
		c.readMu.Unlock()
		if started {
			timer := time.NewTimer(closeWait)
			select {
			case <-c.done:
			case <-timer.C:
			}
			timer.Stop()
		}
		_ = c.conn.Close() // ends the reader's read, if it still runs
		if started {
			<-c.readerDone
		}
		c.finish(net.ErrClosed)
	})
	return nil
}
