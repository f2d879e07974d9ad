package server

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRefusalsDueOncePerInterval(t *testing.T) {
	now := time.Unix(1000, 0)
	r := NewRefusals()
	r.now = func() time.Time { return now }
	steps := []struct {
		after  time.Duration
		reason string
		value  string
		due    bool
	}{
		{0, "unknown app key (4001)", "k1", true},
		{time.Second, "unknown app key (4001)", "k1", false},
		{0, "unknown app key (4001)", "k2", true},
		{0, "origin not in allowed_origins (4009)", "k1", true},
		{RefusalEvery, "unknown app key (4001)", "k1", true},
		{time.Second, "unknown app key (4001)", "k1", false},
		{0, "header_timeout", "", true},
		{time.Second, "header_timeout", "", false},
	}
	for i, s := range steps {
		now = now.Add(s.after)
		assert.Equal(t, s.due, r.Due(s.reason, s.value), "step %d", i)
	}
}

func TestRefusalsStayBounded(t *testing.T) {
	r := NewRefusals()
	for i := range 3 * maxRefusals {
		r.Due("unknown app key (4001)", strings.Repeat("k", i%50)+string(rune('a'+i%26))+time.Duration(i).String())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	assert.LessOrEqual(t, len(r.last), maxRefusals)
}
