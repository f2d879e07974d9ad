package dispatcher

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Module provides *Dispatcher and registers it as the handler of "event"
// envelopes, and the Terminator as the handler of "terminate" envelopes.
var Module = fx.Module("dispatcher",
	fx.Provide(newDispatcher),
	fx.Provide(scaling.AsHandler(func(d *Dispatcher) *Dispatcher { return d })),
	fx.Provide(scaling.AsHandler(NewTerminator)),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "dispatcher") }),
)

// dispatcherParams lists what newDispatcher takes; Stats is absent in
// module tests.
type dispatcherParams struct {
	fx.In
	PubSub   scaling.PubSubProvider
	Channels *channels.Manager
	Log      *slog.Logger
	Stats    *stats.Stats `optional:"true"`
}

// newDispatcher is New, counting events in Stats.
func newDispatcher(p dispatcherParams) *Dispatcher {
	return New(p.PubSub, p.Channels, p.Stats, p.Log)
}
