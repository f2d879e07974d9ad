// Package lifecycle ties long-running loops to an fx app's life.
package lifecycle

import (
	"context"
	"sync"

	"go.uber.org/fx"
)

// Loop runs run in its own goroutine from the app's start until its stop:
// stopping cancels run's context and waits for run to return.
func Loop(lc fx.Lifecycle, run func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			wg.Go(func() { run(ctx) })
			return nil
		},
		OnStop: func(context.Context) error {
			cancel()
			wg.Wait()
			return nil
		},
	})
}
