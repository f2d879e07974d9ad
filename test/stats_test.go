package e2e

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
)

// scraped is one /metrics answer: series ("name{a=\"x\",b=\"y\"}", labels
// sorted by name, as the exposition writes them) to value.
type scraped map[string]float64

// get returns the value of name with labels (name=value pairs, sorted), 0
// when the series is absent.
func (s scraped) get(name string, labels ...string) float64 {
	key := name
	if len(labels) > 0 {
		pairs := make([]string, 0, len(labels)/2)
		for i := 0; i+1 < len(labels); i += 2 {
			pairs = append(pairs, labels[i]+`="`+labels[i+1]+`"`)
		}
		key += "{" + strings.Join(pairs, ",") + "}"
	}
	return s[key]
}

// metricsNode starts a node whose metrics listener is on a free port and
// returns it with its /metrics URL; mutate (may be nil) changes it further.
func metricsNode(t *testing.T, mutate func(*app.Config)) (*harness.Node, string) {
	t.Helper()
	port := harness.FreePort(t)
	n := harness.Start(t, func(c *app.Config) {
		c.Metrics.Host, c.Metrics.Port = "127.0.0.1", port
		if mutate != nil {
			mutate(c)
		}
	})
	return n, "http://127.0.0.1:" + strconv.Itoa(port) + "/metrics"
}

// scrape fetches url and parses the text exposition by line.
func scrape(t *testing.T, url string) scraped {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	out := make(scraped)
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "exposition line %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "exposition line %q", line)
		out[line[:i]] = v
	}
	return out
}

// eventually scrapes until ok holds, and fails with the last scrape.
func eventually(t *testing.T, url string, what string, ok func(scraped) bool) scraped {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s := scrape(t, url)
		if ok(s) {
			return s
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			require.Failf(t, "metrics did not move", "%s; last scrape: %v", what, s)
		}
	}
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	t.Parallel()
	n, url := metricsNode(t, nil)
	const channel = "private-metrics"
	app := []string{"app", harness.AppID}

	before := scrape(t, url)
	assert.Zero(t, before.get("fizz_connections", app...), "a configured app is reported with no socket")
	assert.Contains(t, before, "go_goroutines", "Go runtime collector")
	assert.Contains(t, before, "process_cpu_seconds_total", "process collector")
	_, link := before["fizz_redis_link_up"]
	assert.False(t, link, "no Redis link gauge with scaling off")

	// Connect and subscribe.
	sender, receiver := harness.Dial(t, n), harness.Dial(t, n)
	harness.Subscribe(t, sender, channel)
	harness.Subscribe(t, receiver, channel)
	s := eventually(t, url, "two sockets on one channel", func(s scraped) bool {
		return s.get("fizz_connections", app...) == 2 && s.get("fizz_subscriptions", app...) == 2
	})
	assert.Equal(t, 2.0, s.get("fizz_connects_total", app...))
	assert.Equal(t, 1.0, s.get("fizz_channels", app...))

	// Receive: an event through the HTTP API reaches both sockets.
	trigger(t, n, channel, "order-shipped", map[string]int{"id": 7})
	harness.Expect(t, sender, "order-shipped", channel)
	harness.Expect(t, receiver, "order-shipped", channel)

	// Send client events over the rate limit (10 per second per socket).
	const burst = 30
	for i := range burst {
		require.NoError(t, sender.Trigger("client-burst", channel, map[string]int{"i": i}))
	}
	barrier(t, sender)
	refused := 0
	for _, f := range sender.Pending() {
		if f.Event == pusher.EventError {
			refused++
		}
	}
	require.Positive(t, refused, "the burst hits the rate limit")
	// The receiver's copies go out on their own: wait for them, so that
	// the counters below have counted them.
	for range burst - refused {
		harness.Expect(t, receiver, "client-burst", channel)
	}

	// A request with a bad signature, and a listing.
	resp, err := n.HTTP.Post(n.HTTPURL+"/apps/"+harness.AppID+"/events?auth_key=nope", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, err = n.Pusher.Channels(pusherhttp.ChannelsParams{})
	require.NoError(t, err)

	s = scrape(t, url)
	assert.Equal(t, float64(refused), s.get("fizz_client_events_rate_limited_total", app...))
	assert.Equal(t, float64(burst-refused), s.get("fizz_events_triggered_total", "app", harness.AppID, "source", "client"))
	assert.Equal(t, 1.0, s.get("fizz_events_triggered_total", "app", harness.AppID, "source", "api"))
	// Two subscribes, the burst and the barrier's ping at least.
	assert.GreaterOrEqual(t, s.get("fizz_messages_received_total"), float64(2+burst+1))
	assert.Greater(t, s.get("fizz_bytes_received_total"), s.get("fizz_messages_received_total"))
	// Two connection_established, two subscription_succeeded, the API event
	// to both, client events to the receiver, errors and a pong to the sender.
	assert.GreaterOrEqual(t, s.get("fizz_messages_sent_total"), float64(2+2+2+(burst-refused)+refused+1))
	assert.Greater(t, s.get("fizz_bytes_sent_total"), s.get("fizz_messages_sent_total"))
	assert.Equal(t, 1.0, s.get("fizz_http_api_requests_total", "method", "POST", "route", "/apps/:appId/events", "status", "200"))
	assert.Equal(t, 1.0, s.get("fizz_http_api_requests_total", "method", "POST", "route", "/apps/:appId", "status", "401"),
		"refused before routing: the group's pattern")
	assert.Equal(t, 1.0, s.get("fizz_http_api_requests_total", "method", "GET", "route", "/apps/:appId/channels", "status", "200"))
	for series := range s {
		assert.NotContains(t, series, "/apps/"+harness.AppID, "a raw path became a label")
	}
	publishes := s.get("fizz_pubsub_publishes_total")
	assert.GreaterOrEqual(t, publishes, float64(1+burst-refused+1), "the event, the client events, the channels query")
	assert.Equal(t, publishes, s.get("fizz_pubsub_publish_seconds_count"), "every publish succeeded and was timed")
	assert.GreaterOrEqual(t, s.get("fizz_pubsub_receives_total"), publishes, "each publish comes back, and the query's reply too")
	assert.Zero(t, s.get("fizz_pubsub_publish_failures_total"))
	assert.Zero(t, s.get("fizz_gather_partial_total"))

	// Close: the client's 1000 is counted and the gauges come down.
	require.NoError(t, sender.Close())
	s = eventually(t, url, "the sender's socket gone", func(s scraped) bool {
		return s.get("fizz_connections", app...) == 1 &&
			s.get("fizz_disconnects_total", "app", harness.AppID, "code", "1000") == 1
	})
	assert.Equal(t, 1.0, s.get("fizz_subscriptions", app...))
	assert.Equal(t, 1.0, s.get("fizz_channels", app...))
}

func TestMetricsReportRedisLink(t *testing.T) {
	t.Parallel()
	r := harness.StartRedis(t)
	n, url := metricsNode(t, func(c *app.Config) {
		c.Scaling.Enabled = true
		c.Scaling.RedisURL = r.URL
		c.Scaling.Channel = unique("fizz-test-stats-")
	})
	eventually(t, url, "the Redis link up", func(s scraped) bool { return s.get("fizz_redis_link_up") == 1 })

	trigger(t, n, "news", "hello", "world")
	s := eventually(t, url, "the event published over Redis and received", func(s scraped) bool {
		return s.get("fizz_pubsub_publish_seconds_count") >= 1 && s.get("fizz_pubsub_receives_total") >= 1
	})
	assert.Equal(t, 1.0, s.get("fizz_events_triggered_total", "app", harness.AppID, "source", "api"))

	r.Stop()
	eventually(t, url, "the Redis link down", func(s scraped) bool { return s.get("fizz_redis_link_up") == 0 })
	_ = n.Pusher.Trigger("news", "hello", "again") // delivered here only; the answer does not matter
	eventually(t, url, "a failed publish", func(s scraped) bool { return s.get("fizz_pubsub_publish_failures_total") >= 1 })
}
