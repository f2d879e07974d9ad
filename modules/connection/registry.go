package connection

import (
	"context"
	"errors"
	"sync"
	"unsafe"

	"github.com/fizz-server/fizz/modules/pusher"
)

// ErrDraining is returned by Registry.Add once CloseAll has begun.
var ErrDraining = errors.New("server is shutting down")

// ErrFull is returned by Registry.Add when the node holds its cap of
// sockets (Config.MaxSockets).
var ErrFull = errors.New("the node holds its cap of sockets")

// Registry holds every live socket of this node, counts them per app and
// closes them all at shutdown.
type Registry struct {
	mu       sync.Mutex
	conns    map[*Conn]struct{}
	perApp   map[string]int
	max      int // sockets at most; 0: no cap
	draining bool
	empty    chan struct{} // closed when draining and no socket is left
}

// NewRegistry returns an empty Registry without a cap.
func NewRegistry() *Registry { return NewCappedRegistry(0) }

// NewCappedRegistry returns an empty Registry that holds max sockets at
// most (0: no cap).
func NewCappedRegistry(max int) *Registry {
	return &Registry{conns: make(map[*Conn]struct{}), perApp: make(map[string]int), max: max}
}

// Full reports whether the node holds its cap of sockets.
func (r *Registry) Full() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.max > 0 && len(r.conns) >= r.max
}

// Add registers c unless the node is draining. The app's connection cap
// holds for the cluster and is the shared state's to enforce.
func (r *Registry) Add(c *Conn) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.draining {
		return ErrDraining
	}
	if _, ok := r.conns[c]; ok {
		return nil // counted already; Remove uncounts it once
	}
	if r.max > 0 && len(r.conns) >= r.max {
		return ErrFull
	}
	r.conns[c] = struct{}{}
	r.perApp[c.app.ID]++
	return nil
}

// Remove forgets c.
func (r *Registry) Remove(c *Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.conns[c]; !ok {
		return
	}
	delete(r.conns, c)
	if r.perApp[c.app.ID]--; r.perApp[c.app.ID] == 0 {
		delete(r.perApp, c.app.ID)
	}
	if r.draining && len(r.conns) == 0 && r.empty != nil {
		close(r.empty)
		r.empty = nil
	}
}

// Count returns the number of live sockets of app on this node.
func (r *Registry) Count(appID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.perApp[appID]
}

// Counts returns the number of live sockets per app on this node.
func (r *Registry) Counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.perApp))
	for app, n := range r.perApp {
		out[app] = n
	}
	return out
}

// CloseAll refuses new sockets, closes every live one with 4200 "Server is
// restarting" (pusher-js reconnects at once, to another node if there is
// one) and waits until their handlers have finished or ctx ends, when the
// remaining transports are cut.
func (r *Registry) CloseAll(ctx context.Context) error {
	r.mu.Lock()
	r.draining = true
	conns := make([]*Conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	var empty chan struct{}
	if len(r.conns) > 0 {
		if r.empty == nil {
			r.empty = make(chan struct{})
		}
		empty = r.empty
	}
	r.mu.Unlock()

	restarting := pusher.Fatalf(pusher.CodeGeneric, "Server is restarting")
	for _, c := range conns {
		c.Close(restarting)
	}
	if empty == nil {
		return nil
	}
	select {
	case <-empty:
		return nil
	case <-ctx.Done():
		r.mu.Lock()
		for c := range r.conns {
			c.Abort()
		}
		r.mu.Unlock()
		return ctx.Err()
	}
}

// QueuedBytes returns the bytes queued for the node's sockets and not yet
// taken by their writers: held sums every socket's queue, and distinct
// counts a frame queued for many sockets (a broadcast's shared bytes)
// once, which is what the queues cost the node's memory.
func (r *Registry) QueuedBytes() (held, distinct int) {
	r.mu.Lock()
	conns := make([]*Conn, 0, len(r.conns))
	for c := range r.conns {
		conns = append(conns, c)
	}
	r.mu.Unlock()
	seen := make(map[*byte]int)
	for _, c := range conns {
		held += c.out.frames(func(f []byte) {
			if len(f) > 0 {
				p := unsafe.SliceData(f)
				seen[p] = max(seen[p], len(f))
			}
		})
	}
	for _, n := range seen {
		distinct += n
	}
	return held, distinct
}
