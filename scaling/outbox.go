package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// OutboxLimit bounds the webhook events one app's outbox holds. Beyond it
// the oldest are dropped (and counted): a receiver that is down for long
// must not grow the server or Redis without bound.
const OutboxLimit = 100_000

// ErrNotLeader is returned by Outbox.Read to a node that no longer sends
// the cluster's webhooks.
var ErrNotLeader = errors.New("scaling: this node does not send the cluster's webhooks")

// Outbox is the cluster's queue of webhook events, one per app. The shared
// state puts the transitions a webhook wants in it, atomically with the
// change that decides them (see Config.Webhooks); Add puts in the events
// that no state change decides (client_event, cache_miss). One node at a
// time, the leader, reads the outbox and sends; an entry stays in the
// outbox until the leader is done with it, so a leader that dies leaves
// its unfinished entries to the next one (at least once, never lost with a
// node). With one node, the outbox is in memory and the node always leads.
type Outbox interface {
	// Add queues webhook events of appID, each Pusher's event object
	// ({"name": ..., "channel": ...}).
	Add(ctx context.Context, appID string, events ...json.RawMessage) error
	// Lead tries to make this node the leader, or keeps it so, and
	// reports whether it is. Call it at least every Lease/3 while leading.
	Lead(ctx context.Context) (bool, error)
	// Resign gives up the lead, if this node has it, so that another
	// node takes over at once rather than after the lease (at shutdown).
	Resign(ctx context.Context) error
	// Read returns up to max entries for the leader, oldest first: after
	// each Lead that made this node leader, first the entries earlier
	// leaders left unfinished. It waits up to a second for entries.
	Read(ctx context.Context, max int) ([]OutboxEntry, error)
	// Done takes finished entries (sent, or given up) out of the outbox.
	Done(ctx context.Context, entries ...OutboxEntry) error
	// Dropped returns how many entries were dropped so far for lack of
	// room, as far as this node can tell.
	Dropped() int64
}

// OutboxEntry is one webhook event in an outbox.
type OutboxEntry struct {
	AppID string
	// ID is unique within the app's outbox and grows with time; the
	// webhook carries it so that a receiver can drop a repeat.
	ID string
	// At is when the event happened.
	At time.Time
	// Event is Pusher's webhook event object.
	Event json.RawMessage
}

// announceCount is the pseudo event name, in hookedKinds' form, of an app
// whose subscription counts are announced to subscribers.
const announceCount = "announce_count"

// hookedKinds turns Config.Webhooks and Config.SubscriptionCounts into
// the form the scripts read: per app, the event names between commas, and
// announceCount for an app that announces its counts.
func hookedKinds(cfg Config) map[string]string {
	kinds := make(map[string][]string, len(cfg.Webhooks))
	for app, names := range cfg.Webhooks {
		kinds[app] = append(kinds[app], names...)
	}
	for app, on := range cfg.SubscriptionCounts {
		if on {
			kinds[app] = append(kinds[app], announceCount)
		}
	}
	out := make(map[string]string, len(kinds))
	for app, names := range kinds {
		if len(names) > 0 {
			out[app] = "," + strings.Join(names, ",") + ","
		}
	}
	return out
}

// webhookApps returns the ids of the apps with webhooks, sorted.
func webhookApps(cfg Config) []string {
	var out []string
	for app, names := range cfg.Webhooks {
		if len(names) > 0 {
			out = append(out, app)
		}
	}
	slices.Sort(out)
	return out
}

// webhookEvent is Pusher's webhook event object of a transition.
func webhookEvent(t Transition) json.RawMessage {
	ev := struct {
		Name              string `json:"name"`
		Channel           string `json:"channel"`
		UserID            string `json:"user_id,omitempty"`
		SubscriptionCount *int   `json:"subscription_count,omitempty"`
	}{Name: string(t.Kind), Channel: t.Channel, UserID: t.UserID}
	if t.Kind == SubscriptionCount {
		ev.SubscriptionCount = &t.Count
	}
	b, _ := json.Marshal(ev) // strings and an int: never fails
	return b
}

// wants reports whether kinds (hookedKinds' form) has kind.
func wants(kinds string, kind TransitionKind) bool {
	return kinds != "" && strings.Contains(kinds, ","+string(kind)+",")
}
