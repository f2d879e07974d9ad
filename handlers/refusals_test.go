package handlers

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRefusalsLogOncePerInterval(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	now := time.Unix(1000, 0)
	r := newRefusals()
	r.now = func() time.Time { return now }

	steps := []struct {
		after  time.Duration
		reason string
		value  string
		logged bool
	}{
		{0, "unknown app key (4001)", "k1", true},
		{time.Second, "unknown app key (4001)", "k1", false},
		{0, "unknown app key (4001)", "k2", true},
		{0, "origin not in allowed_origins (4009)", "k1", true},
		{refusalEvery, "unknown app key (4001)", "k1", true},
		{time.Second, "unknown app key (4001)", "k1", false},
	}
	for i, s := range steps {
		now = now.Add(s.after)
		out.Reset()
		r.log(log, s.reason, s.value, "app_id", "1")
		if s.logged {
			assert.Contains(t, out.String(), "socket refused: "+s.reason, "step %d", i)
			assert.Contains(t, out.String(), "value="+s.value, "step %d", i)
			assert.Contains(t, out.String(), "app_id=1", "step %d", i)
		} else {
			assert.Empty(t, out.String(), "step %d", i)
		}
	}
}

func TestRefusalsStayBounded(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	r := newRefusals()
	for i := range 3 * maxRefusals {
		r.log(log, "unknown app key (4001)", strings.Repeat("k", i%50)+string(rune('a'+i%26))+time.Duration(i).String())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	assert.LessOrEqual(t, len(r.last), maxRefusals)
}
