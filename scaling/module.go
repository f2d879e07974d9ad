package scaling

import (
	"context"
	"log/slog"

	"go.uber.org/fx"
)

// Module provides the PubSubProvider that Config selects and starts its
// subscription loop with the app; the loop routes each envelope to the
// Handler of its kind from the "scaling.handlers" group.
var Module = fx.Module("scaling",
	fx.Provide(newProvider, newState),
	fx.Invoke(startSubscription),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "scaling") }),
)

// newProvider is the one factory that returns an interface: Local when
// scaling is off, Redis when it is on.
func newProvider(cfg Config, log *slog.Logger) (PubSubProvider, error) {
	if !cfg.Enabled {
		return NewLocal(), nil
	}
	return NewRedis(cfg, log)
}

// newState returns the shared State that goes with the provider: in Redis
// beside a Redis provider, in memory otherwise.
func newState(cfg Config, p PubSubProvider, log *slog.Logger) State {
	if r, ok := p.(*Redis); ok {
		return NewRedisState(r.Client(), cfg.Channel, r.Node(), cfg.Lease, log)
	}
	return NewLocalState()
}

type subscriptionParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	PubSub    PubSubProvider
	Handlers  []Handler `group:"scaling.handlers"`
	Log       *slog.Logger
}

func startSubscription(p subscriptionParams) error {
	router, err := NewRouter(p.Handlers, p.Log)
	if err != nil {
		return err
	}
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			return p.PubSub.Subscribe(ctx, router.Deliver)
		},
		OnStop: func(context.Context) error {
			return p.PubSub.Close()
		},
	})
	return nil
}
