package console

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClip(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{name: "short", give: "hello", want: "hello"},
		{name: "at the bound", give: strings.Repeat("a", MaxData), want: strings.Repeat("a", MaxData)},
		{name: "over", give: strings.Repeat("a", MaxData+5), want: strings.Repeat("a", MaxData) + "…"},
		{name: "a rune across the bound", give: strings.Repeat("a", MaxData-1) + "é", want: strings.Repeat("a", MaxData-1) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Clip(tt.give))
		})
	}
}

func TestFilterMatches(t *testing.T) {
	tests := []struct {
		name   string
		filter Filter
		give   Event
		want   bool
	}{
		{name: "its app", filter: Filter{App: "a"}, give: Event{App: "a", Type: TypeConnect}, want: true},
		{name: "another app", filter: Filter{App: "a"}, give: Event{App: "b", Type: TypeConnect}},
		{name: "its channel", filter: Filter{App: "a", Channel: "c"}, give: Event{App: "a", Channel: "c"}, want: true},
		{name: "another channel", filter: Filter{App: "a", Channel: "c"}, give: Event{App: "a", Channel: "d"}},
		{name: "no channel", filter: Filter{App: "a", Channel: "c"}, give: Event{App: "a", Type: TypeConnect}},
		{name: "its event", filter: Filter{App: "a", Event: "e"}, give: Event{App: "a", Event: "e"}, want: true},
		{name: "another event", filter: Filter{App: "a", Event: "e"}, give: Event{App: "a", Event: "f"}},
		{name: "a dropped marker always", filter: Filter{App: "a", Channel: "c"}, give: Event{Type: TypeDropped, Count: 3}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.filter.matches(&tt.give))
		})
	}
}
