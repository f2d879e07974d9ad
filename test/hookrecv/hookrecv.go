// Package hookrecv is the webhook endpoint of the end-to-end tests: an
// HTTP server that checks each POST as a Pusher SDK does (pusher-http-go,
// with the test app's key and secret), answers as the test says (200 by
// default, or a status after a delay) and keeps every POST and every event
// in the order they came.
//
// A Receiver is safe for concurrent use. Its checks of a POST report
// through t.Errorf, from the server's goroutine; Wait and WaitFor fail the
// test with t.FailNow, so only the test's goroutine may call them.
package hookrecv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
)

// IDHeader names the outbox ids of a POST's events, comma-separated.
const IDHeader = "X-Fizz-Webhook-Id"

// pollEvery paces WaitFor's polling of the receiver.
const pollEvery = 5 * time.Millisecond

// Event is one webhook event as a receiver got it: pusher-http-go's parse,
// the fields it leaves out, and where it came from.
type Event struct {
	pusherhttp.WebhookEvent
	// SubscriptionCount is subscription_count's field (nil: absent).
	SubscriptionCount *int
	// Raw is the event object's fields as sent.
	Raw map[string]json.RawMessage
	// ID is the event's outbox id, its part of X-Fizz-Webhook-Id.
	ID string
	// Post is the number of the POST it came in; At is when that came.
	Post int
	At   time.Time
	// Status is what the receiver answered that POST (0: not yet, or
	// never because the sender had gone).
	Status int
}

// String names the event as name:channel[:user_id][:event][=count].
func (e Event) String() string {
	s := e.Name + ":" + e.Channel
	if e.UserID != "" {
		s += ":" + e.UserID
	}
	if e.Event != "" {
		s += ":" + e.Event
	}
	if e.SubscriptionCount != nil {
		s += fmt.Sprintf("=%d", *e.SubscriptionCount)
	}
	return s
}

// Post is one POST a receiver got, whatever it answered.
type Post struct {
	// N numbers the POSTs from 0 in the order they came.
	N      int
	At     time.Time
	Header http.Header
	Body   []byte
	// IDs is X-Fizz-Webhook-Id, split at the commas.
	IDs []string
	// Events are the events of the body, in order (nil when the POST
	// failed the checks).
	Events []Event
	// Status is what the receiver answered (0: not yet, or never because
	// the sender had gone by then, for example after its timeout).
	Status int
}

// snapshot copies p with its status on each event. Caller holds the
// receiver's lock.
func (p *Post) snapshot() Post {
	out := *p
	out.Events = slices.Clone(p.Events)
	for i := range out.Events {
		out.Events[i].Status = p.Status
	}
	return out
}

// Answer picks the status of a POST and how long to wait before
// answering it.
type Answer func(p *Post) (status int, delay time.Duration)

// Receiver is one webhook endpoint.
type Receiver struct {
	t      testing.TB
	srv    *httptest.Server
	pusher *pusherhttp.Client

	mu       sync.Mutex
	posts    []*Post
	accepted []Event
	answer   Answer
	held     int // POSTs waiting to be answered

	release   chan struct{} // closed by ReleaseAll
	closeOnce sync.Once
}

// New starts a receiver that answers every POST with 200 at once (see
// SetAnswer and Fail). A POST that fails the checks (its body, its
// signature, its X-Fizz-Webhook-Id) fails the test through t.Errorf and
// is answered 401. The receiver stops when t ends, after releasing the
// POSTs that an answer holds.
func New(t testing.TB) *Receiver {
	r := &Receiver{t: t, release: make(chan struct{}),
		pusher: &pusherhttp.Client{AppID: harness.AppID, Key: harness.AppKey, Secret: harness.AppSecret}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	t.Cleanup(r.ReleaseAll) // runs first: a held POST would keep Close waiting
	return r
}

// URL is where the webhooks go.
func (r *Receiver) URL() string { return r.srv.URL }

// check reads a POST's body as a Pusher SDK does and returns its events.
// It reports what is wrong through t.Errorf and returns false then.
func (r *Receiver) check(p *Post) ([]Event, bool) {
	var raw struct {
		TimeMs *int64                       `json:"time_ms"`
		Events []map[string]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(p.Body, &raw); err != nil || raw.TimeMs == nil {
		r.t.Errorf("a webhook body is not {\"time_ms\", \"events\"}: %v (%s)", err, p.Body)
	}
	hook, err := r.pusher.Webhook(p.Header, p.Body)
	if err != nil {
		r.t.Errorf("a webhook failed pusher-http-go's validation: %v (%s)", err, p.Body)
		return nil, false
	}
	if len(p.IDs) == 0 || len(p.IDs) != len(hook.Events) {
		r.t.Errorf("%s %q does not name the %d events of %s", IDHeader, p.Header.Get(IDHeader), len(hook.Events), p.Body)
	}
	events := make([]Event, len(hook.Events))
	for i, e := range hook.Events {
		ev := Event{WebhookEvent: e, At: p.At}
		if i < len(raw.Events) {
			ev.Raw = raw.Events[i]
			if c, ok := ev.Raw["subscription_count"]; ok {
				var n int
				if err := json.Unmarshal(c, &n); err != nil {
					r.t.Errorf("subscription_count is not a number: %s", c)
				}
				ev.SubscriptionCount = &n
			}
		}
		if i < len(p.IDs) {
			ev.ID = p.IDs[i]
		}
		events[i] = ev
	}
	return events, true
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	p := &Post{At: time.Now(), Header: req.Header.Clone(), Body: body}
	if id := req.Header.Get(IDHeader); id != "" {
		p.IDs = strings.Split(id, ",")
	}
	events, ok := r.check(p)
	r.mu.Lock()
	p.N = len(r.posts)
	for i := range events {
		events[i].Post = p.N
	}
	p.Events = events
	r.posts = append(r.posts, p)
	answer := r.answer
	r.mu.Unlock()

	status, delay := http.StatusOK, time.Duration(0)
	switch {
	case !ok:
		status = http.StatusUnauthorized
	case answer != nil:
		status, delay = answer(p)
	}
	if delay > 0 && !r.hold(req, delay) {
		return // the sender gave up on this POST: nothing was delivered
	}
	r.mu.Lock()
	p.Status = status
	if status == http.StatusOK {
		for _, e := range p.Events {
			e.Status = status
			r.accepted = append(r.accepted, e)
		}
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

// hold waits delay, or until ReleaseAll, before a POST is answered; false
// when the sender gave up meanwhile.
func (r *Receiver) hold(req *http.Request, delay time.Duration) bool {
	r.mu.Lock()
	r.held++
	r.mu.Unlock()
	timer := time.NewTimer(delay)
	select {
	case <-timer.C:
	case <-r.release:
	case <-req.Context().Done():
	}
	timer.Stop()
	r.mu.Lock()
	r.held--
	r.mu.Unlock()
	return req.Context().Err() == nil
}

// SetAnswer makes f pick the answer to each POST from now on (nil: 200 at
// once). f runs on the server's goroutines and must not call r.
func (r *Receiver) SetAnswer(f Answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = f
}

// Fail makes the receiver answer every POST with 500 (true) or 200 at
// once (false) from now on.
func (r *Receiver) Fail(failing bool) {
	if !failing {
		r.SetAnswer(nil)
		return
	}
	r.SetAnswer(func(*Post) (int, time.Duration) { return http.StatusInternalServerError, 0 })
}

// ReleaseAll answers every POST held by an answer's delay now, and those
// that come later at once.
func (r *Receiver) ReleaseAll() { r.closeOnce.Do(func() { close(r.release) }) }

// Accepted returns the events of the POSTs answered 200, in the order
// they were answered.
func (r *Receiver) Accepted() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.accepted)
}

// All returns the events of every POST so far, answered or not, in the
// order the POSTs came; each carries its POST's Status.
func (r *Receiver) All() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, p := range r.posts {
		out = append(out, p.snapshot().Events...)
	}
	return out
}

// Posts returns a copy of every POST so far.
func (r *Receiver) Posts() []Post {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Post, len(r.posts))
	for i, p := range r.posts {
		out[i] = p.snapshot()
	}
	return out
}

// Waiting returns how many POSTs wait for their answer.
func (r *Receiver) Waiting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.held
}

// Wait waits until n events were accepted and returns the accepted
// events. It fails the test after harness.Wait.
func (r *Receiver) Wait(n int) []Event {
	r.t.Helper()
	return r.WaitFor(fmt.Sprintf("%d webhook events", n), func(evs []Event) bool { return len(evs) >= n })
}

// WaitFor waits until cond holds of the accepted events and returns them.
// It fails the test after harness.Wait, naming what and the events.
func (r *Receiver) WaitFor(what string, cond func([]Event) bool) []Event {
	r.t.Helper()
	deadline := time.Now().Add(harness.Wait)
	for {
		evs := r.Accepted()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			require.FailNow(r.t, "timed out waiting for webhooks: "+what, "got %v", evs)
		}
		time.Sleep(pollEvery) // polling the receiver against the deadline
	}
}
