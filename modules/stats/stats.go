package stats

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/scaling"
)

// namespace prefixes every Fizz metric.
const namespace = "fizz"

// Event sources, the values of fizz_events_triggered_total's source label.
const (
	SourceAPI      = "api"      // the HTTP API (events, batch_events)
	SourceClient   = "client"   // a client-* event sent by a socket
	SourceInternal = "internal" // pusher_internal:* (presence member changes)
)

// internalPrefix marks the events Fizz itself raises.
const internalPrefix = "pusher_internal:"

// Stats holds the node's Prometheus collectors and its registry. Its
// methods are safe for concurrent use, and do nothing on a nil *Stats, so a
// component built without stats (a unit test) needs no fake.
type Stats struct {
	registry *prometheus.Registry

	connects      *prometheus.CounterVec
	disconnects   *prometheus.CounterVec
	messagesIn    prometheus.Counter
	bytesIn       prometheus.Counter
	messagesOut   prometheus.Counter
	bytesOut      prometheus.Counter
	slowConsumers *prometheus.CounterVec
	refused       *prometheus.CounterVec
	rateLimitedIn *prometheus.CounterVec
	rateLimited   *prometheus.CounterVec
	apiRequests   *prometheus.CounterVec
	events        *prometheus.CounterVec
	transitions   *prometheus.CounterVec

	webhooksSent    *prometheus.CounterVec
	webhookRetries  *prometheus.CounterVec
	webhooksDropped *prometheus.CounterVec
	webhookQueue    prometheus.Gauge
	webhookLatency  prometheus.Histogram

	publishes       prometheus.Counter
	publishFailures prometheus.Counter
	publishSeconds  prometheus.Histogram
	receives        prometheus.Counter
	gatherPartial   prometheus.Counter
}

var (
	_ connection.Observer = (*Stats)(nil)
	_ scaling.Observer    = (*Stats)(nil)
)

// publishBuckets spans a loopback hand-off (microseconds) to a slow Redis
// round trip (the one-second I/O budget).
var publishBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// New returns a Stats whose registry holds every Fizz counter and the Go
// runtime and process collectors. The gauges that are read at scrape time
// are added with Register (see Gauges).
func New() *Stats {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	}
	s := &Stats{
		registry:    prometheus.NewRegistry(),
		connects:    counterVec("connects_total", "WebSocket connections admitted.", "app"),
		disconnects: counterVec("disconnects_total", "WebSocket connections ended, by close code (1006: the peer vanished).", "app", "code"),
		messagesIn:  counter("messages_received_total", "Data frames received from clients."),
		bytesIn:     counter("bytes_received_total", "Payload bytes of the data frames received from clients."),
		messagesOut: counter("messages_sent_total", "Frames written to clients (data and control), counted per write batch."),
		bytesOut:    counter("bytes_sent_total", "Bytes written to clients, WebSocket framing included."),
		slowConsumers: counterVec("slow_consumer_closes_total",
			"Sockets closed as slow consumers: frames unwritten past the grace period, queued bytes over the cap, or a write without progress.", "app"),
		rateLimitedIn: counterVec("messages_rate_limited_total",
			"Client messages refused (4301) by the app's rate_limiting (Reverb's per-socket message limit).", "app"),
		refused: counterVec("refused_total",
			"Connections and requests refused or cut by a node limit: header_timeout (request line, headers or body too slow), max_sockets, http_version.",
			"reason"),
		rateLimited: counterVec("client_events_rate_limited_total", "Client events refused (4301) for exceeding the per-socket rate.", "app"),
		apiRequests: counterVec("http_api_requests_total", "HTTP API (/apps) requests, by route pattern, method and status.", "route", "method", "status"),
		events:      counterVec("events_triggered_total", "Events handed to the dispatcher, by source (api, client, internal).", "app", "source"),
		transitions: counterVec("channel_transitions_total",
			"Cluster-wide channel transitions decided by this node: channel_occupied, channel_vacated, member_added, member_removed, subscription_count.",
			"app", "kind"),
		webhooksSent: counterVec("webhooks_sent_total",
			"Webhook events POSTed by this node, by event name and the answer: the HTTP status, or timeout / error.",
			"app", "event", "status"),
		webhookRetries: counterVec("webhook_retries_total", "Webhook POSTs sent again after a failure.", "app"),
		webhooksDropped: counterVec("webhooks_dropped_total",
			"Webhook events given up: retry_window (still failing when FIZZ_WEBHOOK_RETRY_FOR ran out) or outbox_full.",
			"app", "reason"),
		webhookQueue: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "webhook_queue",
			Help: "Webhook events this node holds to send (on the node that sends the cluster's webhooks)."}),
		webhookLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "webhook_latency_seconds",
			Help:      "Time from the event (a transition, a client event) to its webhook's 2xx answer, leave delay included.",
			Buckets:   []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),

		publishes:       counter("pubsub_publishes_total", "Envelopes published to the cluster (Publish calls)."),
		publishFailures: counter("pubsub_publish_failures_total", "Publish calls that failed, including those delivered to this node only while Redis was down."),
		receives:        counter("pubsub_receives_total", "Envelopes received from the pub/sub provider, replies included."),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "pubsub_publish_seconds",
			Help:      "Round-trip time of successful Publish calls (a Redis PUBLISH, or the loopback hand-off).",
			Buckets:   publishBuckets,
		}),
		gatherPartial: counter("gather_partial_total", "Cluster queries answered partially: a node did not answer in time, or Redis was down."),
	}
	s.registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.connects, s.disconnects,
		s.messagesIn, s.bytesIn, s.messagesOut, s.bytesOut,
		s.slowConsumers, s.refused, s.rateLimitedIn, s.rateLimited, s.apiRequests, s.events, s.transitions,
		s.publishes, s.publishFailures, s.publishSeconds, s.receives,
		s.gatherPartial,
		s.webhooksSent, s.webhookRetries, s.webhooksDropped, s.webhookQueue, s.webhookLatency,
	)
	return s
}

// Register adds a collector, such as Gauges, to the registry.
func (s *Stats) Register(c prometheus.Collector) error { return s.registry.Register(c) }

// Gatherer returns the registry, for tests and custom exposition.
func (s *Stats) Gatherer() prometheus.Gatherer { return s.registry }

// Handler serves the registry in the Prometheus exposition formats.
func (s *Stats) Handler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Connected counts a socket admitted for appID.
func (s *Stats) Connected(appID string) {
	if s == nil {
		return
	}
	s.connects.WithLabelValues(appID).Inc()
}

// Disconnected counts an admitted socket of appID that has ended with close
// code (0 when none was exchanged: counted as 1006, the peer vanished).
func (s *Stats) Disconnected(appID string, code int) {
	if s == nil {
		return
	}
	s.disconnects.WithLabelValues(appID, codeLabel(code)).Inc()
}

// MessageReceived counts one data frame of size bytes read from a client.
func (s *Stats) MessageReceived(bytes int) {
	if s == nil {
		return
	}
	s.messagesIn.Inc()
	s.bytesIn.Add(float64(bytes))
}

// MessagesSent counts one write of frames frames, bytes long, to a socket.
// It implements connection.Observer.
func (s *Stats) MessagesSent(frames, bytes int) {
	if s == nil {
		return
	}
	s.messagesOut.Add(float64(frames))
	s.bytesOut.Add(float64(bytes))
}

// MessageRateLimited counts a client message of appID refused by the
// app's rate_limiting.
func (s *Stats) MessageRateLimited(appID string) {
	if s == nil {
		return
	}
	s.rateLimitedIn.WithLabelValues(appID).Inc()
}

// Refused counts a connection or request refused or cut by a node limit.
// It implements server.Observer.
func (s *Stats) Refused(reason string) {
	if s == nil {
		return
	}
	s.refused.WithLabelValues(reason).Inc()
}

// SlowConsumer counts a socket of appID closed as a slow consumer. It
// implements connection.Observer.
func (s *Stats) SlowConsumer(appID string) {
	if s == nil {
		return
	}
	s.slowConsumers.WithLabelValues(appID).Inc()
}

// RateLimited counts a client event of appID refused for its rate.
func (s *Stats) RateLimited(appID string) {
	if s == nil {
		return
	}
	s.rateLimited.WithLabelValues(appID).Inc()
}

// APIRequest counts one HTTP API request. route must be a route pattern
// ("/apps/:appId/events"), never a raw path, so the label set stays small.
func (s *Stats) APIRequest(route, method string, status int) {
	if s == nil {
		return
	}
	s.apiRequests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
}

// EventTriggered counts one event handed to the dispatcher for appID; name
// and client tell its source.
func (s *Stats) EventTriggered(appID, name string, client bool) {
	if s == nil {
		return
	}
	source := SourceAPI
	switch {
	case client:
		source = SourceClient
	case strings.HasPrefix(name, internalPrefix):
		source = SourceInternal
	}
	s.events.WithLabelValues(appID, source).Inc()
}

// Transition counts one cluster-wide transition of a channel of appID
// that this node decided; kind is the transition's (a webhook event name).
func (s *Stats) Transition(appID, kind string) {
	if s == nil {
		return
	}
	s.transitions.WithLabelValues(appID, kind).Inc()
}

// WebhookSent counts one webhook event of appID POSTed, with the answer:
// the HTTP status, "timeout" or "error".
func (s *Stats) WebhookSent(appID, event, status string) {
	if s == nil {
		return
	}
	s.webhooksSent.WithLabelValues(appID, event, status).Inc()
}

// WebhookRetried counts one POST of appID sent again after a failure.
func (s *Stats) WebhookRetried(appID string) {
	if s == nil {
		return
	}
	s.webhookRetries.WithLabelValues(appID).Inc()
}

// WebhookDropped counts n webhook events of appID given up for reason.
func (s *Stats) WebhookDropped(appID, reason string, n int) {
	if s == nil {
		return
	}
	s.webhooksDropped.WithLabelValues(appID, reason).Add(float64(n))
}

// WebhookQueue sets how many webhook events this node holds to send.
func (s *Stats) WebhookQueue(n int) {
	if s == nil {
		return
	}
	s.webhookQueue.Set(float64(n))
}

// WebhookDelivered records the time from an event to its webhook's 2xx.
func (s *Stats) WebhookDelivered(took time.Duration) {
	if s == nil {
		return
	}
	s.webhookLatency.Observe(took.Seconds())
}

// EnvelopePublished counts one Publish call that took took and ended with
// err. It implements scaling.Observer.
func (s *Stats) EnvelopePublished(took time.Duration, err error) {
	if s == nil {
		return
	}
	s.publishes.Inc()
	if err != nil {
		s.publishFailures.Inc()
		return
	}
	s.publishSeconds.Observe(took.Seconds())
}

// EnvelopeReceived counts one envelope delivered by the pub/sub provider.
// It implements scaling.Observer.
func (s *Stats) EnvelopeReceived() {
	if s == nil {
		return
	}
	s.receives.Inc()
}

// GatherPartial counts a cluster query whose answer was partial.
func (s *Stats) GatherPartial() {
	if s == nil {
		return
	}
	s.gatherPartial.Inc()
}

// codeLabels are the close codes that get a label of their own: the
// standard ones and Pusher's. A client picks the code of its close frame,
// so any other code is "other", which keeps the label set bounded.
var codeLabels = func() map[int]string {
	m := make(map[int]string)
	for _, c := range []int{
		1000, 1001, 1002, 1003, 1006, 1007, 1008, 1009, 1010, 1011,
		4000, 4001, 4003, 4004, 4005, 4006, 4007, 4008, 4009,
		4100, 4200, 4201, 4202, 4301,
	} {
		m[c] = strconv.Itoa(c)
	}
	return m
}()

// codeLabel returns the disconnect label of a close code.
func codeLabel(code int) string {
	if code == 0 {
		code = 1006 // no close frame either way: the connection dropped
	}
	if l, ok := codeLabels[code]; ok {
		return l
	}
	return "other"
}

// EventsByApp returns the events handed to the dispatcher on this node
// since it started, summed over their sources, by app. It reads the
// counters without creating a series (the console samples it each second).
func (s *Stats) EventsByApp() map[string]float64 {
	out := make(map[string]float64)
	if s == nil {
		return out
	}
	ch := make(chan prometheus.Metric, 16)
	go func() {
		s.events.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) != nil {
			continue
		}
		for _, l := range d.GetLabel() {
			if l.GetName() == "app" {
				out[l.GetValue()] += d.GetCounter().GetValue()
			}
		}
	}
	return out
}
