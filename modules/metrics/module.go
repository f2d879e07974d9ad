package metrics

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/scaling"
)

// Module provides *Handler and registers its query and reply handlers.
var Module = fx.Module("metrics",
	fx.Provide(newHandler),
	fx.Provide(scaling.AsHandler(func(h *Handler) Queries { return Queries{h} })),
	fx.Provide(scaling.AsHandler(func(h *Handler) Replies { return Replies{h} })),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "metrics") }),
)

func newHandler(p scaling.PubSubProvider, m *channels.Manager, r *connection.Registry, cfg scaling.Config, log *slog.Logger) *Handler {
	return New(p, m, r, cfg.Timeout, log)
}
