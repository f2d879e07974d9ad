package connection

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name string
		at   []time.Duration // attempts, from t0
		want []bool
	}{
		{"within the max", []time.Duration{0, 1, 2}, []bool{true, true, true}},
		{"one over", []time.Duration{0, 1, 2, 3}, []bool{true, true, true, false}},
		{"a new window after decay", []time.Duration{0, 1, 2, 3, 10 * time.Second}, []bool{true, true, true, false, true}},
		{"the window starts at its first attempt", []time.Duration{0, 9 * time.Second, 9 * time.Second, 11 * time.Second, 12 * time.Second},
			[]bool{true, true, true, true, true}},
		{"refused attempts count", []time.Duration{0, 1, 2, 3, 4, 9 * time.Second}, []bool{true, true, true, false, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w window
			var got []bool
			for _, d := range tt.at {
				got = append(got, w.hit(t0.Add(d), 3, 10*time.Second))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
