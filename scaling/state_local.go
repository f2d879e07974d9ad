package scaling

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
)

// LocalState is the State of a single node, in memory. Its locked section
// decides every transition and publishes member transitions through the
// node's PubSubProvider before it lets go, so they are published in the
// order of the changes.
//
// It numbers the changes of every channel with one counter: the numbers of
// each channel grow as State asks, and they never start again from 1 when
// a channel empties and fills again, so a member event still in flight
// from before can never pass for a newer one.
//
// Several in-process nodes may share one LocalState's data through
// ForNode (the test bus does): each view counts the subscriptions of its
// own node.
type LocalState struct {
	data   *localData
	node   string
	pubsub PubSubProvider
}

var (
	_ State  = (*LocalState)(nil)
	_ Outbox = (*LocalState)(nil)
)

type localData struct {
	mu       sync.Mutex
	seq      uint64                   // the last Seq handed out, any channel
	channels map[string]*localChannel // app+"\n"+channel -> channel
	cache    map[string]cachedEvent   // app+"\n"+channel -> event
	conns    map[string]int
	pruned   time.Time
	now      func() time.Time

	hooks  map[string]string // Config.Webhooks (hookedKinds)
	outbox localOutbox
	leader string // the view that leads the outbox: the first to ask
}

// localOutbox is the Outbox of one node, in memory: a bounded queue of
// what the leader has not read yet.
type localOutbox struct {
	queue   []OutboxEntry
	next    uint64
	dropped int64
	ready   chan struct{} // cap 1: queue has something
}

// localChannel is one channel with subscribers somewhere.
type localChannel struct {
	total   int                     // subscriptions, every node
	nodes   map[string]int          // non-presence: node -> subscriptions
	members map[string]*localMember // presence: user -> member
}

type localMember struct {
	info    json.RawMessage
	sockets int
}

type cachedEvent struct {
	payload []byte
	at      time.Time
}

// NewLocalState returns an empty LocalState that publishes member
// transitions (and the subscription counts of Config.SubscriptionCounts)
// through pubsub and queues, per app, the transitions of the kinds
// Config.Webhooks lists in its outbox.
func NewLocalState(pubsub PubSubProvider, cfg Config) *LocalState {
	return &LocalState{
		data: &localData{
			channels: make(map[string]*localChannel),
			cache:    make(map[string]cachedEvent),
			conns:    make(map[string]int),
			now:      time.Now,
			hooks:    hookedKinds(cfg),
			outbox:   localOutbox{ready: make(chan struct{}, 1)},
		},
		node:   pubsub.Node(),
		pubsub: pubsub,
	}
}

// ForNode returns a view of the same state for another node, which
// publishes through pubsub.
func (s *LocalState) ForNode(pubsub PubSubProvider) *LocalState {
	return &LocalState{data: s.data, node: pubsub.Node(), pubsub: pubsub}
}

func stateKey(appID, channel string) string { return appID + "\n" + channel }

// channel returns the channel's record, made when create is set. Caller
// holds d.mu.
func (d *localData) channel(key string, create bool) *localChannel {
	ch := d.channels[key]
	if ch == nil && create {
		ch = &localChannel{nodes: make(map[string]int), members: make(map[string]*localMember)}
		d.channels[key] = ch
	}
	return ch
}

// drop forgets a channel nobody is subscribed to. Caller holds d.mu.
func (d *localData) drop(key string, ch *localChannel) {
	if ch.total <= 0 && len(ch.members) == 0 {
		delete(d.channels, key)
	}
}

// counted returns the transitions of a channel's count going from before
// to after in the change numbered seq: occupied first, vacated after
// extra (the member transitions), and the new count last.
func counted(appID, channel string, before, after int, seq uint64, extra ...Transition) []Transition {
	var out []Transition
	if before == 0 && after > 0 {
		out = append(out, Transition{Kind: ChannelOccupied, AppID: appID, Channel: channel, Seq: seq})
	}
	out = append(out, extra...)
	if before > 0 && after == 0 {
		out = append(out, Transition{Kind: ChannelVacated, AppID: appID, Channel: channel, Seq: seq})
	}
	if before != after {
		out = append(out, Transition{Kind: SubscriptionCount, AppID: appID, Channel: channel, Count: after, Seq: seq})
	}
	return out
}

// publish sends the member transitions among ts to the cluster and puts
// those a webhook wants in the outbox. Caller holds d.mu: that is what
// orders them as the changes. The change is made already, so the publish
// does not give up when ctx ends.
func (s *LocalState) publish(ctx context.Context, ts []Transition) {
	d := s.data
	for _, t := range ts {
		kinds := d.hooks[t.AppID]
		internal := strings.HasPrefix(t.Channel, ":")
		if !internal && wants(kinds, t.Kind) {
			d.add(t.AppID, d.now(), webhookEvent(t))
		}
		var e Envelope
		var err error
		switch {
		case t.Kind == MemberAdded || t.Kind == MemberRemoved:
			e, err = memberEnvelope(s.node, t)
		case t.Kind == SubscriptionCount && !internal && wants(kinds, announceCount) && !strings.HasPrefix(t.Channel, "presence-"):
			e, err = countEnvelope(s.node, t)
		default:
			continue
		}
		if err == nil {
			_, _ = s.pubsub.Publish(context.WithoutCancel(ctx), e) // only fails once closed: the node is stopping
		}
	}
}

// SignIn implements State.
func (s *LocalState) SignIn(ctx context.Context, appID, userID string) ([]Transition, error) {
	_, ts, err := s.join(ctx, appID, UsersChannel, userID, nil, 0, false)
	return ts, err
}

// SignOut implements State.
func (s *LocalState) SignOut(ctx context.Context, appID, userID string) ([]Transition, error) {
	return s.LeavePresence(ctx, appID, UsersChannel, userID)
}

// Online implements State.
func (s *LocalState) Online(_ context.Context, appID string, users []string) ([]string, uint64, error) {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	var online []string
	if ch := d.channel(stateKey(appID, UsersChannel), false); ch != nil {
		for _, u := range users {
			if ch.members[u] != nil {
				online = append(online, u)
			}
		}
	}
	return online, d.seq, nil
}

// JoinPresence implements State.
func (s *LocalState) JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (Snapshot, []Transition, error) {
	return s.join(ctx, appID, channel, userID, info, maxMembers, true)
}

// join is JoinPresence, with the member list only when list is set.
func (s *LocalState) join(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int, list bool) (Snapshot, []Transition, error) {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	key := stateKey(appID, channel)
	ch := d.channel(key, true)
	m, member := ch.members[userID]
	if !member && maxMembers > 0 && len(ch.members) >= maxMembers {
		d.drop(key, ch)
		return Snapshot{}, nil, ErrMembersLimit
	}
	d.seq++
	var added []Transition
	if member {
		m.sockets++
	} else {
		ch.members[userID] = &localMember{info: infoOrNull(info), sockets: 1}
		added = []Transition{{Kind: MemberAdded, AppID: appID, Channel: channel, UserID: userID, Info: infoOrNull(info), Seq: d.seq}}
	}
	ch.total++
	ts := counted(appID, channel, ch.total-1, ch.total, d.seq, added...)
	s.publish(ctx, ts)
	if !list {
		return Snapshot{Seq: d.seq}, ts, nil
	}
	return d.snapshot(ch), ts, nil
}

// snapshot returns ch's member list at the current Seq. Caller holds d.mu.
func (d *localData) snapshot(ch *localChannel) Snapshot {
	out := Snapshot{Members: make(map[string]json.RawMessage), Seq: d.seq}
	if ch != nil {
		for id, m := range ch.members {
			out.Members[id] = m.info
		}
	}
	return out
}

// LeavePresence implements State. A leave of a user who holds no socket
// on the channel changes nothing.
func (s *LocalState) LeavePresence(ctx context.Context, appID, channel, userID string) ([]Transition, error) {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	key := stateKey(appID, channel)
	ch := d.channel(key, false)
	if ch == nil || ch.members[userID] == nil {
		return nil, nil
	}
	d.seq++
	var removed []Transition
	m := ch.members[userID]
	if m.sockets--; m.sockets <= 0 {
		delete(ch.members, userID)
		removed = []Transition{{Kind: MemberRemoved, AppID: appID, Channel: channel, UserID: userID, Seq: d.seq}}
	}
	ch.total--
	ts := counted(appID, channel, ch.total+1, ch.total, d.seq, removed...)
	d.drop(key, ch)
	s.publish(ctx, ts)
	return ts, nil
}

// PresenceMembers implements State. The Seq it reports is the node-wide
// counter: every change of this channel up to it is in the list.
func (s *LocalState) PresenceMembers(_ context.Context, appID, channel string) (Snapshot, error) {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.snapshot(d.channel(stateKey(appID, channel), false)), nil
}

// SetSubscriptions implements State.
func (s *LocalState) SetSubscriptions(ctx context.Context, counts []ChannelCount) ([]Transition, error) {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Transition
	for _, c := range counts {
		key := stateKey(c.AppID, c.Channel)
		ch := d.channel(key, c.Subscriptions > 0)
		if ch == nil || ch.nodes[s.node] == c.Subscriptions {
			continue
		}
		before := ch.total
		ch.total += c.Subscriptions - ch.nodes[s.node]
		if c.Subscriptions > 0 {
			ch.nodes[s.node] = c.Subscriptions
		} else {
			delete(ch.nodes, s.node)
		}
		d.seq++
		ts := counted(c.AppID, c.Channel, before, ch.total, d.seq)
		s.publish(ctx, ts)
		out = append(out, ts...)
		d.drop(key, ch)
	}
	return out, nil
}

// RememberEvent implements State.
func (s *LocalState) RememberEvent(_ context.Context, appID, channel string, payload []byte) error {
	d := s.data
	now := d.now()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cache[stateKey(appID, channel)] = cachedEvent{payload: payload, at: now}
	// Expired events are dropped at most once a minute, which bounds the
	// map by the channels used within one TTL without a scan per event.
	if now.Sub(d.pruned) < time.Minute {
		return nil
	}
	d.pruned = now
	for k, e := range d.cache {
		if now.Sub(e.at) > CacheTTL {
			delete(d.cache, k)
		}
	}
	return nil
}

// LastEvent implements State.
func (s *LocalState) LastEvent(_ context.Context, appID, channel string) ([]byte, bool, error) {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.cache[stateKey(appID, channel)]
	if !ok || d.now().Sub(e.at) > CacheTTL {
		return nil, false, nil
	}
	return e.payload, true, nil
}

// AddConnection implements State.
func (s *LocalState) AddConnection(_ context.Context, appID string, limit int) (bool, error) {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if limit > 0 && d.conns[appID] >= limit {
		return false, nil
	}
	d.conns[appID]++
	return true, nil
}

// RemoveConnection implements State.
func (s *LocalState) RemoveConnection(_ context.Context, appID string) error {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns[appID]--; d.conns[appID] <= 0 {
		delete(d.conns, appID)
	}
	return nil
}

// Recover implements State: memory is never lost while the node runs.
func (s *LocalState) Recover(context.Context) error { return nil }

// Run implements State: one node has no lease to keep, so it waits for ctx.
func (s *LocalState) Run(ctx context.Context, _ ShareSource, _ func(context.Context, []Transition)) {
	<-ctx.Done()
}

// add queues an event of appID, dropping the oldest beyond OutboxLimit.
// Caller holds d.mu.
func (d *localData) add(appID string, at time.Time, event json.RawMessage) {
	o := &d.outbox
	if len(o.queue) >= OutboxLimit {
		o.queue[0] = OutboxEntry{}
		o.queue = o.queue[1:]
		o.dropped++
	}
	o.next++
	o.queue = append(o.queue, OutboxEntry{AppID: appID, ID: fmt.Sprintf("%d-%d", at.UnixMilli(), o.next), At: at, Event: event})
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// Add implements Outbox.
func (s *LocalState) Add(_ context.Context, appID string, events ...json.RawMessage) error {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	for _, ev := range events {
		d.add(appID, now, ev)
	}
	return nil
}

// Lead implements Outbox: the first view to ask leads, for good.
func (s *LocalState) Lead(context.Context) (bool, error) {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.leader == "" {
		d.leader = s.node
	}
	return d.leader == s.node, nil
}

// Resign implements Outbox: one node's memory has no other leader.
func (s *LocalState) Resign(context.Context) error { return nil }

// Read implements Outbox: entries leave the queue as they are read (a
// node's memory dies with the node; no other leader could take them).
func (s *LocalState) Read(ctx context.Context, max int) ([]OutboxEntry, error) {
	d := s.data
	if lead, _ := s.Lead(ctx); !lead {
		return nil, ErrNotLeader
	}
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	for {
		d.mu.Lock()
		if n := min(max, len(d.outbox.queue)); n > 0 {
			out := append([]OutboxEntry(nil), d.outbox.queue[:n]...)
			clear(d.outbox.queue[:n])
			d.outbox.queue = d.outbox.queue[n:]
			d.mu.Unlock()
			return out, nil
		}
		d.mu.Unlock()
		if max <= 0 {
			return nil, nil
		}
		select {
		case <-d.outbox.ready:
		case <-timer.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Done implements Outbox: read entries have left the queue already.
func (s *LocalState) Done(context.Context, ...OutboxEntry) error { return nil }

// Dropped implements Outbox.
func (s *LocalState) Dropped() int64 {
	d := s.data
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.outbox.dropped
}
