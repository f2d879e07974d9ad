package connection

import "go.uber.org/fx"

// Module provides the node's *Registry of live sockets.
var Module = fx.Module("connection",
	fx.Provide(NewRegistry),
)
