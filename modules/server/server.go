package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/fizz-server/fizz/modules/connection"
)

// idleTimeout closes an idle HTTP keep-alive connection.
const idleTimeout = 120 * time.Second

// Observer hears the connections and requests a limit refused or cut
// (the stats implement it).
type Observer interface {
	Refused(reason string)
}

// Server is the node's HTTP and WebSocket listener.
type Server struct {
	cfg      Config
	app      *fiber.App
	registry *connection.Registry
	log      *slog.Logger
	obs      Observer // nil: none
	refusals *Refusals

	mu       sync.Mutex
	ln       net.Listener
	done     chan struct{} // closed when the listener loop has returned
	draining atomic.Bool
}

// New returns a Server whose *fiber.App answers every error as JSON
// {"error": "..."}. It binds nothing until Start. obs may be nil.
//
// A connection must send its request line and headers within
// HeaderTimeout, and its body within bodyTimeout, or it is answered 408
// and closed; an idle keep-alive connection is closed after idleTimeout.
// Only HTTP/1.0 and 1.1 are served.
func New(cfg Config, registry *connection.Registry, log *slog.Logger, obs Observer) *Server {
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = DefaultHeaderTimeout
	}
	s := &Server{cfg: cfg, registry: registry, log: log, obs: obs, refusals: NewRefusals()}
	fc := fiber.Config{
		AppName:               "fizz",
		DisableStartupMessage: true,
		BodyLimit:             cfg.MaxRequestSize,
		ReadTimeout:           cfg.HeaderTimeout,
		IdleTimeout:           idleTimeout,
		ErrorHandler:          s.errorHandler,
	}
	if cfg.MaxHandshakes > 0 {
		fc.Concurrency = cfg.MaxHandshakes
	}
	s.app = fiber.New(fc)
	s.app.Server().HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if n := h.ContentLength(); n != 0 {
			return fasthttp.RequestConfig{ReadTimeout: cfg.bodyTimeout(n)}
		}
		return fasthttp.RequestConfig{}
	}
	s.app.Use(func(c *fiber.Ctx) error {
		if p := c.Request().Header.Protocol(); !bytes.Equal(p, http11) && !bytes.Equal(p, http10) {
			s.refuse("http_version", "unsupported HTTP version", string(p))
			c.Set(fiber.HeaderConnection, "close")
			return fiber.NewError(fiber.StatusHTTPVersionNotSupported, "only HTTP/1.1 and HTTP/1.0 are served")
		}
		return c.Next()
	})
	return s
}

// The HTTP versions served.
var http11, http10 = []byte("HTTP/1.1"), []byte("HTTP/1.0")

// refuse counts a refusal and logs it at most once a minute per reason.
func (s *Server) refuse(reason, msg string, value string) {
	if s.obs != nil {
		s.obs.Refused(reason)
	}
	if s.refusals.Due(reason, "") {
		s.log.Warn(msg+" (logged once a minute)", "reason", reason, "value", value)
	}
}

// App returns the *fiber.App routes are mounted on.
func (s *Server) App() *fiber.App { return s.app }

// errorHandler renders every error as JSON; anything that is not a
// *fiber.Error is a server fault, logged and answered 500. A request
// too slow to arrive (408, from fasthttp) is counted and logged too.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	status, msg := fiber.StatusInternalServerError, "internal server error"
	var fe *fiber.Error
	if errors.As(err, &fe) {
		status, msg = fe.Code, fe.Message
	} else {
		s.log.Error("http handler failed", "method", c.Method(), "path", c.Path(), "err", err)
	}
	if status == fiber.StatusRequestTimeout {
		s.refuse("header_timeout", "request too slow to arrive, closed", c.Context().RemoteAddr().String())
	}
	return c.Status(status).JSON(fiber.Map{"error": msg})
}

// Start binds the port, so a busy port fails start, and serves on a
// goroutine that Stop waits for.
func (s *Server) Start(context.Context) error {
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		setting := s.cfg.PortSetting
		if setting == "" {
			setting = "FIZZ_SERVER_PORT (default)"
		}
		return &ListenError{Setting: setting, Addr: addr, Err: err}
	}
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			_ = ln.Close() // nothing was served on it
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		// wss:// and https:// on the same port. HTTP/1.1 only: the
		// WebSocket upgrade needs it.
		ln = tls.NewListener(ln, &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		})
	}
	// Stop closes the listener when draining starts and fiber closes it
	// again at shutdown: the second close must not fail its shutdown.
	ln = &closeOnce{Listener: ln}
	s.mu.Lock()
	s.ln = ln
	s.done = make(chan struct{})
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		if err := s.app.Listener(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("listener stopped", "err", err)
		}
	}()
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", s.cfg.TLSCert != "")
	return nil
}

// Draining reports whether the node has begun to stop: it still serves
// its sockets, but a load balancer should send new ones elsewhere.
func (s *Server) Draining() bool { return s.draining.Load() }

// Addr returns the bound address, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop stops accepting and turns the node unready, serves its sockets for
// ShutdownGrace more, lets HTTP requests in flight finish, then closes
// every socket with 4200, all within ctx. The port is free from the
// start, so a new process can take it while this one drains (a restart
// on one host). Fiber's shutdown does not wait for WebSockets, hence the
// Registry.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	done, ln := s.done, s.ln
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	// Stop accepting and turn unready at once; sockets are still served
	// for ShutdownGrace, and a load balancer has that long to notice
	// (GET /ready answers 503 on the connections it keeps).
	s.draining.Store(true)
	if cerr := ln.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		s.log.Warn("closing the listener", "err", cerr)
	}
	if grace := s.cfg.ShutdownGrace; grace > 0 {
		s.log.Info("draining: unready, closing sockets after the grace period", "grace", grace.String())
		t := time.NewTimer(grace)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	err := s.app.ShutdownWithContext(ctx)
	if cerr := s.registry.CloseAll(ctx); cerr != nil {
		err = errors.Join(err, fmt.Errorf("drain sockets: %w", cerr))
	}
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, ctx.Err())
	}
	return err
}

// closeOnce is a listener whose second Close does nothing.
type closeOnce struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *closeOnce) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}
