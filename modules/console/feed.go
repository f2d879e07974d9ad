package console

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fizz-server/fizz/scaling"
)

// Envelope kinds of the feed.
const (
	// KindWatch announces that a node serves a console.
	KindWatch = "console.watch"
	// KindEvents carries a batch of a node's feed events.
	KindEvents = "console.events"
)

// Bounds of the feed.
const (
	// AnnounceEvery is how often a node with viewers announces it.
	AnnounceEvery = 2 * time.Second
	// WatchFresh is how long a node emits after the last announcement.
	WatchFresh = 3 * AnnounceEvery
	// QueueSize bounds the events waiting to be published from a node.
	QueueSize = 4096
	// BatchMax bounds the events of one envelope; BatchWait is how long
	// the publisher gathers a batch once an event waits.
	BatchMax  = 256
	BatchWait = 50 * time.Millisecond
	// ViewerBuffer bounds the events waiting for one viewer.
	ViewerBuffer = 4096
	// MaxViewers bounds the viewers of one node.
	MaxViewers = 16
	// InboxSize bounds the received batches waiting to be decoded and
	// handed to this node's viewers.
	InboxSize = 256
	// publishTimeout bounds one publish of the feed.
	publishTimeout = time.Second
)

// Errors of Watch.
var (
	ErrTooManyViewers = errors.New("console: too many viewers on this node")
	ErrStopped        = errors.New("console: the feed has stopped")
)

// Feed is the live feed of one node: the watch flag the hook points read,
// the queue of this node's events, and this node's viewers. A nil *Feed
// never watches, so a component built without one needs no check.
type Feed struct {
	pubsub scaling.PubSubProvider
	log    *slog.Logger
	now    func() time.Time

	// watching is what the hook points read: some console of the cluster
	// was announced within WatchFresh, or this node has a viewer.
	watching atomic.Bool
	heard    atomic.Int64 // unix ns of the last announcement heard
	queue    chan Event
	dropped  atomic.Int64 // events this node could not queue, not yet reported
	nviewers atomic.Int32
	// inbox holds received batches for Run, so that the delivery loop
	// never decodes one; lost counts those it had no room for.
	inbox chan inbound
	lost  atomic.Int64

	mu      sync.Mutex
	viewers map[*Viewer]struct{}
	stopped bool
	wake    chan struct{} // cap 1: a first viewer arrived, announce now
}

// NewFeed returns a Feed publishing through pubsub. It starts nothing.
func NewFeed(pubsub scaling.PubSubProvider, log *slog.Logger) *Feed {
	return &Feed{
		pubsub:  pubsub,
		log:     log,
		now:     time.Now,
		queue:   make(chan Event, QueueSize),
		inbox:   make(chan inbound, InboxSize),
		viewers: make(map[*Viewer]struct{}),
		wake:    make(chan struct{}, 1),
	}
}

// Watching reports whether the hook points should emit: one atomic load.
func (f *Feed) Watching() bool { return f != nil && f.watching.Load() }

// Emit queues e for the cluster's consoles, stamped with this node and the
// time; it never waits: when the queue is full, e is counted as dropped.
// Call it only when Watching reports true.
func (f *Feed) Emit(e Event) {
	if f == nil {
		return
	}
	e.T = f.now().UnixMilli()
	select {
	case f.queue <- e:
	default:
		f.dropped.Add(1)
	}
}

// Watch adds a viewer of the events that pass filter, from every node.
// The caller must Close it.
func (f *Feed) Watch(filter Filter) (*Viewer, error) {
	v := &Viewer{feed: f, filter: filter, events: make(chan Event, ViewerBuffer), done: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.stopped:
		return nil, ErrStopped
	case len(f.viewers) >= MaxViewers:
		return nil, ErrTooManyViewers
	}
	f.viewers[v] = struct{}{}
	f.nviewers.Store(int32(len(f.viewers)))
	f.watching.Store(true)
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return v, nil
}

// remove drops v from the viewers.
func (f *Feed) remove(v *Viewer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.viewers[v]; ok {
		delete(f.viewers, v)
		close(v.done)
		f.nviewers.Store(int32(len(f.viewers)))
	}
}

// Viewers returns how many viewers this node has.
func (f *Feed) Viewers() int { return int(f.nviewers.Load()) }

// Run announces this node's viewers, expires the watch flag and publishes
// the queued events until ctx ends; then it closes every viewer.
func (f *Feed) Run(ctx context.Context) {
	defer f.stop()
	tick := time.NewTicker(AnnounceEvery)
	defer tick.Stop()
	var batch []Event
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
			f.announce(ctx)
		case <-tick.C:
			f.announce(ctx)
			f.expire()
		case e := <-f.queue:
			batch = f.gather(ctx, append(batch[:0], e))
			f.publish(ctx, batch)
		case in := <-f.inbox:
			f.receive(in)
		}
	}
}

// inbound is a received KindEvents payload and the node that sent it.
type inbound struct {
	origin  string
	payload []byte
}

// receive decodes a received batch and hands it to the viewers.
func (f *Feed) receive(in inbound) {
	var b batch
	if err := json.Unmarshal(in.payload, &b); err != nil {
		f.log.Warn("dropped malformed console events", "origin", in.origin, "err", err)
		return
	}
	f.deliver(in.origin, b, f.lost.Swap(0))
}

// gather adds to batch the events that arrive within BatchWait, at most
// BatchMax in all.
func (f *Feed) gather(ctx context.Context, batch []Event) []Event {
	timer := time.NewTimer(BatchWait)
	defer timer.Stop()
	for len(batch) < BatchMax {
		select {
		case e := <-f.queue:
			batch = append(batch, e)
		case <-timer.C:
			return batch
		case <-ctx.Done():
			return batch
		}
	}
	return batch
}

// batch is the payload of a KindEvents envelope.
type batch struct {
	// Dropped is how many events the node lost since its last batch.
	Dropped int64   `json:"dropped,omitempty"`
	Events  []Event `json:"events"`
}

// publish sends events as one envelope; a failure loses them (the feed is
// a best-effort view) and is logged at debug level.
func (f *Feed) publish(ctx context.Context, events []Event) {
	node := f.pubsub.Node()
	for i := range events {
		events[i].Node = node
	}
	payload, err := json.Marshal(batch{Dropped: f.dropped.Swap(0), Events: events})
	if err != nil {
		f.log.Error("encode console events", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := f.pubsub.Publish(ctx, scaling.Envelope{V: scaling.Version, Kind: KindEvents, Payload: payload}); err != nil {
		f.log.Debug("publish console events", "events", len(events), "err", err)
	}
}

// announce tells the cluster that this node has viewers, when it has.
func (f *Feed) announce(ctx context.Context) {
	if f.Viewers() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := f.pubsub.Publish(ctx, scaling.Envelope{V: scaling.Version, Kind: KindWatch}); err != nil {
		f.log.Debug("announce the console", "err", err)
	}
}

// heardWatch records an announcement: the hook points emit from now on.
func (f *Feed) heardWatch() {
	f.heard.Store(f.now().UnixNano())
	f.watching.Store(true)
}

// expire turns the watch flag off once no announcement was heard for
// WatchFresh and this node has no viewer.
func (f *Feed) expire() {
	if f.Viewers() == 0 && f.now().UnixNano()-f.heard.Load() > int64(WatchFresh) {
		f.watching.Store(false)
	}
}

// deliver hands a batch from node origin to this node's viewers, after a
// marker for the batches this node lost before it (lost).
func (f *Feed) deliver(origin string, b batch, lost int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for v := range f.viewers {
		if lost > 0 {
			v.send(Event{T: f.now().UnixMilli(), Type: TypeDropped, Count: lost, Detail: DetailBatches})
		}
		if b.Dropped > 0 {
			v.send(Event{T: f.now().UnixMilli(), Node: origin, Type: TypeDropped, Count: b.Dropped})
		}
		for i := range b.Events {
			if v.filter.matches(&b.Events[i]) {
				v.send(b.Events[i])
			}
		}
	}
}

// stop closes every viewer and refuses new ones.
func (f *Feed) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	for v := range f.viewers {
		delete(f.viewers, v)
		close(v.done)
	}
	f.nviewers.Store(0)
	f.watching.Store(false)
}

// WatchHandler returns the handler of KindWatch envelopes.
func (f *Feed) WatchHandler() scaling.Handler { return watchHandler{f} }

// EventsHandler returns the handler of KindEvents envelopes.
func (f *Feed) EventsHandler() scaling.Handler { return eventsHandler{f} }

type watchHandler struct{ f *Feed }

func (watchHandler) Kind() string { return KindWatch }

func (h watchHandler) Handle(context.Context, scaling.Envelope) { h.f.heardWatch() }

type eventsHandler struct{ f *Feed }

func (eventsHandler) Kind() string { return KindEvents }

// Handle passes a batch to Run, only when this node has a viewer: the
// delivery loop that calls it never waits or decodes for the console.
func (h eventsHandler) Handle(_ context.Context, e scaling.Envelope) {
	if h.f.Viewers() == 0 {
		return
	}
	select {
	case h.f.inbox <- inbound{origin: e.Origin, payload: e.Payload}:
	default:
		h.f.lost.Add(1)
	}
}

// Viewer is one console reading the feed.
type Viewer struct {
	feed    *Feed
	filter  Filter
	events  chan Event
	dropped atomic.Int64
	done    chan struct{} // closed by Close or when the feed stops
}

// send queues e for the viewer without waiting; a full queue counts it as
// dropped. The caller holds feed.mu, so done is open.
func (v *Viewer) send(e Event) {
	select {
	case v.events <- e:
	default:
		v.dropped.Add(1)
	}
}

// Events returns the viewer's events.
func (v *Viewer) Events() <-chan Event { return v.events }

// Done is closed when the viewer is closed or the feed stops.
func (v *Viewer) Done() <-chan struct{} { return v.done }

// Dropped returns how many events the viewer lost since the last call.
func (v *Viewer) Dropped() int64 { return v.dropped.Swap(0) }

// Close stops the viewer.
func (v *Viewer) Close() { v.feed.remove(v) }
