package channels

import (
	"encoding/json"
	"sync"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
)

// MaxHeldMemberEvents bounds the member events held for one presence
// subscription while it waits for its member list: as many as a socket's
// queue holds. A subscription that would hold more is a slow consumer.
const MaxHeldMemberEvents = connection.QueueSize

// Channel is one channel with at least one subscriber on this node.
type Channel struct {
	name string
	kind pusher.Kind

	// subs and members change only under the app's write lock; mu guards
	// them against broadcasts and readers that hold only mu. The state of
	// each subscriber (pending, held events, after) changes under mu.
	mu       sync.Mutex
	subs     map[*connection.Conn]*subscriber
	members  map[string]*member // presence: user id -> member
	snapshot []*connection.Conn // subscribers; nil when stale
	// seen is the largest Seq this node has seen on the channel, in a
	// member list or a member event (see scaling.PresenceShare.Seq).
	seen uint64
}

type member struct {
	info    json.RawMessage
	sockets int
}

// subscriber is one socket's subscription to a channel.
//
// A presence member's subscription starts pending: until Manager.Ready
// queues its subscription_succeeded, member events are held, not sent.
// Ready sends the held events that are newer than the member list, and
// from then on member events with a Seq at most after are dropped: the
// list the socket got already has them. Events without a Seq (0) are
// never dropped.
type subscriber struct {
	userID  string // "" off presence
	pending bool
	held    []heldEvent
	after   uint64
	// counted is the Seq of the last subscription count sent to it.
	counted uint64
}

// heldEvent is a member event held for a pending subscriber.
type heldEvent struct {
	frame []byte
	seq   uint64
}

func newChannel(name string) *Channel {
	ch := &Channel{name: name, kind: pusher.KindOf(name), subs: make(map[*connection.Conn]*subscriber)}
	if ch.kind.Presence {
		ch.members = make(map[string]*member)
	}
	return ch
}

// Name returns the channel name.
func (ch *Channel) Name() string { return ch.name }

// subscribers returns an immutable snapshot of the subscribers.
func (ch *Channel) subscribers() []*connection.Conn {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.snapshot == nil {
		s := make([]*connection.Conn, 0, len(ch.subs))
		for c := range ch.subs {
			s = append(s, c)
		}
		ch.snapshot = s
	}
	return ch.snapshot
}

// paceEvery is how many sockets a broadcast writes to at once between
// two looks at whether it is part of a burst: a few hundred
// microseconds of writes.
const paceEvery = 32

// broadcast sends frame to every subscriber but the socket exceptID: at
// once to idle sockets while more reports that nothing waits behind it
// and the sockets it meets are idle, queued otherwise (see
// Manager.Broadcast).
func (ch *Channel) broadcast(frame []byte, exceptID string, more func() bool) int {
	now := more != nil && !more()
	n, busy := 0, 0
	for _, c := range ch.subscribers() {
		if exceptID != "" && c.ID() == exceptID {
			continue
		}
		n++
		if !now {
			c.SendFrame(frame)
			continue
		}
		if !c.SendNow(frame) {
			busy++
		}
		if n%paceEvery == 0 && (busy > 0 || more()) {
			// Events came to wait, or sockets still had frames of
			// earlier ones: a burst, whose frames the writers join.
			now = false
		}
	}
	return n
}

// broadcastMember queues a member event to every subscriber but the
// socket exceptID, holding it for pending subscribers and dropping it for
// those whose member list is at least as new as seq. It holds mu while it
// sends (sends only queue), so that no event slips between a member list
// and the flush of Ready.
func (ch *Channel) broadcastMember(frame []byte, exceptID string, seq uint64) int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.seen = max(ch.seen, seq)
	n := 0
	for c, s := range ch.subs {
		if exceptID != "" && c.ID() == exceptID {
			continue
		}
		switch {
		case s.pending:
			s.hold(c, frame, seq)
		case seq != 0 && seq <= s.after:
			continue
		default:
			c.SendFrame(frame)
		}
		n++
	}
	return n
}

// hold keeps a member event for a pending subscriber. One more than
// MaxHeldMemberEvents closes the socket as a slow consumer: its queue
// could not take them either. Caller holds ch.mu.
func (s *subscriber) hold(c *connection.Conn, frame []byte, seq uint64) {
	if len(s.held) >= MaxHeldMemberEvents {
		s.held, s.pending = nil, false
		c.Close(pusher.Fatalf(pusher.CodeOverCapacity, "Over capacity"))
		return
	}
	s.held = append(s.held, heldEvent{frame: frame, seq: seq})
}

// ready queues payload (subscription_succeeded, nil: none) to c, then the
// member events held for c that its member list, as of seq, does not have,
// in the order they came. Later member events up to seq are dropped.
func (ch *Channel) ready(c *connection.Conn, seq uint64, payload []byte) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if payload != nil {
		c.Send(payload)
	}
	s := ch.subs[c]
	if s == nil {
		return
	}
	ch.seen = max(ch.seen, seq)
	s.after = max(s.after, seq)
	held := s.held
	s.held, s.pending = nil, false
	for _, e := range held {
		if e.seq == 0 || e.seq > s.after {
			c.SendFrame(e.frame)
		}
	}
}

// add subscribes c (as userID on presence channels) and reports whether the
// user is new to the channel. A presence member's subscription starts
// pending. Caller holds the app's write lock.
func (ch *Channel) add(c *connection.Conn, m *pusher.Member) (newUser bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	s := &subscriber{}
	ch.subs[c] = s
	ch.snapshot = nil
	if ch.members == nil || m == nil {
		return false
	}
	s.userID, s.pending = m.UserID, true
	mem, ok := ch.members[m.UserID]
	if !ok {
		mem = &member{info: m.UserInfo}
		ch.members[m.UserID] = mem
	}
	mem.sockets++
	return !ok
}

// remove unsubscribes c and returns the presence user it was subscribed
// as, if any. Caller holds the app's write lock.
func (ch *Channel) remove(c *connection.Conn) (userID string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	s, ok := ch.subs[c]
	if !ok {
		return ""
	}
	userID = s.userID
	delete(ch.subs, c)
	ch.snapshot = nil
	if ch.members == nil || userID == "" {
		return ""
	}
	if mem := ch.members[userID]; mem != nil {
		if mem.sockets--; mem.sockets <= 0 {
			delete(ch.members, userID)
		}
	}
	return userID
}

func (ch *Channel) empty() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.subs) == 0
}

// Info returns the channel's counts on this node.
func (ch *Channel) Info() Info {
	subs, users := ch.counts()
	return Info{Name: ch.name, SubscriptionCount: subs, UserCount: users}
}

// counts returns the subscriber and presence user counts.
func (ch *Channel) counts() (subscriptions, users int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.subs), len(ch.members)
}

// Presence returns the member list in the shape of subscription_succeeded's
// "presence" object: ids, hash (id -> user_info) and count.
func (ch *Channel) Presence() Presence {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	p := Presence{IDs: make([]string, 0, len(ch.members)), Hash: make(map[string]json.RawMessage, len(ch.members))}
	for id, m := range ch.members {
		p.IDs = append(p.IDs, id)
		info := m.info
		if info == nil {
			info = json.RawMessage("null")
		}
		p.Hash[id] = info
	}
	p.Count = len(p.IDs)
	return p
}

// Presence is a presence channel's member list as clients receive it.
type Presence struct {
	IDs   []string                   `json:"ids"`
	Hash  map[string]json.RawMessage `json:"hash"`
	Count int                        `json:"count"`
}
