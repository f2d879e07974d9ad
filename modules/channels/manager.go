package channels

import (
	"sort"
	"strings"
	"sync"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
)

// Manager holds the channels of every app on this node.
type Manager struct {
	mu   sync.Mutex
	apps map[string]*appState
}

type appState struct {
	mu       sync.RWMutex
	channels map[string]*Channel
	users    map[string]map[*connection.Conn]struct{}
}

// NewManager returns an empty Manager.
func NewManager() *Manager {
	return &Manager{apps: make(map[string]*appState)}
}

func (m *Manager) app(appID string) *appState {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.apps[appID]
	if !ok {
		a = &appState{
			channels: make(map[string]*Channel),
			users:    make(map[string]map[*connection.Conn]struct{}),
		}
		m.apps[appID] = a
	}
	return a
}

// Joined is what a subscription produced.
type Joined struct {
	Channel *Channel
	// NewMember is true when the member's user had no other socket on the
	// presence channel on this node.
	NewMember bool
	// Already is true when the socket was subscribed before.
	Already bool
}

// Subscribe adds c to channel, as member mem on presence channels (mem is
// nil elsewhere). Limits on members are the shared state's to enforce.
//
// A presence member's subscription starts pending: member events for it
// are held until Ready sends its member list. Regular events reach it at
// once.
func (m *Manager) Subscribe(c *connection.Conn, channel string, mem *pusher.Member) Joined {
	a := m.app(c.App().ID)
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.channels[channel]
	if ok {
		ch.mu.Lock()
		_, already := ch.subs[c]
		ch.mu.Unlock()
		if already {
			return Joined{Channel: ch, Already: true}
		}
	} else {
		ch = newChannel(channel)
	}
	a.channels[channel] = ch
	newMember := ch.add(c, mem)
	c.AddChannel(channel)
	return Joined{Channel: ch, NewMember: newMember}
}

// SubscribePending adds c to a non-presence channel as a subscription that
// waits for its answer: until Ready, BroadcastReady passes it by (regular
// events still reach it).
func (m *Manager) SubscribePending(c *connection.Conn, channel string) {
	m.Subscribe(c, channel, nil)
	if ch := m.Find(c.App().ID, channel); ch != nil {
		ch.mu.Lock()
		if s := ch.subs[c]; s != nil {
			s.pending = true
		}
		ch.mu.Unlock()
	}
}

// BroadcastCount queues a subscription count, numbered seq, to every
// subscriber of channel on this node that has had its answer (see
// SubscribePending and Ready) and has not had this count or a newer one,
// and returns how many it was queued to. It holds the channel's lock
// while it queues, so that no subscriber gets a count before its answer,
// or one count twice.
func (m *Manager) BroadcastCount(appID, channel string, frame []byte, seq uint64) int {
	ch := m.Find(appID, channel)
	if ch == nil {
		return 0
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	n := 0
	for c, s := range ch.subs {
		if !s.pending && s.counted < seq {
			s.counted = seq
			c.SendFrame(frame)
			n++
		}
	}
	return n
}

// SendCount queues a subscription count, numbered seq, to c, unless c
// has had it or a newer one (BroadcastCount).
func (m *Manager) SendCount(c *connection.Conn, channel string, frame []byte, seq uint64) {
	ch := m.Find(c.App().ID, channel)
	if ch == nil {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if s := ch.subs[c]; s != nil && !s.pending && s.counted < seq {
		s.counted = seq
		c.SendFrame(frame)
	}
}

// Unsubscribe removes c from channel. On a presence channel it returns the
// user id c was subscribed as ("" elsewhere, or when c was not subscribed).
func (m *Manager) Unsubscribe(c *connection.Conn, channel string) (goneUser string) {
	a := m.app(c.App().ID)
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.unsubscribeLocked(c, channel)
}

// Subscription reports whether c is subscribed to channel and, on a
// presence channel, the user it is subscribed as.
func (m *Manager) Subscription(c *connection.Conn, channel string) (userID string, ok bool) {
	a := m.app(c.App().ID)
	a.mu.RLock()
	ch := a.channels[channel]
	a.mu.RUnlock()
	if ch == nil {
		return "", false
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	s, ok := ch.subs[c]
	if !ok {
		return "", false
	}
	return s.userID, true
}

// Subscriptions returns how many sockets of this node are subscribed to
// channel.
func (m *Manager) Subscriptions(appID, channel string) int {
	if ch := m.Find(appID, channel); ch != nil {
		subs, _ := ch.counts()
		return subs
	}
	return 0
}

// Left is a presence subscription a socket gave up.
type Left struct {
	Channel string
	UserID  string
}

// Disconnect unsubscribes c from every channel and forgets its user. It
// returns the presence subscriptions c held.
func (m *Manager) Disconnect(c *connection.Conn) []Left {
	a := m.app(c.App().ID)
	a.mu.Lock()
	defer a.mu.Unlock()
	var left []Left
	for _, channel := range c.Channels() {
		if user := a.unsubscribeLocked(c, channel); user != "" {
			left = append(left, Left{Channel: channel, UserID: user})
		}
	}
	if user := c.UserID(); user != "" {
		if set := a.users[user]; set != nil {
			delete(set, c)
			if len(set) == 0 {
				delete(a.users, user)
			}
		}
	}
	return left
}

func (a *appState) unsubscribeLocked(c *connection.Conn, channel string) string {
	c.RemoveChannel(channel)
	ch, ok := a.channels[channel]
	if !ok {
		return ""
	}
	user := ch.remove(c)
	if ch.empty() {
		delete(a.channels, channel)
	}
	return user
}

// AddUser indexes c under its user id, for terminate_connections.
func (m *Manager) AddUser(c *connection.Conn) {
	user := c.UserID()
	if user == "" {
		return
	}
	a := m.app(c.App().ID)
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.users[user]
	if set == nil {
		set = make(map[*connection.Conn]struct{})
		a.users[user] = set
	}
	set[c] = struct{}{}
}

// UserConns returns the sockets of userID on this node.
func (m *Manager) UserConns(appID, userID string) []*connection.Conn {
	a := m.app(appID)
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]*connection.Conn, 0, len(a.users[userID]))
	for c := range a.users[userID] {
		out = append(out, c)
	}
	return out
}

// Broadcast sends frame to every subscriber of channel on this node but
// the socket exceptID, and returns how many sockets it went to. more
// reports whether other events wait to be broadcast behind this one (nil:
// assume they do). While none wait, a socket with nothing queued is
// written to at once by the caller (Conn.SendNow): there is nothing to
// join the frame with, and the hand-off to a writer would cost more than
// the write. Once some wait, or once the broadcast meets sockets that
// still have frames queued (a burst is under way), every socket's frame
// is queued (SendFrame), so that its writer joins it with those that
// follow into one write.
func (m *Manager) Broadcast(appID, channel string, frame []byte, exceptID string, more func() bool) int {
	a := m.app(appID)
	a.mu.RLock()
	ch := a.channels[channel]
	a.mu.RUnlock()
	if ch == nil {
		return 0
	}
	return ch.broadcast(frame, exceptID, more)
}

// BroadcastMember queues a member event (member_added or member_removed)
// of a presence channel, numbered seq (0: none), to every subscriber of
// channel on this node but the socket exceptID. It is held for
// subscriptions that wait for their member list and dropped for those
// whose list is at least as new as seq. It returns how many sockets it was
// queued to or held for. On other channels it is Broadcast.
func (m *Manager) BroadcastMember(appID, channel string, frame []byte, exceptID string, seq uint64) int {
	a := m.app(appID)
	a.mu.RLock()
	ch := a.channels[channel]
	a.mu.RUnlock()
	switch {
	case ch == nil:
		return 0
	case ch.members == nil:
		return ch.broadcast(frame, exceptID, nil)
	}
	return ch.broadcastMember(frame, exceptID, seq)
}

// Ready ends the wait of c's subscription to channel: it queues payload
// (subscription_succeeded with the member list as of seq; nil sends
// nothing), then the member events held meanwhile that are numbered above
// seq or not at all, in the order they came. From then on member events
// numbered seq or less are dropped for c. It is atomic with respect to
// BroadcastMember, so no member event is lost or sent twice in between.
// Calling it again, as a repeated subscription does, sends the new list and
// raises the bar to the larger seq.
func (m *Manager) Ready(c *connection.Conn, channel string, seq uint64, payload []byte) {
	a := m.app(c.App().ID)
	a.mu.RLock()
	ch := a.channels[channel]
	a.mu.RUnlock()
	if ch == nil {
		if payload != nil {
			c.Send(payload)
		}
		return
	}
	ch.ready(c, seq, payload)
}

// Find returns channel, or nil when nobody here is subscribed.
func (m *Manager) Find(appID, channel string) *Channel {
	a := m.app(appID)
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.channels[channel]
}

// Info is what the HTTP API reports of one channel on this node.
type Info struct {
	Name              string
	SubscriptionCount int
	UserCount         int
}

// Channels lists the occupied channels of app whose names start with
// prefix, sorted by name.
func (m *Manager) Channels(appID, prefix string) []Info {
	a := m.app(appID)
	a.mu.RLock()
	list := make([]*Channel, 0, len(a.channels))
	for name, ch := range a.channels {
		if strings.HasPrefix(name, prefix) {
			list = append(list, ch)
		}
	}
	a.mu.RUnlock()
	out := make([]Info, 0, len(list))
	for _, ch := range list {
		out = append(out, ch.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
