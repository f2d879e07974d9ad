package webhooks

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/lifecycle"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Module provides the *Sender and runs it while the app runs.
var Module = fx.Module("webhooks",
	fx.Provide(newSender),
	fx.Invoke(run),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "webhooks") }),
)

// params lists what newSender takes; Stats and Console are absent in
// module tests.
type params struct {
	fx.In
	Config  Config
	Apps    *apps.Provider
	Outbox  scaling.Outbox
	Scaling scaling.Config
	Log     *slog.Logger
	Stats   *stats.Stats  `optional:"true"`
	Console *console.Feed `optional:"true"`
}

func newSender(p params) *Sender {
	return New(p.Config, p.Apps.All(), p.Outbox, p.Scaling.Lease, p.Stats, p.Console, p.Log)
}

// run runs Sender.Run for the life of the app.
func run(lc fx.Lifecycle, s *Sender) { lifecycle.Loop(lc, s.Run) }
