package stats

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatsCountersMove(t *testing.T) {
	type series struct {
		name   string
		labels map[string]string
		want   float64
	}
	tests := []struct {
		name string
		give func(s *Stats)
		want []series
	}{
		{
			name: "a socket comes and goes",
			give: func(s *Stats) {
				s.Connected("1001")
				s.Disconnected("1001", 1000)
			},
			want: []series{
				{"fizz_connects_total", map[string]string{"app": "1001"}, 1},
				{"fizz_disconnects_total", map[string]string{"app": "1001", "code": "1000"}, 1},
			},
		},
		{
			name: "frames in and out",
			give: func(s *Stats) {
				s.MessageReceived(10)
				s.MessageReceived(5)
				s.MessagesSent(3, 100)
			},
			want: []series{
				{"fizz_messages_received_total", nil, 2},
				{"fizz_bytes_received_total", nil, 15},
				{"fizz_messages_sent_total", nil, 3},
				{"fizz_bytes_sent_total", nil, 100},
			},
		},
		{
			name: "refusals",
			give: func(s *Stats) {
				s.SlowConsumer("1001")
				s.RateLimited("1001")
				s.RateLimited("1001")
				s.GatherPartial()
			},
			want: []series{
				{"fizz_slow_consumer_closes_total", map[string]string{"app": "1001"}, 1},
				{"fizz_client_events_rate_limited_total", map[string]string{"app": "1001"}, 2},
				{"fizz_gather_partial_total", nil, 1},
			},
		},
		{
			name: "HTTP API",
			give: func(s *Stats) {
				s.APIRequest("/apps/:appId/events", "POST", 200)
				s.APIRequest("/apps/:appId/events", "POST", 200)
				s.APIRequest("/apps/:appId", "POST", 401)
			},
			want: []series{
				{"fizz_http_api_requests_total", map[string]string{"route": "/apps/:appId/events", "method": "POST", "status": "200"}, 2},
				{"fizz_http_api_requests_total", map[string]string{"route": "/apps/:appId", "method": "POST", "status": "401"}, 1},
			},
		},
		{
			name: "events by source",
			give: func(s *Stats) {
				s.EventTriggered("1001", "order-shipped", false)
				s.EventTriggered("1001", "client-typing", true)
				s.EventTriggered("1001", "pusher_internal:member_added", false)
			},
			want: []series{
				{"fizz_events_triggered_total", map[string]string{"app": "1001", "source": "api"}, 1},
				{"fizz_events_triggered_total", map[string]string{"app": "1001", "source": "client"}, 1},
				{"fizz_events_triggered_total", map[string]string{"app": "1001", "source": "internal"}, 1},
			},
		},
		{
			name: "pub/sub: failures are not timed",
			give: func(s *Stats) {
				s.EnvelopePublished(time.Millisecond, nil)
				s.EnvelopePublished(time.Millisecond, errors.New("redis down"))
				s.EnvelopeReceived()
			},
			want: []series{
				{"fizz_pubsub_publishes_total", nil, 2},
				{"fizz_pubsub_publish_failures_total", nil, 1},
				{"fizz_pubsub_publish_seconds", nil, 1}, // sample count
				{"fizz_pubsub_receives_total", nil, 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			tt.give(s)
			for _, w := range tt.want {
				assert.Equal(t, w.want, mustValue(t, s.Gatherer(), w.name, w.labels), "%s%v", w.name, w.labels)
			}
		})
	}
}

func TestCodeLabel(t *testing.T) {
	tests := []struct {
		give int
		want string
	}{
		{give: 1000, want: "1000"},
		{give: 0, want: "1006"},
		{give: 4100, want: "4100"},
		{give: 4201, want: "4201"},
		{give: 4999, want: "other"},
		{give: 3000, want: "other"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, codeLabel(tt.give))
		})
	}
}

func TestNilStatsCountsNothing(t *testing.T) {
	var s *Stats
	require.NotPanics(t, func() {
		s.Connected("a")
		s.Disconnected("a", 1000)
		s.MessageReceived(1)
		s.MessagesSent(1, 1)
		s.SlowConsumer("a")
		s.RateLimited("a")
		s.APIRequest("/apps/:appId/events", "POST", 200)
		s.EventTriggered("a", "e", false)
		s.EnvelopePublished(time.Second, nil)
		s.EnvelopeReceived()
		s.GatherPartial()
	})
}

func TestStatsHasRuntimeAndProcessCollectors(t *testing.T) {
	families, err := New().Gatherer().Gather()
	require.NoError(t, err)
	names := make(map[string]bool)
	for _, f := range families {
		names[f.GetName()] = true
	}
	assert.True(t, names["go_goroutines"], "Go runtime collector")
	assert.True(t, names["process_cpu_seconds_total"], "process collector")
}
