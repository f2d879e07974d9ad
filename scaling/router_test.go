package scaling

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kindHandler records the envelopes of one kind.
type kindHandler struct {
	kind string
	got  []Envelope
}

func (h *kindHandler) Kind() string                         { return h.kind }
func (h *kindHandler) Handle(_ context.Context, e Envelope) { h.got = append(h.got, e) }

var discard = slog.New(slog.DiscardHandler)

func TestRouterRoutesByKind(t *testing.T) {
	tests := []struct {
		name string
		give []string       // kinds delivered, in order
		want map[string]int // envelopes each handler got
	}{
		{name: "each to its handler", give: []string{"event", "query", "event"}, want: map[string]int{"event": 2, "query": 1}},
		{name: "unknown kinds are dropped", give: []string{"nope", "", "event"}, want: map[string]int{"event": 1, "query": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handlers := map[string]*kindHandler{"event": {kind: "event"}, "query": {kind: "query"}}
			r, err := NewRouter([]Handler{handlers["event"], handlers["query"]}, discard)
			require.NoError(t, err)

			for _, kind := range tt.give {
				r.Deliver(context.Background(), Envelope{V: Version, Kind: kind})
			}

			for kind, want := range tt.want {
				assert.Len(t, handlers[kind].got, want, kind)
				for _, e := range handlers[kind].got {
					assert.Equal(t, kind, e.Kind)
				}
			}
		})
	}
}

func TestRouterRefusesDuplicateKinds(t *testing.T) {
	_, err := NewRouter([]Handler{&kindHandler{kind: "event"}, &kindHandler{kind: "event"}}, discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"event"`)
}

func TestRouterWithoutHandlers(t *testing.T) {
	r, err := NewRouter(nil, discard)
	require.NoError(t, err)
	assert.NotPanics(t, func() { r.Deliver(context.Background(), Envelope{Kind: "event"}) })
}
