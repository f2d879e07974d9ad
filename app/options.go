package app

import (
	"log/slog"
	"slices"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/fizz-server/fizz/handlers"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/modules/membership"
	"github.com/fizz-server/fizz/modules/metrics"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/server"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/modules/webhooks"
	"github.com/fizz-server/fizz/scaling"
)

// StopTimeout bounds a node's shutdown after the shutdown grace; it sits
// above the socket drain, which is bounded by the connection write and
// close budgets.
const StopTimeout = 15 * time.Second

// FxLevel is the level of fx's own events: below debug, so no setting of
// FIZZ_LOG_LEVEL shows them.
const FxLevel = slog.LevelDebug - 4

// Options composes a Fizz node from cfg, logging to log. Tests pass their
// own Config and logger, and swap parts with fx.Replace or fx.Decorate.
func Options(cfg Config, log *slog.Logger) fx.Option {
	cfg.Scaling.Webhooks = webhookKinds(cfg.Apps)
	cfg.Scaling.SubscriptionCounts = make(map[string]bool)
	for _, a := range cfg.Apps {
		if a.SubscriptionCount {
			cfg.Scaling.SubscriptionCounts[a.ID] = true
		}
	}
	return fx.Options(
		fx.Supply(cfg.Server, cfg.Scaling, cfg.Apps, cfg.Webhooks, handlers.Config{Path: cfg.Server.Path, Debug: cfg.Log.Debug}),
		fx.Supply(log),
		fx.Supply(stats.Config{Host: cfg.Metrics.Host, Port: cfg.Metrics.Port, PortSetting: cfg.Metrics.PortSetting}),
		fx.WithLogger(func() fxevent.Logger {
			// fx's own events sit below debug: FIZZ_DEBUG is for Fizz's
			// frames and decisions. Its errors still come at error level.
			l := &fxevent.SlogLogger{Logger: log.With("component", "fx")}
			l.UseLogLevel(FxLevel)
			return l
		}),
		fx.StopTimeout(StopTimeout+cfg.Server.ShutdownGrace),
		scaling.Module,
		apps.Module,
		connection.Module,
		channels.Module,
		membership.Module,
		dispatcher.Module,
		webhooks.Module,
		metrics.Module,
		stats.Module,
		handlers.Module,
		server.Module,
	)
}

// webhookKinds lists, per app with webhooks, every event name one of its
// webhooks wants (scaling.Config.Webhooks).
func webhookKinds(list []apps.App) map[string][]string {
	out := make(map[string][]string)
	for _, a := range list {
		for _, name := range pusher.WebhookEvents {
			for i := range a.Webhooks {
				if len(a.Webhooks[i].EventTypes) == 0 || slices.Contains(a.Webhooks[i].EventTypes, name) {
					out[a.ID] = append(out[a.ID], name)
					break
				}
			}
		}
	}
	return out
}
