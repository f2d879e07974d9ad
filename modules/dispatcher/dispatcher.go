package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

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
	stats    *stats.Stats // set by the Module; nil counts nothing
	log      *slog.Logger
	debug    bool

	// announceMu orders Announce calls; unannounced holds the presence
	// changes not yet published to the cluster, oldest first.
	announceMu  sync.Mutex
	unannounced []scaling.PresenceChange
}

// New returns a Dispatcher. It starts nothing and performs no I/O.
func New(pubsub scaling.PubSubProvider, manager *channels.Manager, log *slog.Logger) *Dispatcher {
	return &Dispatcher{pubsub: pubsub, channels: manager, log: log, debug: log.Enabled(context.Background(), slog.LevelDebug)}
}

// Dispatch publishes ev for appID to every node. The socket exceptID, on
// whichever node it lives, does not receive it.
func (d *Dispatcher) Dispatch(ctx context.Context, appID string, ev Event, exceptID string) error {
	return d.publish(ctx, appID, ev, exceptID, 0)
}

// publish is Dispatch for an event numbered seq (0: none) by the shared
// state: the number goes in the envelope.
func (d *Dispatcher) publish(ctx context.Context, appID string, ev Event, exceptID string, seq uint64) error {
	e, err := d.envelope(appID, ev, exceptID, seq)
	if err != nil {
		return err
	}
	d.stats.EventTriggered(appID, ev.Name, ev.Client)
	if _, err := d.pubsub.Publish(ctx, e); err != nil {
		return fmt.Errorf("publish event %q: %w", ev.Name, err)
	}
	return nil
}

// envelope is the envelope that carries ev (see publish).
func (d *Dispatcher) envelope(appID string, ev Event, exceptID string, seq uint64) (scaling.Envelope, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return scaling.Envelope{}, fmt.Errorf("encode event %q: %w", ev.Name, err)
	}
	return scaling.Envelope{
		V:        scaling.Version,
		Kind:     KindEvent,
		AppID:    appID,
		SocketID: exceptID,
		Seq:      seq,
		Payload:  payload,
	}, nil
}

// Kind reports the envelope kind Dispatcher handles.
func (d *Dispatcher) Kind() string { return KindEvent }

// Handle delivers an event envelope to this node's subscribers: the event
// is encoded and framed once per channel and the same bytes are queued to
// every subscriber. Presence member events go with the envelope's Seq
// through BroadcastMember, which keeps them in step with each socket's
// member list.
func (d *Dispatcher) Handle(_ context.Context, e scaling.Envelope) {
	var ev Event
	if err := json.Unmarshal(e.Payload, &ev); err != nil || ev.Name == "" {
		d.log.Warn("dropped malformed event envelope", "app_id", e.AppID, "origin", e.Origin, "err", err)
		return
	}
	member := isMemberEvent(ev.Name)
	for _, channel := range ev.Channels {
		frame := connection.TextFrame(pusher.EncodeEvent(ev.Name, channel, ev.Data, ev.UserID))
		var n int
		if member {
			n = d.channels.BroadcastMember(e.AppID, channel, frame, e.SocketID, e.Seq)
		} else {
			n = d.channels.Broadcast(e.AppID, channel, frame, e.SocketID)
		}
		if d.debug {
			d.log.Debug("broadcast", "app_id", e.AppID, "channel", channel, "event", ev.Name, "sockets", n)
		}
	}
}
