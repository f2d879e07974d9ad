package stats

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/server"
	"github.com/fizz-server/fizz/scaling"
)

// Module provides *Stats, hands it to connection and scaling as their
// Observer, registers the scrape-time Gauges, and serves /metrics on the
// configured listener unless its port is 0.
var Module = fx.Module("stats",
	fx.Provide(
		New,
		fx.Annotate(func(s *Stats) *Stats { return s },
			fx.As(new(connection.Observer)), fx.As(new(scaling.Observer)), fx.As(new(server.Observer))),
		NewGauges,
		NewServer,
	),
	fx.Invoke(register, serve),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "stats") }),
)

// register adds the scrape-time gauges to the registry.
func register(s *Stats, g *Gauges) error { return s.Register(g) }

// serve runs the metrics listener with the app, when it is on.
func serve(lc fx.Lifecycle, cfg Config, srv *Server) {
	if cfg.Port == 0 {
		return
	}
	lc.Append(fx.StartStopHook(srv.Start, srv.Stop))
}
