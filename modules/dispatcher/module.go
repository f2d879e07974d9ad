package dispatcher

import (
	"log/slog"

	"github.com/fizz-server/fizz/scaling"
	"go.uber.org/fx"
)

// Module provides *Dispatcher and registers it as the handler of "event"
// envelopes, and the Terminator as the handler of "terminate" envelopes.
var Module = fx.Module("dispatcher",
	fx.Provide(New),
	fx.Provide(scaling.AsHandler(func(d *Dispatcher) *Dispatcher { return d })),
	fx.Provide(scaling.AsHandler(NewTerminator)),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "dispatcher") }),
)
