package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/server"
)

// TestNodeStopsRightAfterStart stops nodes the moment they have started.
// Server.Start serves on a goroutine; if Stop runs before that goroutine
// has handed the listener to fasthttp, Fiber's shutdown finds no listener
// to close, Serve then blocks in Accept, and Stop waits for it until its
// deadline (15 s with app.StopTimeout). A SIGTERM just after start, or a
// short test, hits it.
func TestNodeStopsRightAfterStart(t *testing.T) {
	t.Parallel()
	cfg := app.Config{
		Server: server.Config{Host: "127.0.0.1", Port: 0, MaxRequestSize: maxRequestSize},
		Apps:   []apps.App{{ID: appID, Key: appKey, Secret: appSecret}},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range 20 {
		fxApp := fx.New(app.Options(cfg, log), fx.NopLogger)
		require.NoError(t, fxApp.Err())
		require.NoError(t, fxApp.Start(t.Context()))
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err := fxApp.Stop(ctx)
		cancel()
		require.NoError(t, err, "the node did not stop within 2 s of starting")
	}
}
