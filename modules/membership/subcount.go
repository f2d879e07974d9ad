package membership

import (
	"container/heap"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// EventSubscriptionCount tells a channel's subscribers its cluster-wide
// subscription count.
const EventSubscriptionCount = "pusher_internal:subscription_count"

// countEvery spaces one channel's subscription count events on a node.
const countEvery = time.Second

// counts tells this node's subscribers of a channel its subscription
// count, from the KindCount envelopes the shared state publishes: at most
// once per countEvery per channel, the latest count always (a count that
// comes too soon after the last one waits, replaced by any newer one).
// Counts carry the Seq of their change: an older one never replaces a
// newer one.
type counts struct {
	m     *Membership
	every time.Duration

	mu    sync.Mutex
	known map[channelKey]*channelCount
	due   countHeap
	wake  chan struct{} // cap 1: due changed
}

// channelCount is what this node knows of one channel's count.
type channelCount struct {
	key     channelKey
	count   int
	seq     uint64
	sent    time.Time // when the last count went to the subscribers
	waiting bool      // a count waits in due
}

func newCounts(m *Membership) *counts {
	return &counts{m: m, every: countEvery, known: make(map[channelKey]*channelCount), wake: make(chan struct{}, 1)}
}

// countFrame is the subscription count event of channel.
func countFrame(channel string, n int) []byte {
	data, _ := json.Marshal(struct {
		SubscriptionCount int `json:"subscription_count"`
	}{n}) // an int: never fails
	return connection.TextFrame(pusher.EncodeEvent(EventSubscriptionCount, channel, pusher.StringData(data), ""))
}

// heard takes a count from an envelope.
func (cs *counts) heard(appID string, ev scaling.CountEvent, seq uint64) {
	key := channelKey{appID, ev.Channel}
	now := time.Now()
	cs.mu.Lock()
	cc := cs.known[key]
	if cc == nil {
		cc = &channelCount{key: key}
		cs.known[key] = cc
	}
	if seq != 0 && seq <= cc.seq {
		cs.mu.Unlock()
		return // older than what this node has
	}
	cc.count, cc.seq = ev.SubscriptionCount, seq
	send := !cc.waiting && now.Sub(cc.sent) >= cs.every
	switch {
	case send:
		cc.sent = now
	case !cc.waiting:
		cc.waiting = true
		heap.Push(&cs.due, countDue{at: cc.sent.Add(cs.every), cc: cc})
		select {
		case cs.wake <- struct{}{}:
		default:
		}
	}
	n, at := cc.count, cc.seq
	cs.mu.Unlock()
	if send {
		cs.m.channels.BroadcastCount(appID, ev.Channel, countFrame(ev.Channel, n), at)
	}
}

// latest returns the last count this node heard of a channel, and its Seq.
func (cs *counts) latest(appID, channel string) (int, uint64, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cc := cs.known[channelKey{appID, channel}]
	if cc == nil || cc.seq == 0 && cc.count == 0 {
		return 0, 0, false
	}
	return cc.count, cc.seq, true
}

// run sends the counts that waited, when their time comes, until ctx
// ends, and forgets now and then the channels nobody here watches.
func (cs *counts) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	prune := time.NewTicker(time.Minute)
	defer prune.Stop()
	for {
		cs.mu.Lock()
		next := time.Hour
		if len(cs.due) > 0 {
			next = max(time.Until(cs.due[0].at), 0)
		}
		cs.mu.Unlock()
		timer.Reset(next)
		select {
		case <-timer.C:
			cs.send()
		case <-cs.wake:
			// The loop resets the timer (since Go 1.23 a Reset leaves
			// no stale tick behind).
		case <-prune.C:
			cs.prune()
		case <-ctx.Done():
			return
		}
	}
}

// send sends every count whose time has come.
func (cs *counts) send() {
	now := time.Now()
	type out struct {
		key channelKey
		n   int
		seq uint64
	}
	var ready []out
	cs.mu.Lock()
	for len(cs.due) > 0 && !cs.due[0].at.After(now) {
		d := heap.Pop(&cs.due).(countDue)
		d.cc.waiting, d.cc.sent = false, now
		ready = append(ready, out{d.cc.key, d.cc.count, d.cc.seq})
	}
	cs.mu.Unlock()
	for _, r := range ready {
		cs.m.channels.BroadcastCount(r.key.appID, r.key.channel, countFrame(r.key.channel, r.n), r.seq)
	}
}

// prune forgets the channels with no subscriber here and nothing waiting.
func (cs *counts) prune() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for key, cc := range cs.known {
		if !cc.waiting && cs.m.channels.Find(key.appID, key.channel) == nil {
			delete(cs.known, key)
		}
	}
}

// countDue is a channel whose count waits until at.
type countDue struct {
	at time.Time
	cc *channelCount
}

// countHeap orders the waiting counts by time.
type countHeap []countDue

func (h countHeap) Len() int           { return len(h) }
func (h countHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h countHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *countHeap) Push(x any)        { *h = append(*h, x.(countDue)) }
func (h *countHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = countDue{}
	*h = old[:len(old)-1]
	return d
}

// countHandler handles the KindCount envelopes.
type countHandler struct{ m *Membership }

// Kind reports scaling.KindCount.
func (countHandler) Kind() string { return scaling.KindCount }

// Handle takes one channel's new count.
func (h countHandler) Handle(_ context.Context, e scaling.Envelope) {
	var ev scaling.CountEvent
	if err := json.Unmarshal(e.Payload, &ev); err != nil || ev.Channel == "" {
		h.m.log.Warn("dropped malformed count envelope", "app_id", e.AppID, "origin", e.Origin, "err", err)
		return
	}
	h.m.counts.heard(e.AppID, ev, e.Seq)
}

// CountHandler returns the handler of the KindCount envelopes.
func (m *Membership) CountHandler() scaling.Handler { return countHandler{m} }
