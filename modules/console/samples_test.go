package console

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fizz-server/fizz/modules/apps"
)

// fakeSources reports set counts.
type fakeSources struct {
	conns  map[string]int
	events map[string]float64
}

func (f *fakeSources) Count(appID string) int          { return f.conns[appID] }
func (f *fakeSources) EventsByApp() map[string]float64 { return f.events }

func TestSamples(t *testing.T) {
	src := &fakeSources{conns: map[string]int{"a": 2}, events: map[string]float64{"a": 10}}
	s := NewSamples(src, []*apps.App{{ID: "a"}, {ID: "b"}})
	now := int64(1_000_000)
	s.now = func() time.Time { return time.Unix(now, 0) }
	s.take(now - 2)
	src.conns["a"], src.events["a"] = 3, 15
	s.take(now - 1)
	src.events["a"] = 15
	s.take(now)

	tests := []struct {
		name  string
		app   string
		since int64
		want  []Sample
	}{
		{name: "all", app: "a", since: 0, want: []Sample{{T: now - 2, Connections: 2, Messages: 10}, {T: now - 1, Connections: 3, Messages: 5}, {T: now, Connections: 3}}},
		{name: "since", app: "a", since: now - 1, want: []Sample{{T: now, Connections: 3}}},
		{name: "an idle app", app: "b", since: now - 1, want: []Sample{{T: now}}},
		{name: "an unknown app", app: "c", since: 0, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, s.Since(tt.app, tt.since))
		})
	}
}

// TestSamplesHour: the ring keeps the last hour; older seconds are gone.
func TestSamplesHour(t *testing.T) {
	s := NewSamples(&fakeSources{conns: map[string]int{}, events: map[string]float64{}}, []*apps.App{{ID: "a"}})
	now := int64(2_000_000)
	s.now = func() time.Time { return time.Unix(now, 0) }
	for t := now - History - 100; t <= now; t++ {
		s.take(t)
	}
	got := s.Since("a", 0)
	assert.Len(t, got, History)
	assert.Equal(t, now-History+1, got[0].T)
	assert.Equal(t, now, got[len(got)-1].T)
	var nilSamples *Samples
	assert.Nil(t, nilSamples.Since("a", 0))
}

func TestSum(t *testing.T) {
	tests := []struct {
		name string
		give [][]Sample
		want []Sample
	}{
		{name: "none", give: nil, want: []Sample{}},
		{name: "two nodes", give: [][]Sample{
			{{T: 2, Connections: 1, Messages: 1}, {T: 3, Connections: 1}},
			{{T: 1, Connections: 5}, {T: 2, Connections: 2, Messages: 4}},
		}, want: []Sample{{T: 1, Connections: 5}, {T: 2, Connections: 3, Messages: 5}, {T: 3, Connections: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Sum(tt.give...))
		})
	}
}
