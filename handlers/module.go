package handlers

import (
	"log/slog"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/server"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Config is what the edge needs from Fizz's configuration.
type Config struct {
	// Path is the prefix before every route.
	Path string
	// Debug logs every frame in and out.
	Debug bool
}

// Module provides the controllers, mounts every route on the *fiber.App,
// and the debug console on the metrics listener.
var Module = fx.Module("handlers",
	fx.Provide(
		NewMessageHandler,
		NewWebSocket,
		newSignature,
		NewEventsController,
		NewChannelsController,
		NewUsersTerminateController,
		newHealthController,
		NewConsole,
	),
	fx.Invoke(Register, mountConsole),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "handlers") }),
)

func newSignature(p *apps.Provider, cfg Config) *Signature { return NewSignature(p, cfg.Path) }

// newHealthController reads the link state the scaling module provides.
func newHealthController(link scaling.Link, s *server.Server) *HealthController {
	return NewHealthController(link, s)
}

// mountConsole serves the debug console on the metrics listener, when it
// is on.
func mountConsole(cfg stats.Config, srv *stats.Server, c *Console) {
	if cfg.Port != 0 {
		c.Mount(srv)
	}
}

// Routes is everything Register mounts.
type Routes struct {
	fx.In
	Config    Config
	WebSocket *WebSocket
	Signature *Signature
	Events    *EventsController
	Channels  *ChannelsController
	Users     *UsersTerminateController
	Health    *HealthController
	Stats     *stats.Stats
}

// Register mounts every route under the configured prefix.
func Register(app *fiber.App, r Routes) {
	root := app.Group(r.Config.Path)
	// A socket outlives its handshake handler (see WebSocket.serve), so
	// fasthttp must leave hijacked connections open; the WebSocket closes them.
	app.Server().KeepHijackedConns = true
	root.Get("/app/:key", r.WebSocket.Handle)
	root.Get("/up", r.Health.Up)
	root.Get("/ready", r.Health.Ready)

	api := root.Group("/apps/:appId", apiStats(r.Stats, r.Config.Path), r.Signature.Handle)
	api.Post("/events", r.Events.Trigger)
	api.Post("/batch_events", r.Events.Batch)
	api.Get("/channels", r.Channels.Index)
	api.Get("/channels/:channel", r.Channels.Show)
	api.Get("/channels/:channel/users", r.Channels.Users)
	api.Get("/connections", r.Channels.Connections)
	api.Post("/users/:userId/terminate_connections", r.Users.Terminate)
}
