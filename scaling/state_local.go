package scaling

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// LocalState is the State of a single node, in memory.
//
// It numbers the changes of every presence channel with one counter: the
// numbers of each channel grow as State asks, and they never start again
// from 1 when a channel empties and fills again, so a member event still
// in flight from before can never pass for a newer one.
type LocalState struct {
	mu       sync.Mutex
	seq      uint64                             // the last Seq handed out, any channel
	presence map[string]map[string]*localMember // app+"\n"+channel -> user -> member
	cache    map[string]cachedEvent             // app+"\n"+channel -> event
	conns    map[string]int
	pruned   time.Time
	now      func() time.Time
}

type localMember struct {
	info    json.RawMessage
	sockets int
}

type cachedEvent struct {
	payload []byte
	at      time.Time
}

var _ State = (*LocalState)(nil)

// NewLocalState returns an empty LocalState.
func NewLocalState() *LocalState {
	return &LocalState{
		presence: make(map[string]map[string]*localMember),
		cache:    make(map[string]cachedEvent),
		conns:    make(map[string]int),
		now:      time.Now,
	}
}

func stateKey(appID, channel string) string { return appID + "\n" + channel }

// JoinPresence implements State.
func (s *LocalState) JoinPresence(_ context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (bool, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := stateKey(appID, channel)
	members := s.presence[key]
	if m, ok := members[userID]; ok {
		m.sockets++
		return false, 0, nil
	}
	if maxMembers > 0 && len(members) >= maxMembers {
		return false, 0, ErrMembersLimit
	}
	if members == nil {
		members = make(map[string]*localMember)
		s.presence[key] = members
	}
	members[userID] = &localMember{info: infoOrNull(info), sockets: 1}
	s.seq++
	return true, s.seq, nil
}

// LeavePresence implements State.
func (s *LocalState) LeavePresence(_ context.Context, appID, channel, userID string) (bool, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := stateKey(appID, channel)
	members := s.presence[key]
	m, ok := members[userID]
	if !ok {
		return false, 0, nil
	}
	if m.sockets--; m.sockets > 0 {
		return false, 0, nil
	}
	delete(members, userID)
	if len(members) == 0 {
		delete(s.presence, key)
	}
	s.seq++
	return true, s.seq, nil
}

// PresenceMembers implements State. The Seq it reports is the node-wide
// counter: every change of this channel up to it is in the list.
func (s *LocalState) PresenceMembers(_ context.Context, appID, channel string) (map[string]json.RawMessage, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	members := s.presence[stateKey(appID, channel)]
	out := make(map[string]json.RawMessage, len(members))
	for id, m := range members {
		out[id] = m.info
	}
	return out, s.seq, nil
}

// RememberEvent implements State.
func (s *LocalState) RememberEvent(_ context.Context, appID, channel string, payload []byte) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache[stateKey(appID, channel)] = cachedEvent{payload: payload, at: now}
	// Expired events are dropped at most once a minute, which bounds the
	// map by the channels used within one TTL without a scan per event.
	if now.Sub(s.pruned) < time.Minute {
		return nil
	}
	s.pruned = now
	for k, e := range s.cache {
		if now.Sub(e.at) > CacheTTL {
			delete(s.cache, k)
		}
	}
	return nil
}

// LastEvent implements State.
func (s *LocalState) LastEvent(_ context.Context, appID, channel string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.cache[stateKey(appID, channel)]
	if !ok || s.now().Sub(e.at) > CacheTTL {
		return nil, false, nil
	}
	return e.payload, true, nil
}

// AddConnection implements State.
func (s *LocalState) AddConnection(_ context.Context, appID string, limit int) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.conns[appID] >= limit {
		return false, nil
	}
	s.conns[appID]++
	return true, nil
}

// RemoveConnection implements State.
func (s *LocalState) RemoveConnection(_ context.Context, appID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[appID]--; s.conns[appID] <= 0 {
		delete(s.conns, appID)
	}
	return nil
}

// Run implements State: one node has no lease to keep, so it waits for ctx.
func (s *LocalState) Run(ctx context.Context, _ ShareSource, _ func(context.Context, []PresenceChange)) {
	<-ctx.Done()
}
