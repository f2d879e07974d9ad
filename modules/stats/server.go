package stats

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fizz-server/fizz/modules/server"
)

// readHeaderTimeout bounds a scraper's request headers.
const readHeaderTimeout = 5 * time.Second

// Server serves /metrics on the metrics listener, apart from the
// WebSocket and HTTP API listener so that it can stay on a private address,
// and whatever else is mounted with Handle (the debug console).
type Server struct {
	cfg        Config
	mux        *http.ServeMux
	onShutdown []func()
	log        *slog.Logger

	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when Serve has returned
}

// NewServer returns a Server for s's registry. It binds nothing until Start.
func NewServer(cfg Config, s *Stats, log *slog.Logger) *Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.Handler())
	return &Server{cfg: cfg, mux: mux, log: log}
}

// Handle serves pattern (an http.ServeMux pattern) with h on the metrics
// listener, beside /metrics. Call it before Start.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// OnShutdown has Stop call f as it begins, so that requests that do not
// end by themselves (a stream) can be told to end. Call it before Start.
func (s *Server) OnShutdown(f func()) { s.onShutdown = append(s.onShutdown, f) }

// Start binds the listener, so a busy port fails start, and serves on a
// goroutine that Stop waits for.
func (s *Server) Start(context.Context) error {
	addr := net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil && s.cfg.PortSetting == "" && errors.Is(err, syscall.EADDRINUSE) {
		// The default port, taken by another node on this host: any port
		// will do, and the log says which.
		free := net.JoinHostPort(s.cfg.Host, "0")
		if ln, err = net.Listen("tcp", free); err == nil {
			s.log.Warn("the default metrics port is in use (another node on this host?): serving metrics on another port; set FIZZ_METRICS_PORT to choose",
				"default", addr, "addr", ln.Addr().String())
		}
	}
	if err != nil {
		setting := s.cfg.PortSetting
		if setting == "" {
			setting = "FIZZ_METRICS_PORT (default)"
		}
		return &server.ListenError{Setting: setting, Addr: addr, Err: err}
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	for _, f := range s.onShutdown {
		srv.RegisterOnShutdown(f)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.srv, s.ln, s.done = srv, ln, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metrics listener stopped", "err", err)
		}
	}()
	s.log.Info("serving metrics", "addr", ln.Addr().String())
	return nil
}

// Addr returns the bound address, or "" before Start.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Stop stops accepting, lets running scrapes finish until ctx ends, then
// cuts the rest, and waits for the serving goroutine.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close() // the stop budget is spent; drop the scrapes left
	}
	<-done
	return err
}
