package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	fastws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/membership"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/stats"
)

// readLimitFactor sets the hard read limit as a multiple of the app's
// max_message_size: a frame above max_message_size is discarded with a
// pusher:error, one above the hard limit closes the socket (1009).
const (
	readLimitFactor = 4
	minHardLimit    = 64 << 10
	// handshakeBufferSize is the library's read buffer; it reads only a
	// refused socket's answer to our close frame (see refuse).
	handshakeBufferSize = 256
)

// WebSocket is the endpoint /app/{key}: it upgrades, runs one socket's read
// loop and hands each frame to the MessageHandler. It mirrors Reverb's
// Pusher Server (open, message, close).
type WebSocket struct {
	apps       *apps.Provider
	registry   *connection.Registry
	writers    *connection.Writers
	observer   connection.Observer // nil: no stats
	membership *membership.Membership
	messages   *MessageHandler
	stats      *stats.Stats
	feed       *console.Feed // nil: no console
	log        *slog.Logger
	debug      bool
	limits     connection.Limits
	upgrade    fiber.Handler
	refused    *refusals
	loggers    sync.Map        // *apps.App -> *slog.Logger
	ctx        context.Context // lifetime of every socket's context
}

// WebSocketParams lists what NewWebSocket takes.
type WebSocketParams struct {
	fx.In
	Apps       *apps.Provider
	Registry   *connection.Registry
	Writers    *connection.Writers
	Observer   connection.Observer `optional:"true"` // stats; absent in some tests
	Membership *membership.Membership
	Messages   *MessageHandler
	Stats      *stats.Stats
	Console    *console.Feed `optional:"true"`
	Log        *slog.Logger
	Config     Config
	Sockets    connection.Config `optional:"true"` // zero: no cap, default limits
}

// NewWebSocket returns the endpoint.
func NewWebSocket(p WebSocketParams) *WebSocket {
	w := &WebSocket{
		apps:       p.Apps,
		registry:   p.Registry,
		writers:    p.Writers,
		observer:   p.Observer,
		membership: p.Membership,
		messages:   p.Messages,
		stats:      p.Stats,
		feed:       p.Console,
		log:        p.Log,
		debug:      p.Config.Debug,
		limits:     p.Sockets.Limits,
		refused:    newRefusals(),
		ctx:        context.Background(),
	}
	w.upgrade = websocket.New(w.serve, websocket.Config{
		ReadBufferSize:  handshakeBufferSize,
		WriteBufferSize: 512,
		// Fizz reads and frames accepted sockets itself; the library only
		// writes a refused socket's error and close frame, so its write
		// buffer comes from a pool.
		WriteBufferPool: &sync.Pool{},
		RecoverHandler:  w.recoverSocket,
	})
	return w
}

// Handle is the Fiber handler for GET /app/:key.
func (w *WebSocket) Handle(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "this endpoint only speaks WebSocket")
	}
	if w.registry.Full() {
		w.refused.log(w.log, "the node holds its cap of sockets (503)", "FIZZ_MAX_SOCKETS")
		w.stats.Refused("max_sockets")
		c.Set(fiber.HeaderRetryAfter, "5")
		return fiber.NewError(fiber.StatusServiceUnavailable, "the node holds its cap of sockets; try again later")
	}
	return w.upgrade(c)
}

// socketID returns a Pusher socket id: two random integers joined by a dot.
func socketID() string {
	return strconv.FormatUint(uint64(rand.Uint32()), 10) + "." + strconv.FormatUint(uint64(rand.Uint32()), 10)
}

// precheck refuses a socket before it gets a Conn: an unknown app, an
// unsupported protocol version or a forbidden origin. Each refusal is
// logged (at most once a minute for one reason and value).
func (w *WebSocket) precheck(ws *websocket.Conn) (*apps.App, *pusher.Error) {
	key := ws.Params("key")
	app, err := w.apps.FindByKey(key)
	if err != nil {
		w.refused.log(w.log, "unknown app key (4001)", clip(key))
		return nil, pusher.Fatalf(pusher.CodeAppNotFound, "App key %s does not exist", clip(key))
	}
	if p := ws.Query("protocol"); p != "" {
		v, err := strconv.Atoi(p)
		if err != nil || v < 5 || v > 7 {
			w.refused.log(w.log, "unsupported protocol version (4007)", clip(p), "app_id", app.ID)
			return nil, pusher.Fatalf(pusher.CodeProtocol, "Unsupported protocol version %s", clip(p))
		}
	}
	if origin := ws.Headers("Origin"); !app.OriginAllowed(origin) {
		w.refused.log(w.log, "origin not in allowed_origins (4009)", clip(origin), "app_id", app.ID, "allowed_origins", app.AllowedOrigins)
		return nil, pusher.Fatalf(pusher.CodeUnauthorized, "Origin not allowed")
	}
	return app, nil
}

// refuse sends a fatal error on a socket that has no Conn, then waits
// briefly for the client's close frame.
func refuse(ws *websocket.Conn, e *pusher.Error) {
	deadline := time.Now().Add(connection.CloseGrace)
	_ = ws.SetWriteDeadline(deadline) // errors surface on the writes below
	if ws.WriteMessage(fastws.TextMessage, pusher.ErrorFrame(e)) != nil {
		return
	}
	_ = ws.WriteControl(fastws.CloseMessage, fastws.FormatCloseMessage(e.Code, e.Message), deadline)
	_ = ws.SetReadDeadline(deadline)
	for {
		if _, _, err := ws.NextReader(); err != nil {
			return
		}
	}
}

// serve runs on fasthttp's goroutine for the hijacked connection. It
// checks the socket, then hands it to a goroutine of Fizz's own and
// returns, so fasthttp lets go of its request state and its 4 KB reader:
// an idle socket holds only its Conn, a 512-byte read buffer and a small
// goroutine stack. fasthttp keeps hijacked connections open
// (KeepHijackedConns), so every path here closes the transport.
func (w *WebSocket) serve(ws *websocket.Conn) {
	hijacked := ws.NetConn()
	transport := unwrapHijacked(hijacked)
	served := false
	defer func() {
		if !served { // refused, gone already, or a bug: nothing else holds it
			_ = transport.Close()
		}
	}()
	app, perr := w.precheck(ws)
	if perr != nil {
		refuse(ws, perr)
		return
	}
	src, err := detach(hijacked, transport)
	if err != nil {
		return
	}
	c := connection.New(socketID(), app, transport, connection.Options{
		Log: w.appLogger(app), Debug: w.debug, Observer: w.observer, Writers: w.writers, Limits: w.limits,
	})
	served = true // run closes the transport
	if transport == hijacked {
		// The handshake's read deadline must not end the socket.
		if err := transport.SetReadDeadline(time.Time{}); err != nil {
			c.Finish(true)
			_ = transport.Close()
			return
		}
		w.run(c, src) // cannot be detached: read through fasthttp's reader
		return
	}
	go w.run(c, src)
}

// unwrapHijacked returns the connection under fasthttp's hijack wrapper,
// or conn itself when it has none.
func unwrapHijacked(conn net.Conn) net.Conn {
	if u, ok := conn.(interface{ UnsafeConn() net.Conn }); ok {
		return u.UnsafeConn()
	}
	return conn
}

// detach returns what the socket is read from once fasthttp has let go of
// it: the bytes fasthttp had read past the handshake (from a client that
// did not wait for the 101), then the transport. A read deadline in the
// past makes the buffered reader give up what it holds without waiting on
// the network.
func detach(hijacked, transport net.Conn) (io.Reader, error) {
	if hijacked == transport {
		return transport, nil
	}
	if err := transport.SetReadDeadline(time.Now()); err != nil {
		return nil, err
	}
	var early []byte
	var chunk [256]byte
	for {
		n, err := hijacked.Read(chunk[:])
		early = append(early, chunk[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if err := transport.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	if len(early) == 0 {
		return transport, nil
	}
	return io.MultiReader(bytes.NewReader(early), transport), nil
}

// appLogger returns the logger of app's sockets, made once per app.
func (w *WebSocket) appLogger(app *apps.App) *slog.Logger {
	if l, ok := w.loggers.Load(app); ok {
		return l.(*slog.Logger)
	}
	l, _ := w.loggers.LoadOrStore(app, w.log.With("app_id", app.ID))
	return l.(*slog.Logger)
}

// run serves a socket until it ends, then closes its transport. Its
// goroutine only waits for the network: everything else (admission, each
// read's frames, the cleanup) runs on a fresh goroutine that it waits for,
// so the deep work of handling frames grows that goroutine's stack, not
// the reader's. An idle socket keeps the smallest stack the runtime gives.
func (w *WebSocket) run(c *connection.Conn, src io.Reader) {
	defer c.Abort()
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	done := make(chan struct{})
	admitted := false
	if w.onFreshStack(done, c, func() { admitted = w.open(ctx, c) }) {
		app := c.App()
		r := connection.NewReader(app.MaxMessageSize, max(app.MaxMessageSize*readLimitFactor, minHardLimit))
		gone := w.readLoop(ctx, done, src, r, c)
		r.Release()
		c.Finish(gone)
	} else {
		c.Finish(true)
	}
	w.onFreshStack(done, c, func() { w.end(ctx, c, admitted) })
}

// open admits the socket and greets it; it reports whether the socket
// counts against its app (and must be released).
func (w *WebSocket) open(ctx context.Context, c *connection.Conn) (admitted bool) {
	if err := w.membership.Admit(ctx, c); err != nil {
		w.refused.log(w.log, fmt.Sprintf("%s (%d)", err.Message, err.Code), c.App().ID,
			"app_id", c.App().ID, "max_connections", c.App().MaxConnections)
		c.Close(err)
		return false
	}
	w.stats.Connected(c.App().ID)
	if w.feed.Watching() {
		w.feed.Emit(console.Event{App: c.App().ID, Type: console.TypeConnect, Socket: c.ID()})
	}
	c.Send(Established(c))
	return true
}

// end cleans up after a finished socket.
func (w *WebSocket) end(ctx context.Context, c *connection.Conn, admitted bool) {
	w.membership.Disconnect(ctx, c)
	if admitted {
		w.membership.Release(ctx, c)
		w.stats.Disconnected(c.App().ID, c.CloseCode())
		if w.feed.Watching() {
			code := c.CloseCode()
			if code == 0 {
				code = 1006 // none exchanged: the peer vanished, as stats counts it
			}
			w.feed.Emit(console.Event{App: c.App().ID, Type: console.TypeDisconnect, Socket: c.ID(), User: c.UserID(), Code: code})
		}
	}
}

// onFreshStack runs f on a new goroutine and waits for it; done is the
// caller's, reused. A bug that panics in f is logged and ends the socket:
// onFreshStack then reports false.
func (w *WebSocket) onFreshStack(done chan struct{}, c *connection.Conn, f func()) (ok bool) {
	go func() {
		defer func() {
			if v := recover(); v != nil {
				w.log.Error("socket handler panicked", "socket_id", c.ID(), "err", fmt.Sprint(v))
				c.Abort()
			} else {
				ok = true
			}
			done <- struct{}{}
		}()
		f()
	}()
	<-done
	return ok
}

// recoverSocket keeps a bug in one socket's handshake from taking the
// process down.
func (w *WebSocket) recoverSocket(c *websocket.Conn) {
	if v := recover(); v != nil {
		w.log.Error("socket handshake panicked", "err", fmt.Sprint(v))
	}
}

// readLoop reads until the socket ends and reports whether the client
// vanished (rather than closing cleanly or being closed for a protocol
// error, when our close frame must still go out).
func (w *WebSocket) readLoop(ctx context.Context, done chan struct{}, src io.Reader, r *connection.Reader, c *connection.Conn) (gone bool) {
	for {
		n, err := src.Read(r.Buffer())
		r.Advance(n)
		var end bool
		if !w.onFreshStack(done, c, func() { end, gone = w.handleRead(ctx, r, c) }) {
			return true
		}
		if end {
			return gone
		}
		if err != nil {
			return true
		}
	}
}

// handleRead handles every whole message read so far. It reports end when
// the socket must end, and whether the client vanished.
func (w *WebSocket) handleRead(ctx context.Context, r *connection.Reader, c *connection.Conn) (end, gone bool) {
	for {
		m, ok, err := r.Next()
		var perr *connection.ProtocolError
		if errors.As(err, &perr) {
			c.CloseFrame(perr.Code, perr.Reason)
			return true, false
		}
		if !ok {
			return false, false
		}
		c.Touch()
		if w.handleMessage(ctx, c, m, err) {
			return true, false
		}
		c.Throttle()
	}
}

// handleMessage acts on one message and reports whether it ended the
// socket (a close frame). err is nil or ErrMessageTooLarge.
func (w *WebSocket) handleMessage(ctx context.Context, c *connection.Conn, m connection.Message, err error) (closed bool) {
	limit := c.App().MaxMessageSize
	switch {
	case m.Op == connection.OpPing:
		c.UseControlPings()
		c.Pong(m.Payload)
	case m.Op == connection.OpPong:
	case m.Op == connection.OpClose:
		code := connection.CloseCode(m.Payload)
		if code == connection.CloseNoStatus {
			code = connection.CloseNormal
		}
		c.CloseFrame(code, "")
		return true
	case !c.AllowMessage():
		// Reverb's rate_limiting: every data message counts.
		w.stats.MessageReceived(len(m.Payload))
		w.stats.MessageRateLimited(c.App().ID)
		if c.App().RateLimit.Terminate {
			c.Close(pusher.Fatalf(pusher.CodeClientEventBlocked, "Rate limit exceeded"))
			return true
		}
		c.SendError(pusher.Errorf(pusher.CodeClientEventBlocked, "Rate limit exceeded"))
	case m.Op != connection.OpText:
		w.stats.MessageReceived(len(m.Payload))
		c.SendError(pusher.Errorf(pusher.CodeGeneric, "Binary frames are not supported"))
	case err != nil:
		w.stats.MessageReceived(limit)
		c.SendError(pusher.Errorf(pusher.CodeGeneric, "Message too large: the limit is %d bytes", limit))
	case !utf8.Valid(m.Payload):
		// RFC 6455 8.1: a text frame must be UTF-8, or the socket fails.
		w.stats.MessageReceived(len(m.Payload))
		c.CloseFrame(connection.CloseInvalidData, "Invalid UTF-8")
		return true
	default:
		w.stats.MessageReceived(len(m.Payload))
		if w.debug {
			w.log.Debug("frame in", "socket_id", c.ID(), "frame", connection.Excerpt(m.Payload))
		}
		w.messages.Handle(ctx, c, m.Payload)
	}
	return false
}
