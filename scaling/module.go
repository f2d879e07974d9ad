package scaling

import (
	"context"
	"log/slog"

	"go.uber.org/fx"
)

// Module provides what Config selects, as separate values: the
// PubSubProvider, the shared State, its webhook Outbox and the Link
// whose state /up and the metrics report (Local, Redis and the states
// that go with them when scaling is off or on). It starts the
// subscription loop with the app; the loop routes each envelope to the
// Handler of its kind from the "scaling.handlers" group.
var Module = fx.Module("scaling",
	fx.Provide(build),
	fx.Invoke(startSubscription),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "scaling") }),
)

// buildParams lists what build takes; the Observer is the graph's
// metrics (stats), absent in module tests.
type buildParams struct {
	fx.In
	Config   Config
	Log      *slog.Logger
	Observer Observer `optional:"true"`
}

// built is what the module provides.
type built struct {
	fx.Out
	PubSub PubSubProvider
	State  State
	Outbox Outbox
	Link   Link
	// Handlers are the state's own: RedisState's recoveries.
	Handlers []Handler `group:"scaling.handlers,flatten"`
}

// build makes the provider and the state that goes with it: Local and
// LocalState on one node, Redis and RedisState in a cluster.
func build(p buildParams) (built, error) {
	if !p.Config.Enabled {
		l := NewLocal(p.Observer)
		s := NewLocalState(l, p.Config)
		return built{PubSub: l, State: s, Outbox: s, Link: l}, nil
	}
	r, err := NewRedis(p.Config, p.Log, p.Observer)
	if err != nil {
		return built{}, err
	}
	s := NewRedisState(r, p.Config, p.Log)
	return built{PubSub: r, State: s, Outbox: s, Link: r, Handlers: s.Handlers()}, nil
}

type subscriptionParams struct {
	fx.In
	Lifecycle fx.Lifecycle
	PubSub    PubSubProvider
	Handlers  []Handler `group:"scaling.handlers"`
	Log       *slog.Logger
	Observer  Observer `optional:"true"`
}

func startSubscription(p subscriptionParams) error {
	router, err := NewRouter(p.Handlers, p.Log)
	if err != nil {
		return err
	}
	deliver := router.Deliver
	if obs := p.Observer; obs != nil {
		deliver = func(ctx context.Context, e Envelope) {
			obs.EnvelopeReceived()
			router.Deliver(ctx, e)
		}
	}
	p.Lifecycle.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			return p.PubSub.Subscribe(ctx, deliver)
		},
		OnStop: func(context.Context) error {
			return p.PubSub.Close()
		},
	})
	return nil
}
