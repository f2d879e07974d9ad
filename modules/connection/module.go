package connection

import "go.uber.org/fx"

// Module provides the node's *Registry of live sockets, observed by the
// graph's Observer when there is one (stats provides it).
var Module = fx.Module("connection",
	fx.Provide(newRegistry),
)

// registryParams lists what newRegistry takes from the graph.
type registryParams struct {
	fx.In
	Observer Observer `optional:"true"`
}

func newRegistry(p registryParams) *Registry {
	r := NewRegistry()
	r.SetObserver(p.Observer)
	return r
}
