package connection

import (
	"context"

	"go.uber.org/fx"
)

// Module provides the node's *Registry of live sockets, observed by the
// graph's Observer when there is one (stats provides it), and runs its
// writer pool while the app runs.
var Module = fx.Module("connection",
	fx.Provide(newRegistry),
)

// registryParams lists what newRegistry takes from the graph.
type registryParams struct {
	fx.In
	Observer Observer `optional:"true"`
}

func newRegistry(lc fx.Lifecycle, p registryParams) *Registry {
	r := NewRegistry()
	r.SetObserver(p.Observer)
	// The writer pool outlives the server's drain: this module's hook is
	// registered before the server's, so it stops after it.
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error { r.Writers().Start(); return nil },
		OnStop:  func(context.Context) error { r.Writers().Stop(); return nil },
	})
	return r
}
