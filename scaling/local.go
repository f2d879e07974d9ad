package scaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// localQueue bounds the envelopes waiting for delivery; Publish waits for
// room rather than drop an event.
const localQueue = 4096

// ErrClosed is returned by Publish after Close.
var ErrClosed = errors.New("scaling: provider closed")

// Local is the single-node PubSubProvider: an in-process loopback that
// delivers every published envelope back to this node asynchronously, in
// publish order, on its own goroutine, and reports one receiver, just as a
// lone node on Redis would.
type Local struct {
	node    string
	queue   chan Envelope
	replies chan Envelope
	stop    chan struct{}
	wg      sync.WaitGroup
	obs     Observer // may be nil

	mu      sync.Mutex
	started bool
	closed  bool
}

var _ PubSubProvider = (*Local)(nil)

// NewLocal returns a Local that delivers nothing until Subscribe; obs
// (may be nil) hears every Publish.
func NewLocal(obs Observer) *Local {
	return &Local{
		obs:     obs,
		node:    NewNodeID(),
		queue:   make(chan Envelope, localQueue),
		replies: make(chan Envelope, localQueue),
		stop:    make(chan struct{}),
	}
}

// NewNodeID returns a random node id.
func NewNodeID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// Node returns this node's id.
func (l *Local) Node() string { return l.node }

// ErrReplyDropped is returned when a reply finds the delivery queue full.
var ErrReplyDropped = errors.New("scaling: reply queue full")

// Reply queues e for this node. It never waits: it runs on the delivery
// goroutine itself, which would otherwise wait for itself; a full queue
// drops the reply and the asker's answer is partial.
func (l *Local) Reply(_ context.Context, node string, e Envelope) error {
	if node != l.node {
		return fmt.Errorf("scaling: no node %q on a local provider", node)
	}
	if e.V == 0 {
		e.V = Version
	}
	e.Origin = l.node
	select {
	case <-l.stop:
		return ErrClosed
	default:
	}
	select {
	case l.replies <- e:
		return nil
	default:
		return ErrReplyDropped
	}
}

// Publish queues e for delivery, waiting while the queue is full.
func (l *Local) Publish(ctx context.Context, e Envelope) (_ int64, err error) {
	if l.obs != nil {
		defer observePublish(l.obs, time.Now(), &err)
	}
	if e.V == 0 {
		e.V = Version
	}
	e.Origin = l.node
	select {
	case <-l.stop:
		return 0, ErrClosed
	default:
	}
	select {
	case l.queue <- e:
		return 1, nil
	case <-l.stop:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Subscribe starts the delivery goroutine. It may be called once.
func (l *Local) Subscribe(_ context.Context, deliver func(context.Context, Envelope)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.started {
		return errors.New("scaling: already subscribed")
	}
	l.started = true
	ctx, cancel := context.WithCancel(context.Background())
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer cancel()
		for {
			select {
			case e := <-l.queue:
				deliver(ctx, e)
			case e := <-l.replies:
				deliver(ctx, e)
			case <-l.stop:
				return
			}
		}
	}()
	return nil
}

// Waiting reports the envelopes queued for the delivery goroutine.
func (l *Local) Waiting() int { return len(l.queue) + len(l.replies) }

// Ping implements Link: a loopback is always up.
func (l *Local) Ping(context.Context) error { return nil }

// Close stops delivery and waits for the delivery goroutine.
func (l *Local) Close() error {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.stop)
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}
