package app

import (
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/fizz-server/fizz/handlers"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/console"
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
	cfg.Scaling.Webhooks, cfg.Scaling.SubscriptionCounts = map[string][]string{}, map[string]bool{}
	for _, a := range cfg.Apps {
		if a.SubscriptionCount {
			cfg.Scaling.SubscriptionCounts[a.ID] = true
		}
		for _, name := range pusher.WebhookEvents { // the events one of the app's webhooks wants
			if slices.ContainsFunc(a.Webhooks, func(w apps.Webhook) bool { return len(w.EventTypes) == 0 || slices.Contains(w.EventTypes, name) }) {
				cfg.Scaling.Webhooks[a.ID] = append(cfg.Scaling.Webhooks[a.ID], name)
			}
		}
	}
	return fx.Options(
		fx.Supply(cfg.Server, cfg.Scaling, cfg.Apps, cfg.Webhooks, handlers.Config{Path: cfg.Server.Path, Debug: cfg.Log.Debug}, log,
			stats.Config{Host: cfg.Metrics.Host, Port: cfg.Metrics.Port, PortSetting: cfg.Metrics.PortSetting},
			connection.Config{MaxSockets: cfg.Server.MaxSockets, Limits: connection.Limits{Grace: cfg.Server.SlowConsumerGrace, MaxBytes: cfg.Server.MaxQueuedBytes}}),
		fx.WithLogger(func() fxevent.Logger {
			// Below debug: FIZZ_DEBUG is for Fizz's frames and decisions. fx's
			// errors still come at error level.
			l := &fxevent.SlogLogger{Logger: log.With("component", "fx")}
			l.UseLogLevel(FxLevel)
			return l
		}),
		fx.StopTimeout(StopTimeout+cfg.Server.ShutdownGrace),
		scaling.Module, apps.Module, connection.Module, channels.Module, console.Module, membership.Module, dispatcher.Module,
		webhooks.Module, metrics.Module, stats.Module, handlers.Module, server.Module,
	)
}

// NewLogger returns the process logger: text or JSON as cfg.Format says
// ("" picks text when terminal is true), at cfg.Level, debug when cfg.Debug.
func NewLogger(cfg LogConfig, w io.Writer, terminal bool) *slog.Logger {
	level := map[string]slog.Level{"debug": slog.LevelDebug, "warn": slog.LevelWarn, "error": slog.LevelError}[strings.ToLower(cfg.Level)] // else info
	if cfg.Debug {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" || cfg.Format == "" && terminal {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
