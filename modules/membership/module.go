package membership

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/lifecycle"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Module provides *Membership as this node's scaling.ShareSource and as
// the handler of presence and count envelopes, and runs the shared state's upkeep
// (scaling.State.Run) and the subscription counter while the app runs.
var Module = fx.Module("membership",
	fx.Provide(newMembership),
	fx.Provide(func(m *Membership) scaling.ShareSource { return m }),
	fx.Provide(scaling.AsHandler(func(m *Membership) *Membership { return m })),
	fx.Provide(scaling.AsHandler(func(m *Membership) scaling.Handler { return m.CountHandler() })),
	fx.Invoke(run),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "membership") }),
)

// params lists what newMembership takes; Stats and Console are absent in
// module tests.
type params struct {
	fx.In
	Channels *channels.Manager
	Registry *connection.Registry
	State    scaling.State
	Log      *slog.Logger
	Stats    *stats.Stats  `optional:"true"`
	Console  *console.Feed `optional:"true"`
}

func newMembership(p params) *Membership {
	return New(p.Channels, p.Registry, p.State, p.Stats, p.Console, p.Log)
}

// run runs Membership.Run for the life of the app.
func run(lc fx.Lifecycle, m *Membership) { lifecycle.Loop(lc, m.Run) }
