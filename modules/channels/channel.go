package channels

import (
	"encoding/json"
	"sync"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
)

// Channel is one channel with at least one subscriber on this node.
type Channel struct {
	name string
	kind pusher.Kind

	// subs and members change only under the app's write lock; mu guards
	// them against broadcasts and readers that hold only mu.
	mu       sync.Mutex
	subs     map[*connection.Conn]string // socket -> user id ("" off presence)
	members  map[string]*member          // presence: user id -> member
	snapshot []*connection.Conn          // subscribers; nil when stale
}

type member struct {
	info    json.RawMessage
	sockets int
}

func newChannel(name string) *Channel {
	ch := &Channel{name: name, kind: pusher.KindOf(name), subs: make(map[*connection.Conn]string)}
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

// broadcast queues frame to every subscriber but the socket exceptID.
func (ch *Channel) broadcast(frame []byte, exceptID string) int {
	n := 0
	for _, c := range ch.subscribers() {
		if exceptID != "" && c.ID() == exceptID {
			continue
		}
		c.SendFrame(frame)
		n++
	}
	return n
}

// add subscribes c (as userID on presence channels) and reports whether the
// user is new to the channel. Caller holds the app's write lock.
func (ch *Channel) add(c *connection.Conn, m *pusher.Member) (newUser bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	userID := ""
	if m != nil {
		userID = m.UserID
	}
	ch.subs[c] = userID
	ch.snapshot = nil
	if ch.members == nil || m == nil {
		return false
	}
	mem, ok := ch.members[userID]
	if !ok {
		mem = &member{info: m.UserInfo}
		ch.members[userID] = mem
	}
	mem.sockets++
	return !ok
}

// remove unsubscribes c and returns the presence user it was subscribed
// as, if any. Caller holds the app's write lock.
func (ch *Channel) remove(c *connection.Conn) (userID string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	userID, ok := ch.subs[c]
	if !ok {
		return ""
	}
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
