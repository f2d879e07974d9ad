package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// Sender limits and paces.
const (
	// maxInFlight bounds the POSTs to one webhook at a time.
	maxInFlight = 32
	// maxBacklog bounds the outbox entries the Sender holds; the outbox
	// keeps the rest until there is room.
	maxBacklog = 10_000
	// readBatch is how many entries one read of the outbox takes.
	readBatch = 100
	// maxBatch bounds the events of one POST with batching, as Pusher does.
	maxBatch = 100
	// countEvery spaces a channel's subscription_count events.
	countEvery = time.Second
	// firstBackoff and maxBackoff pace the retries of a failed POST.
	firstBackoff = time.Second
	maxBackoff   = time.Minute
	// ackEvery paces taking finished entries out of the outbox.
	ackEvery = 100 * time.Millisecond
	// pruneEvery paces forgetting what no longer matters.
	pruneEvery = 10 * time.Second
	// logEvery spaces the log lines of a failure that repeats.
	logEvery = 10 * time.Second
)

// Sender sends the webhooks of every app while this node leads the
// cluster's outbox, and queues the events no state change decides.
type Sender struct {
	cfg       Config
	apps      map[string]*apps.App
	outbox    scaling.Outbox
	leadEvery time.Duration
	client    *http.Client
	stats     *stats.Stats  // nil counts nothing
	feed      *console.Feed // nil reports nothing
	log       *slog.Logger
	now       func() time.Time
	// countEvery and firstBackoff are the constants of the same names;
	// tests shorten them.
	countEvery, firstBackoff time.Duration
	// dropped is the outbox's Dropped already logged and counted.
	dropped int64
	// addFailed is when add last logged a failure (unix ns).
	addFailed atomic.Int64
}

// New returns a Sender for the apps of list over outbox. lease is the
// cluster's lease (scaling.Config.Lease): the Sender renews its lead every
// third of it. It starts nothing; Run sends. Each answer is reported to
// feed (nil: none) while a console watches.
func New(cfg Config, list []*apps.App, outbox scaling.Outbox, lease time.Duration, st *stats.Stats, feed *console.Feed, log *slog.Logger) *Sender {
	cfg = cfg.WithDefaults()
	byID := make(map[string]*apps.App, len(list))
	for _, a := range list {
		byID[a.ID] = a
	}
	if lease <= 0 {
		lease = scaling.DefaultLease
	}
	return &Sender{
		cfg:       cfg,
		apps:      byID,
		outbox:    outbox,
		leadEvery: max(lease/3, 50*time.Millisecond),
		client: &http.Client{
			Timeout:   cfg.Timeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: maxInFlight, IdleConnTimeout: 90 * time.Second},
			// A redirect is not a 2xx: the webhook is retried, not sent elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		stats:        st,
		feed:         feed,
		log:          log,
		now:          time.Now,
		countEvery:   countEvery,
		firstBackoff: firstBackoff,
	}
}

// hooked reports whether any app has a webhook.
func (s *Sender) hooked() bool {
	for _, a := range s.apps {
		if len(a.Webhooks) > 0 {
			return true
		}
	}
	return false
}

// Run sends webhooks whenever this node leads the outbox, until ctx ends.
func (s *Sender) Run(ctx context.Context) {
	defer s.client.CloseIdleConnections()
	if !s.hooked() {
		<-ctx.Done()
		return
	}
	tick := time.NewTicker(s.leadEvery)
	defer tick.Stop()
	for {
		lead, err := s.outbox.Lead(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Debug("leading the webhook outbox", "err", err)
		}
		if lead {
			s.log.Info("this node sends the cluster's webhooks")
			s.lead(ctx)
			s.log.Info("this node no longer sends the cluster's webhooks")
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// lead sends while this node leads: a reader goroutine renews the lead and
// hands outbox entries to the scheduler, which runs on this goroutine.
func (s *Sender) lead(outer context.Context) {
	ctx, lost := context.WithCancel(outer)
	defer lost()
	in := make(chan []scaling.OutboxEntry)
	sch := newScheduler(s)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.read(ctx, lost, in, &sch.held)
	}()
	sch.run(ctx, in)
	lost()
	wg.Wait()
	if outer.Err() != nil {
		// Stopping: let another node take over now. What this node held
		// stays in the outbox for it, leave delays and all.
		rctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		defer cancel()
		if err := s.outbox.Resign(rctx); err != nil {
			s.log.Warn("giving up the lead of the webhook outbox", "err", err)
		}
	}
}

// read renews the lead every leadEvery and reads the outbox while the
// scheduler has room, until ctx ends or the lead is lost.
func (s *Sender) read(ctx context.Context, lost func(), in chan<- []scaling.OutboxEntry, held *atomic.Int64) {
	renewed := s.now()
	for ctx.Err() == nil {
		if s.now().Sub(renewed) >= s.leadEvery {
			if lead, _ := s.outbox.Lead(ctx); !lead {
				lost()
				return
			}
			renewed = s.now()
		}
		s.countDropped()
		room := maxBacklog - int(held.Load())
		if room <= 0 {
			if !sleep(ctx, min(s.leadEvery, 100*time.Millisecond)) {
				return
			}
			continue
		}
		entries, err := s.outbox.Read(ctx, min(readBatch, room))
		switch {
		case errors.Is(err, scaling.ErrNotLeader):
			lost()
			return
		case err != nil:
			if ctx.Err() == nil {
				s.log.Warn("reading the webhook outbox", "err", err)
				sleep(ctx, min(s.leadEvery, time.Second))
			}
			continue
		}
		if len(entries) == 0 {
			continue
		}
		select {
		case in <- entries:
		case <-ctx.Done():
			return
		}
	}
}

// countDropped logs and counts what the outbox dropped since last time.
func (s *Sender) countDropped() {
	n := s.outbox.Dropped()
	if n > s.dropped {
		s.log.Error("webhook events dropped: the outbox was full", "count", n-s.dropped)
		s.stats.WebhookDropped("", "outbox_full", int(n-s.dropped))
		s.dropped = n
	}
}

// sleep waits d or until ctx ends, and reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// wanted reports whether a webhook of app wants event name on channel.
func wanted(app *apps.App, name, channel string) bool {
	for i := range app.Webhooks {
		if app.Webhooks[i].Wants(name, channel) {
			return true
		}
	}
	return false
}

// ClientEvent queues a client_event webhook, when a webhook of app wants
// it: the event as a client sent it, data as a string (Pusher's shape),
// user_id on presence channels. A nil Sender queues nothing.
func (s *Sender) ClientEvent(ctx context.Context, app *apps.App, channel, event string, data json.RawMessage, socketID, userID string) {
	if s == nil || !wanted(app, pusher.WebhookClientEvent, channel) {
		return
	}
	var text string
	if json.Unmarshal(data, &text) != nil {
		text = string(data)
	}
	body, _ := json.Marshal(struct {
		Name     string `json:"name"`
		Channel  string `json:"channel"`
		Event    string `json:"event"`
		Data     string `json:"data"`
		SocketID string `json:"socket_id"`
		UserID   string `json:"user_id,omitempty"`
	}{pusher.WebhookClientEvent, channel, event, text, socketID, userID}) // strings only: never fails
	s.add(ctx, app.ID, body)
}

// CacheMiss queues a cache_miss webhook, when a webhook of app wants it.
func (s *Sender) CacheMiss(ctx context.Context, app *apps.App, channel string) {
	if s == nil || !wanted(app, pusher.WebhookCacheMiss, channel) {
		return
	}
	body, _ := json.Marshal(struct {
		Name    string `json:"name"`
		Channel string `json:"channel"`
	}{pusher.WebhookCacheMiss, channel}) // strings only: never fails
	s.add(ctx, app.ID, body)
}

// add puts one event in the outbox; a failure is counted and logged (at
// most once per logEvery), never the caller's: a webhook must not fail a
// client's event.
func (s *Sender) add(ctx context.Context, appID string, event json.RawMessage) {
	if err := s.outbox.Add(ctx, appID, event); err != nil {
		s.stats.WebhookDropped(appID, "outbox_unreachable", 1)
		now := s.now().UnixNano()
		if last := s.addFailed.Load(); now-last >= int64(logEvery) && s.addFailed.CompareAndSwap(last, now) {
			s.log.Warn("webhook events could not be queued", "app_id", appID, "err", err)
		}
	}
}
