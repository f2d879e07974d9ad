package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/console"
)

// Feed reads a node's console feed (GET /console/feed) on a goroutine of
// its own, from Watch until the test ends, and keeps every event.
type Feed struct {
	mu      sync.Mutex
	events  []console.Event
	changed chan struct{} // closed and replaced on every event
	done    chan struct{} // closed when the reader stops
}

// Watch opens the console feed of app at base (a node's MetricsURL),
// with the extra query parameters of query (may be nil), and returns once
// the node has taken the viewer.
func Watch(t testing.TB, base, app string, query url.Values) *Feed {
	t.Helper()
	q := url.Values{"app": {app}}
	for k, v := range query {
		q[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/console/feed?"+q.Encode(), nil)
	require.NoError(t, err)
	res, err := (&http.Client{}).Do(req)
	if err != nil {
		cancel()
		require.NoError(t, err, "open the console feed")
	}
	f := &Feed{changed: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	require.Equal(t, http.StatusOK, res.StatusCode, "the console feed's status")
	require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	go func() {
		defer close(f.done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var e console.Event
			if json.Unmarshal([]byte(data), &e) != nil {
				continue
			}
			f.mu.Lock()
			f.events = append(f.events, e)
			close(f.changed)
			f.changed = make(chan struct{})
			f.mu.Unlock()
		}
	}()
	return f
}

// Events returns the events read so far.
func (f *Feed) Events() []console.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]console.Event(nil), f.events...)
}

// WaitFor waits at most Wait for an event that match accepts and returns
// it; it fails the test, listing what came, when none does.
func (f *Feed) WaitFor(t testing.TB, what string, match func(console.Event) bool) console.Event {
	t.Helper()
	deadline := time.NewTimer(Wait)
	defer deadline.Stop()
	for seen := 0; ; {
		f.mu.Lock()
		events, changed := f.events, f.changed
		f.mu.Unlock()
		for ; seen < len(events); seen++ {
			if match(events[seen]) {
				return events[seen]
			}
		}
		select {
		case <-changed:
		case <-f.done:
			t.Fatalf("the console feed ended before %s; it had %+v", what, f.Events())
		case <-deadline.C:
			t.Fatalf("no %s on the console feed within %s; it had %+v", what, Wait, f.Events())
		}
	}
}
