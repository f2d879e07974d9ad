package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// KindEvent is the envelope kind of a broadcast event.
const KindEvent = "event"

// Event is one event to broadcast on one or more channels of an app.
type Event struct {
	Channels []string        `json:"channels"`
	Name     string          `json:"event"`
	Data     json.RawMessage `json:"data"`
	// UserID is set on client events on presence channels.
	UserID string `json:"user_id,omitempty"`
	// Client marks a client event.
	Client bool `json:"client,omitempty"`
}

// Dispatcher publishes events and delivers the events of every node.
type Dispatcher struct {
	pubsub   scaling.PubSubProvider
	channels *channels.Manager
	stats    *stats.Stats // nil counts nothing
	log      *slog.Logger
	debug    bool
	// waiting reports whether other envelopes wait behind the one being
	// handled (see channels.Manager.Broadcast).
	waiting func() bool
}

// New returns a Dispatcher that counts events in s (nil: none). It starts
// nothing and performs no I/O.
func New(pubsub scaling.PubSubProvider, manager *channels.Manager, s *stats.Stats, log *slog.Logger) *Dispatcher {
	d := &Dispatcher{pubsub: pubsub, channels: manager, stats: s, log: log, debug: log.Enabled(context.Background(), slog.LevelDebug)}
	d.waiting = func() bool { return pubsub.Waiting() > 0 }
	return d
}

// followed is the waiting of every channel of an event but its last: the
// event's next channel follows at once.
func followed() bool { return true }

// Dispatch publishes ev for appID to every node. The socket exceptID, on
// whichever node it lives, does not receive it. Over a sharded provider
// (a Redis Cluster) an event on channels of several shards goes as one
// envelope per shard, each on the stream that keeps its channels' order.
func (d *Dispatcher) Dispatch(ctx context.Context, appID string, ev Event, exceptID string) error {
	for i, group := range scaling.GroupByShard(d.pubsub, appID, ev.Channels) {
		ev.Channels = group
		payload, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event %q: %w", ev.Name, err)
		}
		if i == 0 {
			d.stats.EventTriggered(appID, ev.Name, ev.Client)
		}
		e := scaling.Envelope{V: scaling.Version, Kind: KindEvent, AppID: appID, SocketID: exceptID, Payload: payload}
		if len(group) > 0 {
			e.Route = group[0]
		}
		if _, err := d.pubsub.Publish(ctx, e); err != nil {
			return fmt.Errorf("publish event %q: %w", ev.Name, err)
		}
	}
	return nil
}

// Kind reports the envelope kind Dispatcher handles.
func (d *Dispatcher) Kind() string { return KindEvent }

// Handle delivers an event envelope to this node's subscribers: the event
// is encoded and framed once per channel and the same bytes are queued to
// every subscriber.
func (d *Dispatcher) Handle(_ context.Context, e scaling.Envelope) {
	var ev Event
	if err := json.Unmarshal(e.Payload, &ev); err != nil || ev.Name == "" {
		d.log.Warn("dropped malformed event envelope", "app_id", e.AppID, "origin", e.Origin, "err", err)
		return
	}
	for i, channel := range ev.Channels {
		frame := connection.TextFrame(pusher.EncodeEvent(ev.Name, channel, ev.Data, ev.UserID))
		more := d.waiting
		if i < len(ev.Channels)-1 {
			more = followed
		}
		n := d.channels.Broadcast(e.AppID, channel, frame, e.SocketID, more)
		if d.debug {
			d.log.Debug("broadcast", "app_id", e.AppID, "channel", channel, "event", ev.Name, "sockets", n)
		}
	}
}
