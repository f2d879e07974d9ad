package console

import "unicode/utf8"

// Types of the feed's events.
const (
	TypeConnect      = "connect"      // a socket admitted
	TypeDisconnect   = "disconnect"   // an admitted socket ended, with its close code
	TypeSubscribe    = "subscribe"    // a socket subscribed
	TypeUnsubscribe  = "unsubscribe"  // a socket unsubscribed
	TypeAPIEvent     = "api_event"    // an event triggered through the HTTP API (or the console), one per channel
	TypeClientEvent  = "client_event" // a client-* event sent by a socket
	TypeOccupied     = "channel_occupied"
	TypeVacated      = "channel_vacated"
	TypeMemberAdded  = "member_added"
	TypeMemberRemove = "member_removed"
	TypeWebhook      = "webhook" // a webhook event POSTed, with the answer in Detail
	TypeDropped      = "dropped" // Count events were lost on Node (its queue) or for this viewer
)

// DetailBatches marks a dropped marker whose Count is of whole batches
// (of up to BatchMax events) that this node had no room to decode.
const DetailBatches = "batches"

// MaxData bounds the event data an Event carries; longer data is cut.
const MaxData = 1024

// Event is one entry of the live feed. Which fields are set depends on
// Type.
type Event struct {
	// T is when the node saw it, in ms since the epoch; Node is its id.
	T    int64  `json:"t"`
	Node string `json:"node"`
	App  string `json:"app,omitempty"`
	Type string `json:"type"`

	Socket  string `json:"socket,omitempty"`
	Channel string `json:"channel,omitempty"`
	Event   string `json:"event,omitempty"`
	User    string `json:"user,omitempty"`
	// Code is a disconnect's close code (1006 when none was exchanged).
	Code int `json:"code,omitempty"`
	// Data is an event's data, cut at MaxData bytes.
	Data string `json:"data,omitempty"`
	// Detail is a webhook's answer: the HTTP status, timeout or error.
	Detail string `json:"detail,omitempty"`
	// Count is how many events a dropped marker stands for.
	Count int64 `json:"count,omitempty"`
}

// Clip cuts s to MaxData bytes, on a rune boundary, marking the cut.
func Clip(s string) string {
	if len(s) <= MaxData {
		return s
	}
	cut := MaxData
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// matches reports whether e passes a viewer's filter: its app, and the
// channel and event name when they are set. Dropped markers always pass.
func (f Filter) matches(e *Event) bool {
	if e.Type == TypeDropped {
		return true
	}
	return e.App == f.App && (f.Channel == "" || e.Channel == f.Channel) && (f.Event == "" || e.Event == f.Event)
}

// Filter selects the events a viewer gets.
type Filter struct {
	// App is required.
	App string
	// Channel and Event, when set, keep only the events of that channel or
	// with that name.
	Channel string
	Event   string
}
