package dispatcher

import (
	"context"
	"log/slog"
	"sync"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Module provides *Dispatcher and registers it as the handler of "event"
// envelopes, and the Terminator as the handler of "terminate" envelopes. It
// runs the shared state's upkeep (scaling.State.Run) while the app runs.
var Module = fx.Module("dispatcher",
	fx.Provide(newDispatcher),
	fx.Provide(scaling.AsHandler(func(d *Dispatcher) *Dispatcher { return d })),
	fx.Provide(scaling.AsHandler(NewTerminator)),
	fx.Invoke(runState),
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
	d := New(p.PubSub, p.Channels, p.Log)
	d.stats = p.Stats
	return d
}

// runState keeps this node's share of the shared state alive for the life
// of the app; the presence changes it finds are announced as member events.
func runState(lc fx.Lifecycle, state scaling.State, source scaling.ShareSource, d *Dispatcher) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			wg.Add(1)
			go func() {
				defer wg.Done()
				state.Run(ctx, source, d.Announce)
			}()
			return nil
		},
		OnStop: func(context.Context) error {
			cancel()
			wg.Wait()
			return nil
		},
	})
}
