package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

const waitFor = 5 * time.Second

// fakeOutbox is an in-memory outbox this node always leads.
type fakeOutbox struct {
	mu    sync.Mutex
	queue []scaling.OutboxEntry
	done  map[string]bool
	next  int
	ready chan struct{}
}

func newFakeOutbox() *fakeOutbox {
	return &fakeOutbox{done: map[string]bool{}, ready: make(chan struct{}, 1)}
}

// push queues an event that happened at at.
func (o *fakeOutbox) push(at time.Time, event string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.next++
	id := fmt.Sprintf("%d-0", o.next)
	o.queue = append(o.queue, scaling.OutboxEntry{AppID: "app-1", ID: id, At: at, Event: json.RawMessage(event)})
	select {
	case o.ready <- struct{}{}:
	default:
	}
	return id
}

func (o *fakeOutbox) Add(_ context.Context, _ string, events ...json.RawMessage) error {
	for _, e := range events {
		o.push(time.Now(), string(e))
	}
	return nil
}

func (o *fakeOutbox) Lead(context.Context) (bool, error) { return true, nil }

func (o *fakeOutbox) Resign(context.Context) error { return nil }

func (o *fakeOutbox) Read(ctx context.Context, max int) ([]scaling.OutboxEntry, error) {
	select {
	case <-o.ready:
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(max, len(o.queue))
	out := append([]scaling.OutboxEntry(nil), o.queue[:n]...)
	o.queue = o.queue[n:]
	if len(o.queue) > 0 {
		select {
		case o.ready <- struct{}{}:
		default:
		}
	}
	return out, nil
}

func (o *fakeOutbox) Done(_ context.Context, entries ...scaling.OutboxEntry) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range entries {
		o.done[e.ID] = true
	}
	return nil
}

func (o *fakeOutbox) Dropped() int64 { return 0 }

// finished reports whether every id is done.
func (o *fakeOutbox) finished(ids ...string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		if !o.done[id] {
			return false
		}
	}
	return true
}

// hookReceiver records the events of each POST; answer picks a status.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	posts  [][]string // "name channel [user] [count]" per event, per POST
	ids    []string
	at     []time.Time
	answer func(events []string) int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var hook struct {
			TimeMS int64 `json:"time_ms"`
			Events []struct {
				Name    string `json:"name"`
				Channel string `json:"channel"`
				UserID  string `json:"user_id"`
				Count   *int   `json:"subscription_count"`
			} `json:"events"`
		}
		if err := json.Unmarshal(body, &hook); err != nil || hook.TimeMS == 0 {
			t.Errorf("a malformed webhook: %s", body)
		}
		if req.Header.Get(pusher.HeaderWebhookSignature) != pusher.WebhookSignature("secret", body) {
			t.Errorf("a webhook with a bad signature")
		}
		var events []string
		for _, e := range hook.Events {
			s := e.Name + " " + e.Channel
			if e.UserID != "" {
				s += " " + e.UserID
			}
			if e.Count != nil {
				s += fmt.Sprintf(" %d", *e.Count)
			}
			events = append(events, s)
		}
		r.mu.Lock()
		answer := r.answer
		r.mu.Unlock()
		status := http.StatusOK
		if answer != nil {
			status = answer(events)
		}
		if status == http.StatusOK {
			r.mu.Lock()
			r.posts = append(r.posts, events)
			r.ids = append(r.ids, req.Header.Get(HeaderWebhookID))
			r.at = append(r.at, time.Now())
			r.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// events returns every event received, in order.
func (r *hookReceiver) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.posts {
		out = append(out, p...)
	}
	return out
}

// waitEvents waits until n events arrived.
func (r *hookReceiver) waitEvents(t *testing.T, n int) []string {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.events()) >= n }, waitFor, time.Millisecond, "events: %q", r.events())
	return r.events()
}

// sending runs a Sender over outbox for one app with webhooks, until the
// test ends.
func sending(t *testing.T, outbox scaling.Outbox, cfg Config, app apps.App) *Sender {
	t.Helper()
	app.ID, app.Key, app.Secret = "app-1", "key-1", "secret"
	s := New(cfg, []*apps.App{&app}, outbox, 300*time.Millisecond, nil, nil, slog.New(slog.DiscardHandler))
	s.countEvery, s.firstBackoff = 100*time.Millisecond, 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func ev(name, channel, user string) string {
	if user == "" {
		return fmt.Sprintf(`{"name":%q,"channel":%q}`, name, channel)
	}
	return fmt.Sprintf(`{"name":%q,"channel":%q,"user_id":%q}`, name, channel, user)
}

// TestLeaveDelay: a leave waits the delay from its transition; one that
// is undone within it is dropped with what undid it, both finished.
func TestLeaveDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	r := newHookReceiver(t)
	o := newFakeOutbox()
	sending(t, o, Config{LeaveDelay: delay}, apps.App{Webhooks: []apps.Webhook{{URL: r.srv.URL}}})
	now := time.Now()
	ids := []string{
		o.push(now, ev("channel_occupied", "flap", "")),
		o.push(now, ev("member_added", "presence-x", "u1")),
		o.push(now, ev("channel_vacated", "flap", "")),
		o.push(now, ev("member_removed", "presence-x", "u1")),
		o.push(now, ev("channel_occupied", "flap", "")),
		o.push(now, ev("member_added", "presence-x", "u1")),
		o.push(now, ev("channel_occupied", "stays", "")),
		o.push(now, ev("channel_vacated", "stays", "")),
	}
	got := r.waitEvents(t, 4)
	require.Eventually(t, func() bool { return o.finished(ids...) }, waitFor, time.Millisecond, "every entry is finished")
	assert.ElementsMatch(t, []string{"channel_occupied flap", "member_added presence-x u1", "channel_occupied stays", "channel_vacated stays"}, got)
	assert.Equal(t, "channel_vacated stays", got[3], "the leave comes last, after its delay")
	r.mu.Lock()
	assert.GreaterOrEqual(t, r.at[3].Sub(now), delay)
	r.mu.Unlock()
}

// TestSubscriptionCountsAreSpaced: a channel's counts go at most once per
// countEvery, and the last one always goes.
func TestSubscriptionCountsAreSpaced(t *testing.T) {
	r := newHookReceiver(t)
	o := newFakeOutbox()
	sending(t, o, Config{}, apps.App{Webhooks: []apps.Webhook{{URL: r.srv.URL}}})
	var ids []string
	for n := 1; n <= 5; n++ {
		ids = append(ids, o.push(time.Now(), fmt.Sprintf(`{"name":"subscription_count","channel":"news","subscription_count":%d}`, n)))
		time.Sleep(time.Millisecond) // counts come one after the other, not in one read
	}
	require.Eventually(t, func() bool { return o.finished(ids...) }, waitFor, time.Millisecond)
	got := r.events()
	require.NotEmpty(t, got)
	assert.Equal(t, "subscription_count news 5", got[len(got)-1], "the last count goes")
	assert.Less(t, len(got), 5, "counts in between are replaced: %q", got)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.at); i++ {
		assert.GreaterOrEqual(t, r.at[i].Sub(r.at[i-1]), 90*time.Millisecond, "spaced")
	}
}

// TestRetryKeepsTheKeyOrder: a failed event is sent again, and the events
// of its key wait for it; other keys do not.
func TestRetryKeepsTheKeyOrder(t *testing.T) {
	r := newHookReceiver(t)
	failed := 0
	r.answer = func(events []string) int {
		if events[0] == "member_added presence-x u1" && failed < 2 {
			failed++
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	o := newFakeOutbox()
	sending(t, o, Config{}, apps.App{Webhooks: []apps.Webhook{{URL: r.srv.URL}}})
	now := time.Now()
	o.push(now, ev("member_added", "presence-x", "u1"))
	o.push(now, ev("member_removed", "presence-x", "u1"))
	o.push(now, ev("member_added", "presence-x", "u2"))
	got := r.waitEvents(t, 3)
	assert.Equal(t, "member_added presence-x u2", got[0], "another key does not wait")
	assert.Equal(t, []string{"member_added presence-x u1", "member_removed presence-x u1"}, got[1:])
	r.mu.Lock()
	defer r.mu.Unlock()
	assert.Equal(t, []string{"3-0", "1-0", "2-0"}, r.ids, "each POST names its entry")
}

// TestGivingUp: an event still failing after RetryFor is given up and its
// key goes on.
func TestGivingUp(t *testing.T) {
	r := newHookReceiver(t)
	r.answer = func(events []string) int {
		if events[0] == "client_event private-x" {
			return http.StatusBadGateway
		}
		return http.StatusOK
	}
	o := newFakeOutbox()
	sending(t, o, Config{RetryFor: 200 * time.Millisecond}, apps.App{Webhooks: []apps.Webhook{{URL: r.srv.URL}}})
	bad := o.push(time.Now(), `{"name":"client_event","channel":"private-x","event":"client-a","data":"1","socket_id":"1.1"}`)
	next := o.push(time.Now(), `{"name":"cache_miss","channel":"private-x"}`)
	require.Eventually(t, func() bool { return o.finished(bad, next) }, waitFor, time.Millisecond)
	assert.Equal(t, []string{"cache_miss private-x"}, r.events())
}

// TestBatching: with batching, events gather for the window and go at
// most maxBatch per POST; without, one per POST.
func TestBatching(t *testing.T) {
	tests := []struct {
		name     string
		batching bool
		events   int
		posts    func(n int) bool
	}{
		{name: "on", batching: true, events: 150, posts: func(n int) bool { return n >= 2 && n < 150 }},
		{name: "off", batching: false, events: 20, posts: func(n int) bool { return n == 20 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newHookReceiver(t)
			o := newFakeOutbox()
			sending(t, o, Config{BatchWindow: 50 * time.Millisecond}, apps.App{WebhookBatching: tt.batching, Webhooks: []apps.Webhook{{URL: r.srv.URL}}})
			for i := range tt.events {
				o.push(time.Now(), ev("channel_occupied", fmt.Sprintf("c%03d", i), ""))
			}
			r.waitEvents(t, tt.events)
			r.mu.Lock()
			defer r.mu.Unlock()
			assert.True(t, tt.posts(len(r.posts)), "%d POSTs", len(r.posts))
			for i, p := range r.posts {
				assert.LessOrEqual(t, len(p), maxBatch)
				assert.Len(t, strings.Split(r.ids[i], ","), len(p), "one id per event")
			}
		})
	}
}

// TestFilters: each webhook gets what its event types and channel filter
// want; an entry is finished once every webhook is done with it.
func TestFilters(t *testing.T) {
	members, private := newHookReceiver(t), newHookReceiver(t)
	o := newFakeOutbox()
	sending(t, o, Config{}, apps.App{Webhooks: []apps.Webhook{
		{URL: members.srv.URL, EventTypes: []string{"member_added", "member_removed"}},
		{URL: private.srv.URL, Filter: apps.WebhookFilter{ChannelNameStartsWith: "private-", ChannelNameEndsWith: "-room"}},
	}})
	now := time.Now()
	ids := []string{
		o.push(now, ev("member_added", "presence-room", "u1")),
		o.push(now, ev("channel_occupied", "private-room", "")),
		o.push(now, ev("channel_occupied", "private-hall", "")),
		o.push(now, ev("channel_occupied", "news", "")),
	}
	require.Eventually(t, func() bool { return o.finished(ids...) }, waitFor, time.Millisecond)
	assert.Equal(t, []string{"member_added presence-room u1"}, members.events())
	assert.Equal(t, []string{"channel_occupied private-room"}, private.events())
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		give int
		want time.Duration
	}{
		{give: 1, want: time.Second},
		{give: 2, want: 2 * time.Second},
		{give: 4, want: 8 * time.Second},
		{give: 7, want: maxBackoff},
		{give: 100, want: maxBackoff},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, backoff(time.Second, tt.give), "attempt %d", tt.give)
	}
}
