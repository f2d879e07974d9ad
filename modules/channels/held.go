package channels

import "encoding/json"

// Held is one channel this node's sockets are subscribed to, as the
// cluster's shared state counts it: the number of subscriptions, the
// largest Seq the node has seen on the channel (in a member list or a
// member event), and on presence channels each member's sockets.
type Held struct {
	AppID         string
	Channel       string
	Subscriptions int
	Seen          uint64
	Members       []HeldMember
}

// HeldMember is one presence member's sockets on this node.
type HeldMember struct {
	UserID  string
	Info    json.RawMessage
	Sockets int
}

// Held lists every channel of every app with a subscriber on this node.
func (m *Manager) Held() []Held {
	m.mu.Lock()
	states := make(map[string]*appState, len(m.apps))
	for id, a := range m.apps {
		states[id] = a
	}
	m.mu.Unlock()
	var out []Held
	for appID, a := range states {
		a.mu.RLock()
		for name, ch := range a.channels {
			ch.mu.Lock()
			h := Held{AppID: appID, Channel: name, Subscriptions: len(ch.subs), Seen: ch.seen}
			for user, mem := range ch.members {
				h.Members = append(h.Members, HeldMember{UserID: user, Info: mem.info, Sockets: mem.sockets})
			}
			ch.mu.Unlock()
			out = append(out, h)
		}
		a.mu.RUnlock()
	}
	return out
}
