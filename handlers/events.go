package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"
	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/modules/metrics"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// Limits of the events API, as Pusher documents them.
const (
	maxTriggerChannels = 100
	maxEventData       = 10 << 10
	maxBatchEvents     = 10
)

var socketIDPattern = regexp.MustCompile(`^\d+\.\d+$`)

// EventsController triggers events: POST /apps/{app_id}/events. It mirrors
// Reverb's EventsController.
type EventsController struct {
	dispatcher *dispatcher.Dispatcher
	metrics    *metrics.Handler
	state      scaling.State
	feed       *console.Feed // nil: no console
}

// EventsParams lists what NewEventsController takes.
type EventsParams struct {
	fx.In
	Dispatcher *dispatcher.Dispatcher
	Metrics    *metrics.Handler
	State      scaling.State
	Console    *console.Feed `optional:"true"`
}

// NewEventsController returns the controller.
func NewEventsController(p EventsParams) *EventsController {
	return &EventsController{dispatcher: p.Dispatcher, metrics: p.Metrics, state: p.State, feed: p.Console}
}

// publish remembers ev as the last event of its cache channels, then
// dispatches it to the cluster. A cache that cannot be written does not
// stop the delivery, but the answer says so.
func (e *EventsController) publish(ctx context.Context, appID string, ev dispatcher.Event, except string) error {
	var cacheErr error
	for _, channel := range ev.Channels {
		if !pusher.KindOf(channel).Cache {
			continue
		}
		payload := pusher.EncodeEvent(ev.Name, channel, ev.Data, "")
		if err := e.state.RememberEvent(ctx, appID, channel, payload); err != nil && cacheErr == nil {
			cacheErr = err
		}
	}
	if err := e.dispatcher.Dispatch(ctx, appID, ev, except); err != nil {
		return publishError(err)
	}
	if e.feed.Watching() {
		data := console.Clip(string(ev.Data))
		for _, channel := range ev.Channels {
			e.feed.Emit(console.Event{App: appID, Type: console.TypeAPIEvent, Channel: channel, Event: ev.Name, Socket: except, Data: data})
		}
	}
	if cacheErr != nil {
		return apiError(fiber.StatusServiceUnavailable, "the event was delivered but not kept as the cache channel's last event: %v", cacheErr)
	}
	return nil
}

// triggerRequest is the body of POST events (and one batch item).
type triggerRequest struct {
	Name     *string         `json:"name"`
	Data     json.RawMessage `json:"data"`
	Channels []string        `json:"channels"`
	Channel  *string         `json:"channel"`
	SocketID *string         `json:"socket_id"`
	Info     *string         `json:"info"`
}

// apiError is a client error of the HTTP API with its status.
func apiError(status int, format string, args ...any) error {
	return fiber.NewError(status, fmt.Sprintf(format, args...))
}

// validate checks one trigger and returns the event to dispatch and the
// socket to exclude.
func (r *triggerRequest) validate() (dispatcher.Event, string, error) {
	var ev dispatcher.Event
	if r.Name == nil || *r.Name == "" {
		return ev, "", apiError(fiber.StatusUnprocessableEntity, "name is required")
	}
	if len(*r.Name) > pusher.MaxEventNameLength {
		return ev, "", apiError(fiber.StatusUnprocessableEntity, "name is longer than %d characters", pusher.MaxEventNameLength)
	}
	if r.Data == nil || string(r.Data) == "null" {
		return ev, "", apiError(fiber.StatusUnprocessableEntity, "data is required")
	}
	var data string
	if err := json.Unmarshal(r.Data, &data); err != nil {
		return ev, "", apiError(fiber.StatusUnprocessableEntity, "data must be a string")
	}
	if len(data) > maxEventData {
		return ev, "", apiError(fiber.StatusRequestEntityTooLarge, "data is larger than %d bytes", maxEventData)
	}
	channels := r.Channels
	if r.Channel != nil {
		channels = append(channels, *r.Channel)
	}
	if len(channels) == 0 {
		return ev, "", apiError(fiber.StatusUnprocessableEntity, "channels is required")
	}
	if len(channels) > maxTriggerChannels {
		return ev, "", apiError(fiber.StatusUnprocessableEntity, "channels has more than %d entries", maxTriggerChannels)
	}
	seen := make(map[string]struct{}, len(channels))
	unique := make([]string, 0, len(channels))
	for _, ch := range channels {
		if !pusher.ValidChannelName(ch) {
			return ev, "", apiError(fiber.StatusUnprocessableEntity, "channels: invalid channel name %q", clip(ch))
		}
		// A channel named twice gets the event once.
		if _, dup := seen[ch]; !dup {
			seen[ch] = struct{}{}
			unique = append(unique, ch)
		}
	}
	channels = unique
	except := ""
	if r.SocketID != nil && *r.SocketID != "" {
		if !socketIDPattern.MatchString(*r.SocketID) {
			return ev, "", apiError(fiber.StatusUnprocessableEntity, "socket_id is not a valid socket id")
		}
		except = *r.SocketID
	}
	ev = dispatcher.Event{Channels: channels, Name: *r.Name, Data: pusher.StringData([]byte(data))}
	return ev, except, nil
}

// decodeBody decodes a JSON object body into v, naming what is wrong.
func decodeBody(c *fiber.Ctx, v any) error {
	if enc := c.Get(fiber.HeaderContentEncoding); enc != "" && !strings.EqualFold(enc, "identity") {
		return apiError(fiber.StatusUnsupportedMediaType, "Content-Encoding %q is not supported", clip(enc))
	}
	// The raw body: Ctx.Body() would inflate it without limit.
	return decodeJSON(c.Request().Body(), v)
}

// decodeJSON decodes body, a JSON object, into v, naming what is wrong.
func decodeJSON(body []byte, v any) error {
	if len(body) == 0 {
		return apiError(fiber.StatusBadRequest, "the body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		if te, ok := err.(*json.UnmarshalTypeError); ok {
			if te.Field == "" {
				return apiError(fiber.StatusBadRequest, "the body must be a JSON object")
			}
			return apiError(fiber.StatusUnprocessableEntity, "%s has the wrong type", te.Field)
		}
		return apiError(fiber.StatusBadRequest, "the body is not valid JSON")
	}
	return nil
}

// Trigger handles POST /apps/{app_id}/events. With info it answers the
// requested attributes of each channel, as Pusher does.
func (e *EventsController) Trigger(c *fiber.Ctx) error {
	app := c.Locals(localApp).(*apps.App)
	var req triggerRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	ev, except, err := req.validate()
	if err != nil {
		return err
	}
	if err := e.publish(c.UserContext(), app.ID, ev, except); err != nil {
		return err
	}
	info := parseInfo(req.infoString())
	if !info.any() {
		return c.JSON(fiber.Map{})
	}
	attrs, err := e.attributes(c, app.ID, [][]string{ev.Channels}, []infoSet{info})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"channels": attrs[0]})
}

// batchRequest is the body of POST batch_events.
type batchRequest struct {
	Batch []triggerRequest `json:"batch"`
}

// Batch handles POST /apps/{app_id}/batch_events: every item is checked
// before any is published.
func (e *EventsController) Batch(c *fiber.Ctx) error {
	app := c.Locals(localApp).(*apps.App)
	var req batchRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if req.Batch == nil {
		return apiError(fiber.StatusUnprocessableEntity, "batch is required")
	}
	if len(req.Batch) > maxBatchEvents {
		return apiError(fiber.StatusUnprocessableEntity, "batch has more than %d events", maxBatchEvents)
	}
	events := make([]dispatcher.Event, len(req.Batch))
	excepts := make([]string, len(req.Batch))
	infos := make([]infoSet, len(req.Batch))
	names := make([][]string, len(req.Batch))
	wantInfo := false
	for i := range req.Batch {
		ev, except, err := req.Batch[i].validate()
		if err != nil {
			var fe *fiber.Error
			if errors.As(err, &fe) {
				return apiError(fe.Code, "batch[%d].%s", i, fe.Message)
			}
			return err
		}
		events[i], excepts[i], names[i] = ev, except, ev.Channels
		infos[i] = parseInfo(req.Batch[i].infoString())
		wantInfo = wantInfo || infos[i].any()
	}
	for i, ev := range events {
		if err := e.publish(c.UserContext(), app.ID, ev, excepts[i]); err != nil {
			return err
		}
	}
	if !wantInfo {
		return c.JSON(fiber.Map{})
	}
	attrs, err := e.attributes(c, app.ID, names, infos)
	if err != nil {
		return err
	}
	batch := make([]map[string]any, len(attrs))
	for i, a := range attrs {
		// A batch item names one channel; Pusher answers its attributes.
		// An item naming several gets those of its first, not a random one.
		batch[i] = map[string]any{}
		if v, ok := a[names[i][0]]; ok {
			batch[i] = v
		}
	}
	return c.JSON(fiber.Map{"batch": batch})
}

// attributes gathers, in one cluster query, the info attributes of each
// group of channels.
func (e *EventsController) attributes(c *fiber.Ctx, appID string, names [][]string, infos []infoSet) ([]map[string]map[string]any, error) {
	var all []string
	users := false
	for i, group := range names {
		if infos[i].any() {
			all = append(all, group...)
			users = users || infos[i].userCount
		}
	}
	res, err := e.metrics.Gather(c.UserContext(), appID, metrics.Query{Names: all, Users: users})
	if err != nil {
		return nil, gatherError(err)
	}
	out := make([]map[string]map[string]any, len(names))
	for i, group := range names {
		out[i] = make(map[string]map[string]any, len(group))
		if !infos[i].any() {
			continue
		}
		for _, name := range group {
			out[i][name] = infos[i].attributes(name, res.Channels[name])
		}
	}
	return out, nil
}

// publishError answers an event that did not reach the cluster: 503, and
// says when this node's own subscribers did receive it.
func publishError(err error) error {
	if errors.Is(err, scaling.ErrLocalOnly) {
		return apiError(fiber.StatusServiceUnavailable, "the Redis link is down: the event reached this node's subscribers only")
	}
	return apiError(fiber.StatusServiceUnavailable, "the event could not be published: %v", err)
}

// infoString returns the info field, "" when absent.
func (r *triggerRequest) infoString() string {
	if r.Info == nil {
		return ""
	}
	return *r.Info
}
