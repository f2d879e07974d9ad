package handlers

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRefusalsLog: the line names the reason, the value and the extra
// attributes, once per reason and value (the spacing is the server's
// Refusals, tested there).
func TestRefusalsLog(t *testing.T) {
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	r := newRefusals()
	steps := []struct {
		reason, value string
		logged        bool
	}{
		{"unknown app key (4001)", "k1", true},
		{"unknown app key (4001)", "k1", false},
		{"unknown app key (4001)", "k2", true},
	}
	for i, s := range steps {
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
