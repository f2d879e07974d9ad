package scaling

import (
	"context"
	"fmt"
	"log/slog"

	"go.uber.org/fx"
)

// Module provides the PubSubProvider that Config selects and starts its
// subscription loop with the app; the loop routes each envelope to the
// Handler of its kind from the "scaling.handlers" group.
var Module = fx.Module("scaling",
	fx.Provide(newProvider, newState, newOutbox),
	fx.Provide(fx.Annotate(stateHandlers, fx.ResultTags(`group:"scaling.handlers,flatten"`))),
	fx.Invoke(startSubscription),
	fx.Decorate(func(l *slog.Logger) *slog.Logger { return l.With("component", "scaling") }),
)

// providerParams lists what newProvider takes; the Observer is the
// graph's metrics (stats), absent in module tests.
type providerParams struct {
	fx.In
	Config   Config
	Log      *slog.Logger
	Observer Observer `optional:"true"`
}

// newProvider is the one factory that returns an interface: Local when
// scaling is off, Redis when it is on.
func newProvider(p providerParams) (PubSubProvider, error) {
	if !p.Config.Enabled {
		l := NewLocal()
		l.SetObserver(p.Observer)
		return l, nil
	}
	r, err := NewRedis(p.Config, p.Log)
	if err != nil {
		return nil, err
	}
	r.SetObserver(p.Observer)
	return r, nil
}

// newState returns the shared State that goes with the provider: in Redis
// beside a Redis provider, in memory otherwise.
func newState(cfg Config, p PubSubProvider, log *slog.Logger) State {
	if r, ok := p.(*Redis); ok {
		return NewRedisState(r, cfg, log)
	}
	return NewLocalState(p, cfg)
}

// newOutbox returns the outbox that goes with the state: both keep it.
func newOutbox(s State) (Outbox, error) {
	o, ok := s.(Outbox)
	if !ok {
		return nil, fmt.Errorf("scaling: %T keeps no webhook outbox", s)
	}
	return o, nil
}

// stateHandlers returns the handlers of the envelopes the state exchanges
// with other nodes: RedisState's recoveries; none for one node.
func stateHandlers(s State) []Handler {
	if r, ok := s.(*RedisState); ok {
		return r.Handlers()
	}
	return nil
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
