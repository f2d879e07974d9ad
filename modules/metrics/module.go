package metrics

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Module provides *Handler and registers its query and reply handlers.
var Module = fx.Module("metrics",
	fx.Provide(newHandler),
	fx.Provide(scaling.AsHandler(func(h *Handler) Queries { return Queries{h} })),
	fx.Provide(scaling.AsHandler(func(h *Handler) Replies { return Replies{h} })),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "metrics") }),
)

// handlerParams lists what newHandler takes; Stats is absent in module
// tests.
type handlerParams struct {
	fx.In
	PubSub   scaling.PubSubProvider
	Channels *channels.Manager
	Registry *connection.Registry
	Config   scaling.Config
	Log      *slog.Logger
	Stats    *stats.Stats     `optional:"true"`
	Samples  *console.Samples `optional:"true"`
}

// newHandler is New, counting partial answers in Stats and answering
// the console's Samples.
func newHandler(p handlerParams) *Handler {
	h := New(p.PubSub, p.Channels, p.Registry, p.Config.Timeout, p.Stats, p.Log)
	h.AnswerSamples(p.Samples)
	return h
}
