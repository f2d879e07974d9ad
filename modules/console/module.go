package console

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/lifecycle"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Module provides the *Feed and its two envelope handlers, and *Samples;
// it runs both for the life of the app.
var Module = fx.Module("console",
	fx.Provide(NewFeed, newSamples),
	fx.Provide(scaling.AsHandler(func(f *Feed) scaling.Handler { return f.WatchHandler() })),
	fx.Provide(scaling.AsHandler(func(f *Feed) scaling.Handler { return f.EventsHandler() })),
	fx.Invoke(run),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "console") }),
)

// sources reads a node's sockets from its Registry and its events from
// its Stats.
type sources struct {
	*connection.Registry
	*stats.Stats
}

func newSamples(r *connection.Registry, s *stats.Stats, p *apps.Provider) *Samples {
	return NewSamples(sources{r, s}, p.All())
}

func run(lc fx.Lifecycle, f *Feed, s *Samples) {
	lifecycle.Loop(lc, f.Run)
	lifecycle.Loop(lc, s.Run)
}
