package metrics

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// DefaultTimeout bounds the wait for answers when none is configured.
const DefaultTimeout = 2 * time.Second

// Handler gathers answers from every node and answers other nodes' queries.
type Handler struct {
	pubsub   scaling.PubSubProvider
	channels *channels.Manager
	registry *connection.Registry
	timeout  time.Duration
	stats    *stats.Stats     // nil counts nothing
	samples  *console.Samples // nil answers no samples
	log      *slog.Logger

	mu      sync.Mutex
	pending map[string]*pending
}

type pending struct {
	mu      sync.Mutex
	answers []Answer
	arrived chan struct{} // signalled (cap 1) when an answer arrives
}

// New returns a Handler that waits at most timeout for answers and counts
// partial answers in s (nil: none).
func New(pubsub scaling.PubSubProvider, manager *channels.Manager, registry *connection.Registry, timeout time.Duration, s *stats.Stats, log *slog.Logger) *Handler {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Handler{
		pubsub:   pubsub,
		channels: manager,
		registry: registry,
		timeout:  timeout,
		stats:    s,
		log:      log,
		pending:  make(map[string]*pending),
	}
}

// Gather asks every node q about appID and merges their answers. It waits
// for as many answers as nodes received the query, at most the timeout; a
// shortfall is logged and reported as Partial, never an error.
func (h *Handler) Gather(ctx context.Context, appID string, q Query) (Result, error) {
	q.ID = newID()
	p := &pending{arrived: make(chan struct{}, 1)}
	h.mu.Lock()
	h.pending[q.ID] = p
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.pending, q.ID)
		h.mu.Unlock()
	}()

	payload, err := json.Marshal(q)
	if err != nil {
		return Result{}, fmt.Errorf("encode query: %w", err)
	}
	res := Result{Channels: make(map[string]*Channel)}
	want, err := h.pubsub.Publish(ctx, scaling.Envelope{V: scaling.Version, Kind: KindQuery, AppID: appID, Payload: payload})
	switch {
	case errors.Is(err, scaling.ErrLocalOnly):
		// Cut off from the cluster: this node's answer is all there is.
		res.Partial = true
	case err != nil:
		return Result{}, fmt.Errorf("publish query: %w", err)
	}

	timer := time.NewTimer(h.timeout)
	defer timer.Stop()
wait:
	for int64(p.count()) < want {
		select {
		case <-p.arrived:
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	if got := p.count(); int64(got) < want {
		h.log.Warn("partial cluster answer", "app_id", appID, "answers", got, "nodes", want)
		res.Partial = true
	}
	if res.Partial {
		h.stats.GatherPartial()
	}
	p.mu.Lock()
	answers := p.answers
	p.answers = nil
	p.mu.Unlock()
	for _, a := range answers {
		res.merge(a)
	}
	return res, nil
}

// AnswerSamples makes h answer queries for samples from s. Call it before
// the handler answers any query.
func (h *Handler) AnswerSamples(s *console.Samples) { h.samples = s }

// Answer computes this node's answer to q for appID.
func (h *Handler) Answer(appID string, q Query) Answer {
	a := Answer{ID: q.ID, Connections: h.registry.Count(appID), Channels: make(map[string]ChannelAnswer)}
	if q.Samples {
		a.Samples = h.samples.Since(appID, q.Since)
	}
	if q.ConnectionsOnly {
		return a
	}
	var infos []channels.Info
	if len(q.Names) > 0 {
		for _, name := range q.Names {
			if ch := h.channels.Find(appID, name); ch != nil {
				infos = append(infos, ch.Info())
			}
		}
	} else {
		infos = h.channels.Channels(appID, q.Prefix)
	}
	for _, info := range infos {
		ca := ChannelAnswer{Subscriptions: info.SubscriptionCount}
		if q.Users {
			if ch := h.channels.Find(appID, info.Name); ch != nil {
				ca.Users = ch.Presence().IDs
			}
		}
		a.Channels[info.Name] = ca
	}
	return a
}

// count returns how many answers have arrived.
func (p *pending) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.answers)
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

// Queries handles query envelopes: it answers from this node's state on
// the asker's reply channel.
type Queries struct{ h *Handler }

// Kind reports KindQuery.
func (Queries) Kind() string { return KindQuery }

// Handle answers one query.
func (q Queries) Handle(ctx context.Context, e scaling.Envelope) {
	var query Query
	if err := json.Unmarshal(e.Payload, &query); err != nil || query.ID == "" {
		q.h.log.Warn("dropped malformed query", "origin", e.Origin, "err", err)
		return
	}
	payload, err := json.Marshal(q.h.Answer(e.AppID, query))
	if err != nil {
		q.h.log.Error("encode answer", "err", err)
		return
	}
	reply := scaling.Envelope{V: scaling.Version, Kind: KindReply, AppID: e.AppID, Payload: payload}
	if err := q.h.pubsub.Reply(ctx, e.Origin, reply); err != nil {
		q.h.log.Warn("reply to query", "origin", e.Origin, "err", err)
	}
}

// Replies handles reply envelopes: it hands each answer to its query.
type Replies struct{ h *Handler }

// Kind reports KindReply.
func (Replies) Kind() string { return KindReply }

// Handle records one answer.
func (r Replies) Handle(_ context.Context, e scaling.Envelope) {
	var a Answer
	if err := json.Unmarshal(e.Payload, &a); err != nil || a.ID == "" {
		r.h.log.Warn("dropped malformed answer", "origin", e.Origin, "err", err)
		return
	}
	r.h.mu.Lock()
	p := r.h.pending[a.ID]
	r.h.mu.Unlock()
	if p == nil {
		return // the asker gave up already
	}
	p.mu.Lock()
	p.answers = append(p.answers, a)
	p.mu.Unlock()
	select {
	case p.arrived <- struct{}{}:
	default:
	}
}
