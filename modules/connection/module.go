package connection

import (
	"context"

	"go.uber.org/fx"
)

// Module provides the node's *Registry of live sockets and the *Writers
// pool that runs their writers while the app runs.
var Module = fx.Module("connection",
	fx.Provide(newRegistry, newWriters),
)

// registryParams is what newRegistry takes: the Config is optional
// (absent: no cap).
type registryParams struct {
	fx.In
	Config Config `optional:"true"`
}

func newRegistry(p registryParams) *Registry { return NewCappedRegistry(p.Config.MaxSockets) }

// Config is the node's socket limits.
type Config struct {
	// MaxSockets caps the node's sockets; 0: no cap.
	MaxSockets int
	// Limits say when a socket is a slow consumer.
	Limits Limits
}

// newWriters returns the pool, started and stopped with the app. Sockets
// get it when they are made (the WebSocket handler depends on it), so its
// hook is registered before the server's and it stops after the drain.
func newWriters(lc fx.Lifecycle) *Writers {
	w := NewWriters()
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error { w.Start(); return nil },
		OnStop:  func(context.Context) error { w.Stop(); return nil },
	})
	return w
}
