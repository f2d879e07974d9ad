package server

import (
	"log/slog"

	"go.uber.org/fx"
)

// Module provides *Server and its *fiber.App, and binds the listener when
// the app starts. Composed last, its hook stops first: stop accepting, then
// drain sockets, before the modules beneath it stop.
var Module = fx.Module("server",
	fx.Provide(fx.Annotate(New, fx.ParamTags(``, ``, ``, `optional:"true"`)), (*Server).App),
	fx.Invoke(func(lc fx.Lifecycle, s *Server) {
		lc.Append(fx.Hook{OnStart: s.Start, OnStop: s.Stop})
	}),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "server") }),
)
