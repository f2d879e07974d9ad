package scaling_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/fizz-server/fizz/scaling"
)

// pingHandler is a Handler that hands every envelope to a channel.
type pingHandler struct {
	kind string
	got  chan scaling.Envelope
}

func (h *pingHandler) Kind() string { return h.kind }
func (h *pingHandler) Handle(_ context.Context, e scaling.Envelope) {
	h.got <- e
}

func moduleOptions(extra ...fx.Option) fx.Option {
	return fx.Options(
		scaling.Module,
		fx.Supply(scaling.Config{}, slog.New(slog.DiscardHandler)),
		fx.NopLogger,
		fx.Options(extra...),
	)
}

func TestModuleDeliversThroughLocal(t *testing.T) {
	h := &pingHandler{kind: "ping", got: make(chan scaling.Envelope, 1)}
	var p scaling.PubSubProvider
	var state scaling.State
	app := fxtest.New(t, moduleOptions(
		fx.Provide(scaling.AsHandler(func() *pingHandler { return h })),
		fx.Populate(&p, &state),
	))
	app.RequireStart()

	n, err := p.Publish(context.Background(), scaling.Envelope{Kind: "ping", AppID: "app-1"})
	require.NoError(t, err)
	assert.Equal(t, int64(1), n)
	select {
	case e := <-h.got:
		assert.Equal(t, "app-1", e.AppID)
		assert.Equal(t, p.Node(), e.Origin)
	case <-time.After(5 * time.Second):
		t.Fatal("the handler got nothing")
	}
	assert.IsType(t, &scaling.Local{}, p, "scaling off means Local")
	assert.IsType(t, &scaling.LocalState{}, state, "and the state in memory")

	app.RequireStop()
	_, err = p.Publish(context.Background(), scaling.Envelope{Kind: "ping"})
	assert.ErrorIs(t, err, scaling.ErrClosed, "OnStop closes the provider")
}

// twinHandler is a second Handler type for the kind "ping".
type twinHandler struct{ pingHandler }

func TestModuleRefusesTwoHandlersOfOneKind(t *testing.T) {
	app := fx.New(moduleOptions(
		fx.Provide(scaling.AsHandler(func() *pingHandler { return &pingHandler{kind: "ping"} })),
		fx.Provide(scaling.AsHandler(func() *twinHandler { return &twinHandler{pingHandler{kind: "ping"}} })),
	))

	err := app.Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `two handlers for envelope kind "ping"`)
}
