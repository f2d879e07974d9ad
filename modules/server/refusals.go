package server

import (
	"sync"
	"time"
)

// RefusalEvery spaces the log lines of one refusal (a reason and the
// value that caused it): an operator sees why a client is refused, and
// a client retrying in a loop does not flood the log.
const RefusalEvery = time.Minute

// maxRefusals bounds the refusals remembered; beyond it they are all
// forgotten (and may be logged once more).
const maxRefusals = 1024

// Refusals remembers when each refusal was last logged: the server's own
// (a request too slow, an HTTP version it does not serve) and the
// WebSocket handshake's. It is safe for concurrent use.
type Refusals struct {
	mu   sync.Mutex
	last map[string]time.Time
	now  func() time.Time
}

// NewRefusals returns an empty Refusals.
func NewRefusals() *Refusals {
	return &Refusals{last: make(map[string]time.Time), now: time.Now}
}

// Due reports whether a refusal for reason, caused by value, is to be
// logged now: it was not within RefusalEvery. It then counts as logged.
func (r *Refusals) Due(reason, value string) bool {
	key := reason + "\n" + value
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.last[key]; ok && now.Sub(at) < RefusalEvery {
		return false
	}
	if len(r.last) >= maxRefusals {
		clear(r.last)
	}
	r.last[key] = now
	return true
}
