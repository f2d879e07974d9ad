package lifecycle

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"
)

func TestLoopRunsFromStartToStop(t *testing.T) {
	var started, stopped atomic.Bool
	running := make(chan struct{})
	app := fxtest.New(t, fx.Invoke(func(lc fx.Lifecycle) {
		Loop(lc, func(ctx context.Context) {
			started.Store(true)
			close(running)
			<-ctx.Done()
			stopped.Store(true)
		})
	}))
	assert.False(t, started.Load(), "nothing runs before the start")
	app.RequireStart()
	<-running
	app.RequireStop()
	assert.True(t, stopped.Load(), "stop waits for the loop to return")
}
