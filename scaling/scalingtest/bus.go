// Package scalingtest provides Bus, an in-memory stand-in for the Redis
// that Fizz nodes share, for fast in-process module tests: each node gets
// a Provider (a scaling.PubSubProvider) from Bus.Node, and every node sees
// every published envelope in one global order, as Redis pub/sub does.
// A node made with Node and subscribed with a deliver that does nothing is
// a node that is counted but never answers.
//
// A Provider also has a few controls for tests: Published (what the node
// published), FailPublish (Publish fails, as when PUBLISH does), CutOff
// (the node's link is down: Publish delivers to the node alone and returns
// an error such as scaling.ErrLocalOnly, as the Redis provider does), Hold
// and Release (the test decides when envelopes reach the node) and Flush
// (wait until what was queued for the node has been delivered).
//
// Concurrency: Bus.mu guards the set of nodes and orders every Publish, so
// all nodes queue envelopes in the same order. Each Provider has its own
// lock for its queue, its controls and its counts, and delivers on its own
// goroutine, one envelope at a time. Flush waits on a channel that the
// Provider closes (and replaces) whenever a delivery ends, Hold is called
// or the node closes. Lock order: Bus.mu, then Provider.mu. No lock is
// held while a callback runs.
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
// Subscribed with a deliver that does nothing, it is a node that Publish
// counts but that never answers.
func (b *Bus) Node() *Provider {
	p := &Provider{
		bus:     b,
		node:    scaling.NewNodeID(),
		notify:  make(chan struct{}, 1),
		stop:    make(chan struct{}),
		changed: make(chan struct{}),
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

// ErrNoNode is returned by Reply when the target node is not subscribed
// (or is cut off).
var ErrNoNode = errors.New("scalingtest: no such node on the bus")

// ErrHeld is returned by Flush when the node is held (Hold) with envelopes
// still to deliver: they wait for Release.
var ErrHeld = errors.New("scalingtest: deliveries to the node are held")

// Provider is one node's scaling.PubSubProvider on a Bus.
type Provider struct {
	bus  *Bus
	node string

	mu         sync.Mutex
	queue      []message
	subscribed bool
	closed     bool
	held       bool          // Hold: the queue waits for Release
	failErr    error         // FailPublish: Publish fails with it
	cutOff     error         // CutOff: the link is down; Publish returns it
	published  [][]byte      // every envelope Publish sent, encoded
	queued     uint64        // envelopes ever queued for this node
	delivered  uint64        // of those, handed to deliver and returned
	changed    chan struct{} // closed and replaced by signal
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

// Ping reports the link state, as the Redis provider does for /up:
// scaling.ErrClosed once the node is closed, CutOff's error while it is
// cut off, nil otherwise.
func (p *Provider) Ping(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return scaling.ErrClosed
	}
	return p.cutOff
}

// Publish queues e for every subscribed node, this one included, and
// returns how many nodes it was queued for. It stamps e.Origin and never
// waits for delivery. After FailPublish it delivers nothing and fails;
// while the node is cut off (CutOff) it queues e for this node only and
// returns 1 and CutOff's error.
func (p *Provider) Publish(_ context.Context, e scaling.Envelope) (int64, error) {
	data, err := p.encode(e)
	if err != nil {
		return 0, err
	}
	b := p.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	cutOff, err := p.sent(data)
	if err != nil {
		return 0, err
	}
	if cutOff != nil {
		p.enqueue(message{data: data}, true)
		return 1, cutOff
	}
	var n int64
	for _, node := range b.nodes {
		if node.enqueue(message{data: data}, node == p) {
			n++
		}
	}
	return n, nil
}

// sent records data as published unless Publish is to fail, and returns
// the error to fail with, or the link's error while the node is cut off.
// Caller holds Bus.mu.
func (p *Provider) sent(data []byte) (cutOff, failed error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return nil, scaling.ErrClosed
	case p.failErr != nil:
		return nil, p.failErr
	}
	p.published = append(p.published, data)
	return p.cutOff, nil
}

// Reply queues e for the node with id node only. While this node is cut
// off (CutOff) a reply to another node fails with CutOff's error; a reply
// to a node that is cut off fails with ErrNoNode. FailPublish does not
// touch Reply.
func (p *Provider) Reply(_ context.Context, node string, e scaling.Envelope) error {
	data, err := p.encode(e)
	if err != nil {
		return err
	}
	b := p.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	p.mu.Lock()
	closed, cutOff := p.closed, p.cutOff
	p.mu.Unlock()
	switch {
	case closed:
		return scaling.ErrClosed
	case cutOff != nil && node != p.node:
		return fmt.Errorf("scalingtest: reply to %q: %w", node, cutOff)
	}
	target := b.nodes[node]
	if target == nil || !target.enqueue(message{data: data}, target == p) {
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

// enqueue adds m to the node's queue and reports whether the node takes
// it: it is subscribed, not closed, and not cut off unless m comes from
// the node itself (local). Caller holds Bus.mu.
func (p *Provider) enqueue(m message, local bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.subscribed || p.closed || (p.cutOff != nil && !local) {
		return false
	}
	p.queue = append(p.queue, m)
	p.queued++
	p.wake()
	return true
}

// wake tells the delivery goroutine that the queue may have something for
// it. Caller holds p.mu.
func (p *Provider) wake() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// signal wakes every Flush waiting on the node. Caller holds p.mu.
func (p *Provider) signal() {
	close(p.changed)
	p.changed = make(chan struct{})
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
			if len(p.queue) == 0 || p.closed || p.held {
				p.mu.Unlock()
				break
			}
			m := p.queue[0]
			p.queue[0] = message{}
			p.queue = p.queue[1:]
			p.mu.Unlock()
			// A bad envelope is dropped, as a node drops it; Publish never
			// makes one.
			if e, err := scaling.DecodeEnvelope(m.data); err == nil {
				deliver(ctx, e)
			}
			p.mu.Lock()
			p.delivered++
			p.signal()
			p.mu.Unlock()
		}
	}
}

// Waiting reports the envelopes queued for the node and not yet handed
// to deliver.
func (p *Provider) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// Published returns every envelope this node's Publish has sent so far,
// in order and as they travelled (stamped with the version and this node
// as their origin), whether or not any node received them. A Publish that
// failed sent nothing; one made while cut off sent its envelope to this
// node alone.
func (p *Provider) Published() []scaling.Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]scaling.Envelope, 0, len(p.published))
	for _, data := range p.published {
		var e scaling.Envelope
		_ = json.Unmarshal(data, &e) // made by encode: it decodes
		out = append(out, e)
	}
	return out
}

// FailPublish makes every later Publish of this node deliver nothing and
// return 0 and err, as the Redis provider does when PUBLISH fails; nil
// makes Publish work again. It comes before CutOff.
func (p *Provider) FailPublish(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failErr = err
}

// CutOff takes the node's link to the bus down, as the Redis provider's
// link to Redis goes down, while err is not nil: every later Publish
// queues its envelope for this node only and returns 1 and err (give
// scaling.ErrLocalOnly to be the Redis provider); other nodes' envelopes
// neither reach the node nor count it; Ping returns err. nil brings the
// link back. Envelopes already queued for the node are still delivered.
func (p *Provider) CutOff(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = err
}

// Hold keeps the envelopes queued for the node, those already there and
// those to come, from being delivered until Release: the test decides
// when another node's envelopes reach this one. A delivery under way ends
// as usual. The node still takes envelopes, and Publish counts it.
func (p *Provider) Hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = true
	p.signal() // a waiting Flush returns ErrHeld
}

// Release ends Hold: the delivery goroutine hands the envelopes kept
// meanwhile to deliver, in order, then goes on as before. It returns at
// once; Flush waits until they are delivered.
func (p *Provider) Release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = false
	p.wake()
}

// Flush waits until every envelope queued for this node before the call
// has been delivered (deliver has returned), and returns nil; envelopes
// queued later, such as those the deliveries cause, need another Flush.
// A node that is not subscribed has nothing to deliver. Flush returns
// ErrHeld at once while the node is held with envelopes still to deliver,
// scaling.ErrClosed if the node closes first, and ctx's error if ctx ends
// first. It must not be called from deliver, which would wait for itself.
func (p *Provider) Flush(ctx context.Context) error {
	p.mu.Lock()
	target := p.queued
	for {
		switch {
		case p.delivered >= target:
			p.mu.Unlock()
			return nil
		case p.closed:
			p.mu.Unlock()
			return scaling.ErrClosed
		case p.held:
			p.mu.Unlock()
			return ErrHeld
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
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
		p.signal()
	}
	p.mu.Unlock()
	delete(b.nodes, p.node)
	b.mu.Unlock()
	p.wg.Wait()
	return nil
}
