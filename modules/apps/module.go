package apps

import "go.uber.org/fx"

// Module provides the *Provider built from the configured []App.
var Module = fx.Module("apps",
	fx.Provide(NewProvider),
)
