package console

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/fizz-server/fizz/modules/apps"
)

// History is how many seconds of samples are kept: the last hour.
const History = 3600

// Sample is one second of one app on one node, or summed over the
// cluster.
type Sample struct {
	// T is the second, in seconds since the epoch.
	T int64 `json:"t"`
	// Connections is the open sockets at the end of the second.
	Connections int `json:"c"`
	// Messages is the events dispatched during the second (API triggers,
	// client events, presence member events).
	Messages int64 `json:"m"`
}

// Sources are what Samples reads each second: a node's open sockets and
// its dispatched events, per app.
type Sources interface {
	// Count returns the open sockets of appID on this node.
	Count(appID string) int
	// EventsByApp returns the events dispatched on this node since it
	// started, by app.
	EventsByApp() map[string]float64
}

// Samples keeps a ring of History samples per app.
type Samples struct {
	sources Sources
	apps    []string
	now     func() time.Time

	mu    sync.Mutex
	rings map[string]*[History]Sample // by app id; slot T % History
	last  map[string]float64          // the events counted at the last sample
}

// NewSamples returns Samples of list's apps read from sources. It starts
// nothing.
func NewSamples(sources Sources, list []*apps.App) *Samples {
	s := &Samples{sources: sources, now: time.Now, rings: make(map[string]*[History]Sample), last: make(map[string]float64)}
	for _, a := range list {
		s.apps = append(s.apps, a.ID)
		s.rings[a.ID] = new([History]Sample)
	}
	return s
}

// Run takes one sample a second until ctx ends.
func (s *Samples) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	s.take(s.now().Unix())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			s.take(now.Unix())
		}
	}
}

// take records second t of every app.
func (s *Samples) take(t int64) {
	events := s.sources.EventsByApp()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.apps {
		n, seen := events[id], s.last[id]
		msgs := int64(n - seen)
		if msgs < 0 {
			msgs = 0
		}
		s.last[id] = n
		s.rings[id][t%History] = Sample{T: t, Connections: s.sources.Count(id), Messages: msgs}
	}
}

// Since returns appID's samples after second since and within the last
// hour, oldest first; nil for an unknown app.
func (s *Samples) Since(appID string, since int64) []Sample {
	if s == nil {
		return nil
	}
	now := s.now().Unix()
	if floor := now - History; since < floor {
		since = floor
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ring := s.rings[appID]
	if ring == nil {
		return nil
	}
	var out []Sample
	for t := since + 1; t <= now; t++ {
		if sm := ring[t%History]; sm.T == t {
			out = append(out, sm)
		}
	}
	return out
}

// Sum adds samples of several nodes up by second, oldest first.
func Sum(nodes ...[]Sample) []Sample {
	by := make(map[int64]Sample)
	for _, list := range nodes {
		for _, sm := range list {
			acc := by[sm.T]
			acc.T = sm.T
			acc.Connections += sm.Connections
			acc.Messages += sm.Messages
			by[sm.T] = acc
		}
	}
	out := make([]Sample, 0, len(by))
	for _, sm := range by {
		out = append(out, sm)
	}
	slices.SortFunc(out, func(a, b Sample) int { return cmp.Compare(a.T, b.T) })
	return out
}
