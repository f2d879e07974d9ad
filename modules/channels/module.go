package channels

import (
	"go.uber.org/fx"

	"github.com/fizz-server/fizz/scaling"
)

// Module provides the node's *Manager and its share of the cluster state.
var Module = fx.Module("channels",
	fx.Provide(NewManager),
	fx.Provide(NewShareSource),
	fx.Provide(func(s *ShareSource) scaling.ShareSource { return s }),
)
