package channels

import "go.uber.org/fx"

// Module provides the node's *Manager.
var Module = fx.Module("channels",
	fx.Provide(NewManager),
)
