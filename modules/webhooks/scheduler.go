package webhooks

import (
	"container/heap"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// scheduler owns, while this node leads, every webhook's queues: it takes
// outbox entries in, holds leave events for the leave delay, starts the
// POSTs, retries the failed ones, and hands finished entries back to the
// outbox. Everything but the POSTs runs on its run goroutine.
type scheduler struct {
	s     *Sender
	hooks map[string][]*hookQueue // by app id
	held  atomic.Int64            // entries held: the reader reads only while there is room
	done  chan posted             // results of the POSTs
	acks  []scaling.OutboxEntry   // finished, not yet taken out of the outbox
	posts sync.WaitGroup
	wake  wakeHeap
}

// hookQueue is one webhook's queues, one per order key.
type hookQueue struct {
	app      *apps.App
	hook     *apps.Webhook
	keys     map[string]*keyQueue
	ready    []*keyQueue // keys whose next event may go now, in the order they became ready
	inFlight int
	// batchFrom is when the oldest event of the batch being gathered
	// became ready (zero: none), with batching on.
	batchFrom time.Time
	// counted is when each channel's last subscription_count was sent;
	// prune forgets those older than countEvery.
	counted map[string]time.Time
}

// keyQueue is the events of one order key, for one webhook, oldest first.
type keyQueue struct {
	key    string
	q      []*delivery
	busy   bool // its first event is being POSTed
	listed bool // in ready
}

// delivery is one event for one webhook.
type delivery struct {
	entry    *heldEntry
	ev       event
	due      time.Time // not before: leave delay, count spacing, retry back-off
	first    time.Time // the first attempt; zero before it
	attempts int
}

// heldEntry is an outbox entry and how many of its deliveries are not
// finished.
type heldEntry struct {
	e    scaling.OutboxEntry
	left int
}

// event is what the scheduler reads of a webhook event.
type event struct {
	raw      json.RawMessage
	Name     string `json:"name"`
	Channel  string `json:"channel"`
	UserID   string `json:"user_id"`
	SocketID string `json:"socket_id"`
}

// posted is the result of one POST.
type posted struct {
	h      *hookQueue
	ds     []*delivery
	ok     bool
	status string
}

func newScheduler(s *Sender) *scheduler {
	sch := &scheduler{s: s, hooks: make(map[string][]*hookQueue), done: make(chan posted)}
	for id, a := range s.apps {
		for i := range a.Webhooks {
			sch.hooks[id] = append(sch.hooks[id], &hookQueue{
				app: a, hook: &a.Webhooks[i], keys: make(map[string]*keyQueue), counted: make(map[string]time.Time),
			})
		}
	}
	return sch
}

// run schedules until ctx ends, then waits for the POSTs under way and
// takes what they finished out of the outbox.
func (sch *scheduler) run(ctx context.Context, in <-chan []scaling.OutboxEntry) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	acks := time.NewTicker(ackEvery)
	defer acks.Stop()
	prune := time.NewTicker(pruneEvery)
	defer prune.Stop()
	defer sch.finish()
	for {
		sch.dispatch(ctx)
		sch.arm(timer)
		select {
		case entries := <-in:
			for _, e := range entries {
				sch.take(e)
			}
		case p := <-sch.done:
			sch.complete(p)
		case <-timer.C:
			sch.due()
		case <-acks.C:
			sch.flush(ctx)
		case <-prune.C:
			sch.prune()
		case <-ctx.Done():
			return
		}
		sch.s.stats.WebhookQueue(int(sch.held.Load()))
	}
}

// finish waits for the POSTs under way, counting their results, and
// takes what is finished out of the outbox. What is left stays in the
// outbox for the next leader.
func (sch *scheduler) finish() {
	go func() {
		sch.posts.Wait()
		close(sch.done)
	}()
	for p := range sch.done {
		sch.complete(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sch.s.cfg.Timeout)
	defer cancel()
	sch.flush(ctx)
	sch.s.stats.WebhookQueue(0)
}

// take queues an outbox entry for every webhook that wants it.
func (sch *scheduler) take(e scaling.OutboxEntry) {
	h := &heldEntry{e: e}
	sch.held.Add(1)
	ev := event{raw: e.Event}
	if json.Unmarshal(e.Event, &ev) != nil {
		sch.s.log.Warn("dropped a malformed webhook event", "app_id", e.AppID, "id", e.ID)
		sch.end(h)
		return
	}
	// Every delivery is counted before any is queued: queueing one may
	// finish it at once (a flap), which must not finish the entry while
	// another webhook still owes it.
	var targets []*hookQueue
	for _, hq := range sch.hooks[e.AppID] {
		if hq.hook.Wants(ev.Name, ev.Channel) {
			targets = append(targets, hq)
		}
	}
	h.left = len(targets)
	if h.left == 0 {
		sch.end(h)
		return
	}
	for _, hq := range targets {
		sch.enqueue(hq, &delivery{entry: h, ev: ev})
	}
}

// orderKey is the key whose events go one after the other (package doc).
func orderKey(ev event) string {
	switch ev.Name {
	case pusher.WebhookChannelOccupied, pusher.WebhookChannelVacated:
		return "o\n" + ev.Channel
	case pusher.WebhookMemberAdded, pusher.WebhookMemberRemoved:
		return "m\n" + ev.Channel + "\n" + ev.UserID
	case pusher.WebhookSubscriptionCount:
		return "n\n" + ev.Channel
	case pusher.WebhookClientEvent:
		return "c\n" + ev.Channel + "\n" + ev.SocketID
	}
	return "x\n" + ev.Channel
}

// undoes reports whether an event named name cancels a waiting leave
// event named leave of the same key.
func undoes(name, leave string) bool {
	return name == pusher.WebhookChannelOccupied && leave == pusher.WebhookChannelVacated ||
		name == pusher.WebhookMemberAdded && leave == pusher.WebhookMemberRemoved
}

// enqueue adds d to its key's queue: a join that undoes the leave waiting
// there, within the leave delay of it, drops both, and a subscription
// count replaces the one waiting.
func (sch *scheduler) enqueue(hq *hookQueue, d *delivery) {
	now := sch.s.now()
	key := orderKey(d.ev)
	kq := hq.keys[key]
	if kq == nil {
		kq = &keyQueue{key: key}
		hq.keys[key] = kq
	}
	if n := len(kq.q); n > 0 && !(n == 1 && kq.busy) {
		last := kq.q[n-1]
		switch {
		case undoes(d.ev.Name, last.ev.Name) && d.entry.e.At.Before(last.entry.e.At.Add(sch.s.cfg.LeaveDelay)):
			// Back within the leave delay: neither is sent.
			kq.q = kq.q[:n-1]
			sch.done1(last)
			sch.done1(d)
			sch.drop(hq, kq)
			return
		case d.ev.Name == pusher.WebhookSubscriptionCount && last.ev.Name == pusher.WebhookSubscriptionCount:
			d.due = last.due
			kq.q[n-1] = d
			sch.done1(last)
			return
		}
	}
	switch d.ev.Name {
	case pusher.WebhookChannelVacated, pusher.WebhookMemberRemoved:
		d.due = d.entry.e.At.Add(sch.s.cfg.LeaveDelay)
	case pusher.WebhookSubscriptionCount:
		if at, ok := hq.counted[d.ev.Channel]; ok {
			d.due = at.Add(sch.s.countEvery)
		}
	}
	if d.due.IsZero() {
		d.due = now
	}
	kq.q = append(kq.q, d)
	if len(kq.q) == 1 {
		sch.consider(hq, kq)
	}
}

// drop forgets an empty key queue that is not being sent.
func (sch *scheduler) drop(hq *hookQueue, kq *keyQueue) {
	if len(kq.q) == 0 && !kq.busy && !kq.listed {
		delete(hq.keys, kq.key)
	}
}

// consider lists kq as ready when its first event may go now, or sets a
// wake-up for when it may.
func (sch *scheduler) consider(hq *hookQueue, kq *keyQueue) {
	if kq.busy || kq.listed || len(kq.q) == 0 {
		return
	}
	if at := kq.q[0].due; at.After(sch.s.now()) {
		heap.Push(&sch.wake, wakeUp{at: at, hq: hq, kq: kq})
		return
	}
	kq.listed = true
	hq.ready = append(hq.ready, kq)
	if hq.batchFrom.IsZero() {
		hq.batchFrom = sch.s.now()
	}
}

// due lists the keys whose wake-up has come.
func (sch *scheduler) due() {
	now := sch.s.now()
	for sch.wake.Len() > 0 && !sch.wake[0].at.After(now) {
		w := heap.Pop(&sch.wake).(wakeUp)
		sch.consider(w.hq, w.kq)
	}
}

// arm sets timer to the next wake-up or batch to send.
func (sch *scheduler) arm(timer *time.Timer) {
	var next time.Time
	if sch.wake.Len() > 0 {
		next = sch.wake[0].at
	}
	for _, hqs := range sch.hooks {
		for _, hq := range hqs {
			if hq.app.WebhookBatching && len(hq.ready) > 0 && hq.inFlight < maxInFlight {
				if at := hq.batchFrom.Add(sch.s.cfg.BatchWindow); next.IsZero() || at.Before(next) {
					next = at
				}
			}
		}
	}
	// Since Go 1.23 a Reset leaves no stale tick behind.
	if next.IsZero() {
		timer.Reset(time.Hour)
		return
	}
	timer.Reset(max(next.Sub(sch.s.now()), 0))
}

// dispatch starts the POSTs that may go now: one event each, or with
// batching, the events ready after the batch window (at most maxBatch).
func (sch *scheduler) dispatch(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	now := sch.s.now()
	for _, hqs := range sch.hooks {
		for _, hq := range hqs {
			limit := 1
			if hq.app.WebhookBatching {
				limit = maxBatch
			}
			for hq.inFlight < maxInFlight && len(hq.ready) > 0 {
				if limit > 1 && len(hq.ready) < maxBatch && now.Before(hq.batchFrom.Add(sch.s.cfg.BatchWindow)) {
					break // still gathering
				}
				var ds []*delivery
				for len(ds) < limit && len(hq.ready) > 0 {
					kq := hq.ready[0]
					hq.ready[0] = nil
					hq.ready = hq.ready[1:]
					kq.listed = false
					switch {
					case len(kq.q) == 0: // its event was undone meanwhile
						sch.drop(hq, kq)
					case kq.q[0].due.After(now):
						sch.consider(hq, kq)
					default:
						kq.busy = true
						ds = append(ds, kq.q[0])
					}
				}
				hq.batchFrom = time.Time{}
				if len(hq.ready) > 0 {
					hq.batchFrom = now
				}
				if len(ds) > 0 {
					sch.send(hq, ds)
				}
			}
		}
	}
}

// send POSTs ds to hq's webhook on a goroutine of its own. A POST runs
// to its end (at most Config.Timeout) even when the lead ends meanwhile,
// so that its answer is known and not sent twice for nothing.
func (sch *scheduler) send(hq *hookQueue, ds []*delivery) {
	now := sch.s.now()
	for _, d := range ds {
		if d.first.IsZero() {
			d.first = now
		}
		if d.ev.Name == pusher.WebhookSubscriptionCount {
			hq.counted[d.ev.Channel] = now // the next count waits countEvery from here
		}
		d.attempts++
		if d.attempts > 1 {
			sch.s.stats.WebhookRetried(hq.app.ID)
		}
	}
	hq.inFlight++
	sch.posts.Add(1)
	go func() {
		defer sch.posts.Done()
		ok, status := sch.s.post(context.Background(), hq.app, hq.hook, ds)
		sch.done <- posted{h: hq, ds: ds, ok: ok, status: status}
	}()
}

// complete acts on a POST's result: its events are done, or wait for a
// retry, or are given up once the retry window is over.
func (sch *scheduler) complete(p posted) {
	hq := p.h
	hq.inFlight--
	now := sch.s.now()
	for _, d := range p.ds {
		kq := hq.keys[orderKey(d.ev)]
		kq.busy = false
		sch.s.stats.WebhookSent(hq.app.ID, d.ev.Name, p.status)
		if sch.s.feed.Watching() {
			sch.s.feed.Emit(console.Event{App: hq.app.ID, Type: console.TypeWebhook, Event: d.ev.Name, Channel: d.ev.Channel, User: d.ev.UserID, Detail: p.status})
		}
		switch {
		case p.ok:
			sch.s.stats.WebhookDelivered(now.Sub(d.entry.e.At))
		case now.Sub(d.first) >= sch.s.cfg.RetryFor:
			sch.s.log.Error("webhook given up after the retry window", "app_id", hq.app.ID, "url", hq.hook.URL,
				"event", d.ev.Name, "channel", d.ev.Channel, "id", d.entry.e.ID, "attempts", d.attempts, "status", p.status)
			sch.s.stats.WebhookDropped(hq.app.ID, "retry_window", 1)
		default:
			d.due = now.Add(backoff(sch.s.firstBackoff, d.attempts))
			sch.consider(hq, kq)
			continue
		}
		kq.q[0] = nil
		kq.q = kq.q[1:]
		sch.done1(d)
		sch.consider(hq, kq)
		sch.drop(hq, kq)
	}
}

// backoff is the wait before attempt n+1: first, doubling, at most
// maxBackoff.
func backoff(first time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// done1 finishes one delivery; an entry whose deliveries are all finished
// is done.
func (sch *scheduler) done1(d *delivery) {
	if d.entry.left--; d.entry.left == 0 {
		sch.end(d.entry)
	}
}

// end marks an entry finished: it leaves the outbox at the next flush.
func (sch *scheduler) end(h *heldEntry) {
	sch.held.Add(-1)
	sch.acks = append(sch.acks, h.e)
}

// flush takes the finished entries out of the outbox.
func (sch *scheduler) flush(ctx context.Context) {
	if len(sch.acks) == 0 {
		return
	}
	if err := sch.s.outbox.Done(ctx, sch.acks...); err != nil {
		// They stay in the outbox: a later leader sends them again, and
		// the receivers can tell by the id header.
		sch.s.log.Warn("finished webhook events could not leave the outbox", "count", len(sch.acks), "err", err)
	}
	clear(sch.acks)
	sch.acks = sch.acks[:0]
}

// prune forgets the count times that no longer hold a count back.
func (sch *scheduler) prune() {
	old := sch.s.now().Add(-sch.s.countEvery)
	for _, hqs := range sch.hooks {
		for _, hq := range hqs {
			for channel, at := range hq.counted {
				if at.Before(old) {
					delete(hq.counted, channel)
				}
			}
		}
	}
}

// wakeUp is a key that waits until at.
type wakeUp struct {
	at time.Time
	hq *hookQueue
	kq *keyQueue
}

// wakeHeap orders wake-ups by time.
type wakeHeap []wakeUp

func (h wakeHeap) Len() int           { return len(h) }
func (h wakeHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wakeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wakeHeap) Push(x any)        { *h = append(*h, x.(wakeUp)) }
func (h *wakeHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = wakeUp{}
	*h = old[:len(old)-1]
	return w
}
