// Package scalingtest provides Bus, an in-memory stand-in for the Redis
// that Fizz nodes share, for fast in-process module tests: each node gets
// a Provider (a scaling.PubSubProvider) from Bus.Node, and every node sees
// every published envelope in one global order, as Redis pub/sub does.
//
// Concurrency: Bus.mu guards the set of nodes and orders every Publish, so
// all nodes queue envelopes in the same order. Each Provider has its own
// lock for its queue and state, and delivers on its own goroutine, one
// envelope at a time. Lock order: Bus.mu, then Provider.mu. No lock is held
// while a callback runs.
//
// scalingtest imports scaling and the standard library only. It is meant
// for tests; nothing in production imports it.
package scalingtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/fizz-server/fizz/scaling"
)

// Bus is an in-memory pub/sub shared by the nodes made with Node.
type Bus struct {
	mu    sync.Mutex
	nodes map[string]*Provider // every node not yet closed, by id
	state *scaling.LocalState
}

// NewBus returns a Bus with no nodes.
func NewBus() *Bus {
	return &Bus{nodes: make(map[string]*Provider)}
}

// Node returns a new node's provider on the bus. It receives nothing until
// its Subscribe is called, like a node that has not yet subscribed to Redis.
func (b *Bus) Node() *Provider {
	p := &Provider{
		bus:    b,
		node:   scaling.NewNodeID(),
		notify: make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.nodes[p.node] = p
	return p
}

// State returns node's view of one scaling.State shared by every node of
// the bus (kept in memory), for tests that need cluster-wide presence,
// subscription, cache and connection counts. Member transitions are
// published through node. Replace each node's state with its view:
// fx.Replace(fx.Annotate(bus.State(node), fx.As(new(scaling.State)))).
func (b *Bus) State(node *Provider) scaling.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == nil {
		b.state = scaling.NewLocalState(node, scaling.Config{})
	}
	return b.state.ForNode(node)
}

// ErrNoNode is returned by Reply when the target node is not subscribed.
var ErrNoNode = errors.New("scalingtest: no such node on the bus")

// Provider is one node's scaling.PubSubProvider on a Bus.
type Provider struct {
	bus  *Bus
	node string

	mu         sync.Mutex
	queue      []message
	subscribed bool
	closed     bool
	notify     chan struct{} // cap 1: the queue has something
	stop       chan struct{} // closed by Close
	wg         sync.WaitGroup
}

// message is one envelope on its way to a node, encoded as Redis carries it.
type message struct {
	data []byte
}

var _ scaling.PubSubProvider = (*Provider)(nil)

// Node returns this node's id.
func (p *Provider) Node() string { return p.node }

// Ping reports the link state, as the Redis provider does for /up: nil
// until the node is closed.
func (p *Provider) Ping(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return scaling.ErrClosed
	}
	return nil
}

// Publish queues e for every subscribed node, this one included, and
// returns how many nodes it was queued for. It stamps e.Origin and never
// waits for delivery.
func (p *Provider) Publish(_ context.Context, e scaling.Envelope) (int64, error) {
	data, err := p.encode(e)
	if err != nil {
		return 0, err
	}
	b := p.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.isClosed() {
		return 0, scaling.ErrClosed
	}
	var n int64
	for _, node := range b.nodes {
		if node.enqueue(message{data: data}) {
			n++
		}
	}
	return n, nil
}

// Reply queues e for the node with id node only.
func (p *Provider) Reply(_ context.Context, node string, e scaling.Envelope) error {
	data, err := p.encode(e)
	if err != nil {
		return err
	}
	b := p.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.isClosed() {
		return scaling.ErrClosed
	}
	target := b.nodes[node]
	if target == nil || !target.enqueue(message{data: data}) {
		return fmt.Errorf("%w: %q", ErrNoNode, node)
	}
	return nil
}

// encode stamps e as a node does and encodes it as it would travel.
func (p *Provider) encode(e scaling.Envelope) ([]byte, error) {
	if e.V == 0 {
		e.V = scaling.Version
	}
	e.Origin = p.node
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("scalingtest: encode envelope: %w", err)
	}
	return data, nil
}

func (p *Provider) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// enqueue adds m to the node's queue and reports whether the node takes
// it (it is subscribed and not closed). Caller holds Bus.mu.
func (p *Provider) enqueue(m message) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.subscribed || p.closed {
		return false
	}
	p.queue = append(p.queue, m)
	select {
	case p.notify <- struct{}{}:
	default:
	}
	return true
}

// Subscribe starts the node's delivery goroutine, which hands every
// envelope to deliver, one at a time, in the bus's order. It returns at once.
func (p *Provider) Subscribe(_ context.Context, deliver func(context.Context, scaling.Envelope)) error {
	// Bus.mu first: from the moment the node counts as subscribed, every
	// Publish reaches it.
	p.bus.mu.Lock()
	defer p.bus.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return scaling.ErrClosed
	}
	if p.subscribed {
		return errors.New("scalingtest: already subscribed")
	}
	p.subscribed = true
	ctx, cancel := context.WithCancel(context.Background())
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer cancel()
		p.run(ctx, deliver)
	}()
	return nil
}

func (p *Provider) run(ctx context.Context, deliver func(context.Context, scaling.Envelope)) {
	for {
		select {
		case <-p.stop:
			return
		case <-p.notify:
		}
		for {
			p.mu.Lock()
			if len(p.queue) == 0 || p.closed {
				p.mu.Unlock()
				break
			}
			m := p.queue[0]
			p.queue[0] = message{}
			p.queue = p.queue[1:]
			p.mu.Unlock()
			e, err := scaling.DecodeEnvelope(m.data)
			if err != nil {
				continue // as a node drops a bad envelope; Publish never makes one
			}
			deliver(ctx, e)
		}
	}
}

// Close takes the node off the bus, stops delivery and waits for the
// delivery goroutine. Envelopes still queued are dropped. It may be called
// more than once.
func (p *Provider) Close() error {
	b := p.bus
	b.mu.Lock()
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		p.queue = nil
		close(p.stop)
	}
	p.mu.Unlock()
	delete(b.nodes, p.node)
	b.mu.Unlock()
	p.wg.Wait()
	return nil
}
