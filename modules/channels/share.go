package channels

import (
	"sync"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/scaling"
)

// ShareSource reports this node's part of the cluster's shared state:
// its presence members (with their socket counts) and its open sockets
// per app, which a node re-asserts after Redis lost them.
//
// Every change of the share (a socket counted or uncounted, a presence
// subscription made or given up, together with its write to the shared
// state) runs inside Change; a re-assert runs inside WithShare, which
// excludes them, so the truth it writes is never overtaken by a change
// that was already half done.
type ShareSource struct {
	channels *Manager
	registry *connection.Registry
	mu       sync.RWMutex
}

var _ scaling.ShareSource = (*ShareSource)(nil)

// NewShareSource returns the ShareSource of manager and registry.
func NewShareSource(manager *Manager, registry *connection.Registry) *ShareSource {
	return &ShareSource{channels: manager, registry: registry}
}

// Change runs f, a change of this node's share; changes run concurrently
// with each other but never with WithShare.
func (s *ShareSource) Change(f func()) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f()
}

// WithShare implements scaling.ShareSource.
func (s *ShareSource) WithShare(f func(scaling.Share)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(scaling.Share{Presence: s.channels.presenceShare(), Connections: s.registry.Counts()})
}

// presenceShare lists every presence member of every app on this node.
func (m *Manager) presenceShare() []scaling.PresenceShare {
	m.mu.Lock()
	states := make(map[string]*appState, len(m.apps))
	for id, a := range m.apps {
		states[id] = a
	}
	m.mu.Unlock()
	var out []scaling.PresenceShare
	for appID, a := range states {
		a.mu.RLock()
		for name, ch := range a.channels {
			if ch.members == nil {
				continue
			}
			ch.mu.Lock()
			for user, mem := range ch.members {
				out = append(out, scaling.PresenceShare{AppID: appID, Channel: name, UserID: user, Info: mem.info, Sockets: mem.sockets, Seq: ch.seen})
			}
			ch.mu.Unlock()
		}
		a.mu.RUnlock()
	}
	return out
}
