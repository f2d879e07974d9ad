package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	fastws "github.com/fasthttp/websocket"
	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// readLimitFactor sets the hard read limit as a multiple of the app's
// max_message_size: a frame above max_message_size is discarded with a
// pusher:error, one above the hard limit closes the socket (1009).
const (
	readLimitFactor = 4
	minHardLimit    = 64 << 10
	readBufferSize  = 1024
)

// WebSocket is the endpoint /app/{key}: it upgrades, runs one socket's read
// loop and hands each frame to the MessageHandler. It mirrors Reverb's
// Pusher Server (open, message, close).
type WebSocket struct {
	apps     *apps.Provider
	registry *connection.Registry
	share    *channels.ShareSource
	state    scaling.State
	messages *MessageHandler
	stats    *stats.Stats
	log      *slog.Logger
	debug    bool
	upgrade  fiber.Handler
	ctx      context.Context // lifetime of every socket's context
}

// WebSocketParams lists what NewWebSocket takes.
type WebSocketParams struct {
	fx.In
	Apps     *apps.Provider
	Registry *connection.Registry
	Share    *channels.ShareSource
	State    scaling.State
	Messages *MessageHandler
	Stats    *stats.Stats
	Log      *slog.Logger
	Config   Config
}

// NewWebSocket returns the endpoint.
func NewWebSocket(p WebSocketParams) *WebSocket {
	w := &WebSocket{
		apps:     p.Apps,
		registry: p.Registry,
		share:    p.Share,
		state:    p.State,
		messages: p.Messages,
		stats:    p.Stats,
		log:      p.Log,
		debug:    p.Config.Debug,
		ctx:      context.Background(),
	}
	w.upgrade = websocket.New(w.serve, websocket.Config{
		ReadBufferSize:  readBufferSize,
		WriteBufferSize: 512,
		// Fizz frames its own writes; the library writes only the close
		// frame of a protocol error, so its buffer comes from a pool.
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
	return w.upgrade(c)
}

// recoverSocket keeps a bug in one socket's handler from taking the
// process down; the socket is dropped.
func (w *WebSocket) recoverSocket(c *websocket.Conn) {
	if r := recover(); r != nil {
		w.log.Error("socket handler panicked", "err", fmt.Sprint(r))
	}
}

// socketID returns a Pusher socket id: two random integers joined by a dot.
func socketID() string {
	return strconv.FormatUint(uint64(rand.Uint32()), 10) + "." + strconv.FormatUint(uint64(rand.Uint32()), 10)
}

// precheck refuses a socket before it gets a Conn: an unknown app, an
// unsupported protocol version or a forbidden origin.
func (w *WebSocket) precheck(ws *websocket.Conn) (*apps.App, *pusher.Error) {
	app, err := w.apps.FindByKey(ws.Params("key"))
	if err != nil {
		return nil, pusher.Fatalf(pusher.CodeAppNotFound, "App key %s does not exist", clip(ws.Params("key")))
	}
	if p := ws.Query("protocol"); p != "" {
		v, err := strconv.Atoi(p)
		if err != nil || v < 5 || v > 7 {
			return nil, pusher.Fatalf(pusher.CodeProtocol, "Unsupported protocol version %s", clip(p))
		}
	}
	if !app.OriginAllowed(ws.Headers("Origin")) {
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

func (w *WebSocket) serve(ws *websocket.Conn) {
	app, perr := w.precheck(ws)
	if perr != nil {
		refuse(ws, perr)
		return
	}
	log := w.log.With("app_id", app.ID)
	c := connection.New(socketID(), app, ws.NetConn(), log, w.debug)
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()

	// Every frame goes out through c's writer, control frames included.
	ws.SetPingHandler(func(data string) error {
		c.Touch()
		c.UseControlPings()
		c.Pong([]byte(data))
		return nil
	})
	ws.SetPongHandler(func(string) error { c.Touch(); return nil })
	ws.SetCloseHandler(func(code int, _ string) error {
		if code == fastws.CloseNoStatusReceived {
			code = fastws.CloseNormalClosure
		}
		c.CloseFrame(code)
		return nil
	})
	ws.SetReadLimit(int64(max(app.MaxMessageSize*readLimitFactor, minHardLimit)))

	if err := w.admit(ctx, c); err != nil {
		c.Close(err)
	} else {
		defer w.release(ctx, c)
		w.stats.Connected(app.ID)
		defer func() { w.stats.Disconnected(app.ID, c.CloseCode()) }()
		c.Send(Established(c))
	}

	gone := w.readLoop(ctx, ws, c)
	c.Finish(gone)
	w.messages.Disconnected(ctx, c)
}

// admit counts c against its app's cluster-wide connection cap and
// registers it. A shared state that cannot be reached admits the socket: a
// Redis outage must not lock clients out; the count is restored when the
// node re-asserts its share.
func (w *WebSocket) admit(ctx context.Context, c *connection.Conn) *pusher.Error {
	var perr *pusher.Error
	w.share.Change(func() {
		app := c.App()
		if err := w.registry.Add(c); err != nil {
			perr = pusher.Fatalf(pusher.CodeGeneric, "Server is restarting")
			return
		}
		ok, err := w.state.AddConnection(ctx, app.ID, app.MaxConnections)
		if err != nil {
			w.log.Warn("counting a connection failed; admitting it", "err", err)
			return
		}
		if !ok {
			w.registry.Remove(c)
			perr = pusher.Fatalf(pusher.CodeOverQuota, "Application is over connection quota")
		}
	})
	return perr
}

// release undoes admit.
func (w *WebSocket) release(ctx context.Context, c *connection.Conn) {
	w.share.Change(func() {
		w.registry.Remove(c)
		if err := w.state.RemoveConnection(ctx, c.App().ID); err != nil {
			w.log.Warn("uncounting a connection failed", "err", err)
		}
	})
}

// readLoop reads frames until the socket ends and reports whether the
// client vanished (rather than closing cleanly).
func (w *WebSocket) readLoop(ctx context.Context, ws *websocket.Conn, c *connection.Conn) (gone bool) {
	limit := c.App().MaxMessageSize
	buf := make([]byte, 0, 512)
	for {
		kind, r, err := ws.NextReader()
		if err != nil {
			var ce *fastws.CloseError
			return !errors.As(err, &ce)
		}
		c.Touch()
		buf, err = readAtMost(r, buf[:0], limit)
		w.stats.MessageReceived(len(buf))
		switch {
		case err != nil && !errors.Is(err, errTooLarge):
			return true
		case kind != fastws.TextMessage:
			c.SendError(pusher.Errorf(pusher.CodeGeneric, "Binary frames are not supported"))
		case err != nil:
			c.SendError(pusher.Errorf(pusher.CodeGeneric, "Message too large: the limit is %d bytes", limit))
		default:
			if w.debug {
				w.log.Debug("frame in", "socket_id", c.ID(), "frame", connection.Excerpt(buf))
			}
			w.messages.Handle(ctx, c, buf)
		}
		if cap(buf) > 4096 {
			buf = make([]byte, 0, 512) // let one large frame's buffer go
		}
		c.Throttle()
	}
}

var errTooLarge = errors.New("message too large")

// readAtMost reads r into buf; past limit bytes it discards the rest and
// returns errTooLarge.
func readAtMost(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return buf, err
			}
			return buf, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
