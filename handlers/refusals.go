package handlers

import (
	"log/slog"
	"sync"
	"time"
)

// refusalEvery spaces the log lines of one refusal (a reason and the
// value that caused it): an operator sees why a browser cannot connect,
// and a client retrying in a loop does not flood the log.
const refusalEvery = time.Minute

// maxRefusals bounds the refusals remembered; beyond it they are all
// forgotten (and may be logged once more).
const maxRefusals = 1024

// refusals logs why sockets are refused, each reason and value at most
// once per refusalEvery.
type refusals struct {
	mu   sync.Mutex
	last map[string]time.Time
	now  func() time.Time
}

func newRefusals() *refusals {
	return &refusals{last: make(map[string]time.Time), now: time.Now}
}

// log logs a refusal at warn level unless the same reason and value was
// logged within refusalEvery.
func (r *refusals) log(log *slog.Logger, reason, value string, attrs ...any) {
	key := reason + "\n" + value
	now := r.now()
	r.mu.Lock()
	if at, ok := r.last[key]; ok && now.Sub(at) < refusalEvery {
		r.mu.Unlock()
		return
	}
	if len(r.last) >= maxRefusals {
		clear(r.last)
	}
	r.last[key] = now
	r.mu.Unlock()
	log.Warn("socket refused: "+reason, append([]any{"value", value}, attrs...)...)
}
