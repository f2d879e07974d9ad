package scaling

import (
	"context"

	"go.uber.org/fx"
)

// PubSubProvider publishes envelopes to every node and delivers the
// envelopes of every node. It mirrors Reverb's PubSubProvider.
type PubSubProvider interface {
	// Publish sends e to every node, this one included, and reports how
	// many nodes received it. It stamps e.Origin with this node's id.
	Publish(ctx context.Context, e Envelope) (int64, error)
	// Reply sends e to the node with id node only (the answer to a query).
	Reply(ctx context.Context, node string, e Envelope) error
	// Node returns this node's id, random per process.
	Node() string
	// Subscribe starts the loop that hands incoming envelopes to deliver,
	// one at a time and in order. It returns at once.
	Subscribe(ctx context.Context, deliver func(context.Context, Envelope)) error
	// Waiting reports how many envelopes have arrived and wait for
	// deliver, behind the one it is handling: a handler that sees none
	// knows that nothing follows at once (the dispatcher then writes an
	// event to idle sockets itself, rather than leave it for writers that
	// would join it with the next). It is a hint, read without a lock.
	Waiting() int
	// Close stops delivery and waits for the provider's goroutines to exit.
	Close() error
}

// Handler consumes the envelopes of one kind.
type Handler interface {
	Kind() string
	Handle(ctx context.Context, e Envelope)
}

// AsHandler annotates a constructor whose result implements Handler so
// that fx feeds it into the group the scaling module routes envelopes to.
func AsHandler(f any) any {
	return fx.Annotate(f, fx.As(new(Handler)), fx.ResultTags(`group:"scaling.handlers"`))
}

// Link reports the state of this node's link to the cluster, from
// memory (no round trip): nil while it is up. Local is always up.
type Link interface {
	Ping(ctx context.Context) error
}
