package scaling

import (
	"context"
	"fmt"
	"log/slog"
)

// Router hands each envelope to the Handler of its kind.
type Router struct {
	handlers map[string]Handler
	log      *slog.Logger
}

// NewRouter returns a Router over handlers. Two handlers of one kind are an error.
func NewRouter(handlers []Handler, log *slog.Logger) (*Router, error) {
	r := &Router{handlers: make(map[string]Handler, len(handlers)), log: log}
	for _, h := range handlers {
		if _, dup := r.handlers[h.Kind()]; dup {
			return nil, fmt.Errorf("scaling: two handlers for envelope kind %q", h.Kind())
		}
		r.handlers[h.Kind()] = h
	}
	return r, nil
}

// Deliver routes e to its handler; an unknown kind is logged and dropped.
func (r *Router) Deliver(ctx context.Context, e Envelope) {
	h, ok := r.handlers[e.Kind]
	if !ok {
		r.log.Warn("dropped envelope of unknown kind", "kind", e.Kind, "origin", e.Origin)
		return
	}
	h.Handle(ctx, e)
}
