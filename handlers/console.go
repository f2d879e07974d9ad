package handlers

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/modules/metrics"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/stats"
)

// page is the console's one page: HTML, CSS and script, no build step.
//
//go:embed console/index.html
var page embed.FS

// Bounds of the console's HTTP side.
const (
	// consoleChannels bounds the channels one stats answer lists.
	consoleChannels = 200
	// consoleWrite bounds one write to a feed's viewer: one that cannot
	// take it is cut (its events were being dropped meanwhile).
	consoleWrite = 10 * time.Second
	// consoleHeartbeat is how often an idle feed writes a comment line, so
	// that a vanished viewer is noticed.
	consoleHeartbeat = 15 * time.Second
	// consoleBody bounds the event creator's request body.
	consoleBody = 64 << 10
)

// Console serves the debug console on the metrics listener: the page
// (GET /console), the apps (GET /console/apps), the live feed as
// Server-Sent Events (GET /console/feed), the cluster's counts, channels
// and samples (GET /console/stats) and the event creator
// (POST /console/events), which publishes through the HTTP API's own
// validation and path (EventsController).
type Console struct {
	apps    *apps.Provider
	feed    *console.Feed
	metrics *metrics.Handler
	events  *EventsController
	stop    chan struct{} // closed when the listener shuts down: feeds end
}

// NewConsole returns the console's routes.
func NewConsole(p *apps.Provider, f *console.Feed, m *metrics.Handler, e *EventsController) *Console {
	return &Console{apps: p, feed: f, metrics: m, events: e, stop: make(chan struct{})}
}

// Mount serves the console on srv, and ends its feeds when srv stops.
func (c *Console) Mount(srv *stats.Server) {
	srv.Handle("GET /console", http.HandlerFunc(c.page))
	srv.Handle("GET /console/apps", http.HandlerFunc(c.appList))
	srv.Handle("GET /console/feed", http.HandlerFunc(c.stream))
	srv.Handle("GET /console/stats", http.HandlerFunc(c.stats))
	srv.Handle("POST /console/events", http.HandlerFunc(c.trigger))
	srv.OnShutdown(func() { close(c.stop) })
}

func (c *Console) page(w http.ResponseWriter, _ *http.Request) {
	b, _ := page.ReadFile("console/index.html") // embedded: always there
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page loads nothing from elsewhere and is never framed.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	_, _ = w.Write(b)
}

// consoleError answers a request of the console with status and message.
func consoleError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // a viewer gone away: nothing to do
}

// query checks r's query: only the allowed keys, each at most once, and
// app naming a configured app. It answers 400 and returns false otherwise.
func (c *Console) query(w http.ResponseWriter, r *http.Request, allowed ...string) (url.Values, *apps.App, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		consoleError(w, http.StatusBadRequest, "the query string is malformed")
		return nil, nil, false
	}
	for k, v := range q {
		if !slices.Contains(allowed, k) {
			consoleError(w, http.StatusBadRequest, "unknown parameter %q", clip(k))
			return nil, nil, false
		}
		if len(v) > 1 {
			consoleError(w, http.StatusBadRequest, "parameter %q is repeated", k)
			return nil, nil, false
		}
	}
	app, err := c.apps.FindByID(q.Get("app"))
	if err != nil {
		consoleError(w, http.StatusBadRequest, "app: no app has id %q", clip(q.Get("app")))
		return nil, nil, false
	}
	return q, app, true
}

func (c *Console) appList(w http.ResponseWriter, _ *http.Request) {
	type entry struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	list := []entry{}
	for _, a := range c.apps.All() {
		list = append(list, entry{ID: a.ID, Key: a.Key})
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": list})
}

// stream serves the feed of one app as Server-Sent Events, each event one
// JSON object (console.Event) in a data line.
func (c *Console) stream(w http.ResponseWriter, r *http.Request) {
	q, app, ok := c.query(w, r, "app", "channel", "event")
	if !ok {
		return
	}
	filter := console.Filter{App: app.ID, Channel: q.Get("channel"), Event: q.Get("event")}
	if filter.Channel != "" && !pusher.ValidChannelName(filter.Channel) {
		consoleError(w, http.StatusBadRequest, "channel: invalid channel name %q", clip(filter.Channel))
		return
	}
	if len(filter.Event) > pusher.MaxEventNameLength {
		consoleError(w, http.StatusBadRequest, "event: longer than %d characters", pusher.MaxEventNameLength)
		return
	}
	v, err := c.feed.Watch(filter)
	if err != nil {
		consoleError(w, http.StatusServiceUnavailable, "%v", err)
		return
	}
	defer v.Close()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(lines []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(consoleWrite)) // not every writer has deadlines
		if _, err := w.Write(lines); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send([]byte("retry: 2000\n: watching\n\n")) {
		return
	}
	heartbeat := time.NewTicker(consoleHeartbeat)
	defer heartbeat.Stop()
	var buf []byte
	for {
		select {
		case <-r.Context().Done():
			return
		case <-c.stop:
			return
		case <-v.Done():
			return
		case <-heartbeat.C:
			if !send([]byte(": ping\n\n")) {
				return
			}
		case e := <-v.Events():
			buf = appendSSE(buf[:0], e)
			for more := true; more && len(buf) < 64<<10; {
				select {
				case e := <-v.Events():
					buf = appendSSE(buf, e)
				default:
					more = false
				}
			}
			if n := v.Dropped(); n > 0 {
				buf = appendSSE(buf, console.Event{T: time.Now().UnixMilli(), Type: console.TypeDropped, Count: n})
			}
			if !send(buf) {
				return
			}
		}
	}
}

// appendSSE appends e as one Server-Sent Event.
func appendSSE(buf []byte, e console.Event) []byte {
	b, _ := json.Marshal(e) // strings and numbers only: never fails
	buf = append(buf, "data: "...)
	buf = append(buf, b...)
	return append(buf, '\n', '\n')
}

// consoleChannel is one occupied channel in a stats answer.
type consoleChannel struct {
	Name          string `json:"name"`
	Subscriptions int    `json:"subscriptions"`
	Users         *int   `json:"users,omitempty"`
}

// stats answers the app's connections, occupied channels (those whose name
// contains q, the busiest first, at most consoleChannels) and the samples
// after second since, for the whole cluster: one metrics query.
func (c *Console) stats(w http.ResponseWriter, r *http.Request) {
	q, app, ok := c.query(w, r, "app", "since", "q")
	if !ok {
		return
	}
	since := int64(0)
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			consoleError(w, http.StatusBadRequest, "since: not a number of seconds since the epoch")
			return
		}
		since = n
	}
	res, err := c.metrics.Gather(r.Context(), app.ID, metrics.Query{Users: true, Samples: true, Since: since})
	if err != nil {
		consoleError(w, http.StatusServiceUnavailable, "the cluster could not be queried: %v", err)
		return
	}
	search := q.Get("q")
	list := []consoleChannel{}
	for name, ch := range res.Channels {
		if ch.Subscriptions == 0 || !strings.Contains(name, search) {
			continue
		}
		cc := consoleChannel{Name: name, Subscriptions: ch.Subscriptions}
		if pusher.KindOf(name).Presence {
			n := len(ch.Users)
			cc.Users = &n
		}
		list = append(list, cc)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Subscriptions != list[j].Subscriptions {
			return list[i].Subscriptions > list[j].Subscriptions
		}
		return list[i].Name < list[j].Name
	})
	matching := len(list)
	if len(list) > consoleChannels {
		list = list[:consoleChannels]
	}
	samples := res.Samples
	if samples == nil {
		samples = []console.Sample{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"connections": res.Connections, "channels": list, "matching": matching,
		"nodes": res.Nodes, "partial": res.Partial, "samples": samples, "now": time.Now().Unix(),
	})
}

// trigger is the event creator: the body is that of POST
// /apps/{app_id}/events, checked and published exactly as the HTTP API
// does (triggerRequest.validate, EventsController.publish). The request
// must be JSON from this page: a form of another site cannot send it.
func (c *Console) trigger(w http.ResponseWriter, r *http.Request) {
	_, app, ok := c.query(w, r, "app")
	if !ok {
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		consoleError(w, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != "http://"+r.Host && origin != "https://"+r.Host {
		consoleError(w, http.StatusForbidden, "the request comes from another site (%s)", clip(origin))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, consoleBody))
	if err != nil {
		consoleError(w, http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", consoleBody)
		return
	}
	var req triggerRequest
	err = decodeJSON(body, &req)
	var ev dispatcher.Event
	var except string
	if err == nil {
		ev, except, err = req.validate()
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
		defer cancel()
		err = c.events.publish(ctx, app.ID, ev, except)
	}
	var fe *fiber.Error
	switch {
	case errors.As(err, &fe):
		consoleError(w, fe.Code, "%s", fe.Message)
	case err != nil:
		consoleError(w, http.StatusInternalServerError, "%v", err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"channels": ev.Channels, "name": ev.Name})
	}
}
