package scaling_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/fizz-server/fizz/scaling"
)

// countingObserver records what a provider reports.
type countingObserver struct {
	mu        sync.Mutex
	published []error
	received  int
}

func (o *countingObserver) EnvelopePublished(_ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.published = append(o.published, err)
}

func (o *countingObserver) EnvelopeReceived() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.received++
}

func (o *countingObserver) counts() (published []error, received int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.published...), o.received
}

func TestModuleHandsObserverToProviderAndLoop(t *testing.T) {
	obs := &countingObserver{}
	h := &pingHandler{kind: "ping", got: make(chan scaling.Envelope, 1)}
	var p scaling.PubSubProvider
	app := fxtest.New(t, moduleOptions(
		fx.Supply(fx.Annotate(obs, fx.As(new(scaling.Observer)))),
		fx.Provide(scaling.AsHandler(func() *pingHandler { return h })),
		fx.Populate(&p),
	))
	app.RequireStart()
	t.Cleanup(app.RequireStop)

	_, err := p.Publish(context.Background(), scaling.Envelope{Kind: "ping", AppID: "app-1"})
	require.NoError(t, err)
	select {
	case <-h.got:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler got nothing")
	}
	published, received := obs.counts()
	assert.Equal(t, []error{nil}, published)
	assert.Equal(t, 1, received, "counted before the handler ran")
}

func TestLocalObserverHearsFailedPublish(t *testing.T) {
	obs := &countingObserver{}
	l := scaling.NewLocal(obs)
	require.NoError(t, l.Close())

	_, err := l.Publish(context.Background(), scaling.Envelope{Kind: "ping"})
	require.ErrorIs(t, err, scaling.ErrClosed)
	published, _ := obs.counts()
	require.Len(t, published, 1)
	assert.ErrorIs(t, published[0], scaling.ErrClosed)
}
