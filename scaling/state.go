package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// CacheTTL is how long the last event of a cache channel is kept, with or
// without subscribers.
const CacheTTL = 30 * time.Minute

// ErrMembersLimit is returned by JoinPresence when a presence channel has
// reached its member limit.
var ErrMembersLimit = errors.New("presence channel is full")

// ErrShareLost is returned by a change of the shared state that finds the
// state incomplete: Redis lost its data (a restart, FLUSHALL, a failover
// to an empty replica) or reaped this node while it was paused. Nothing
// was changed. The caller undoes its own part of the change, calls
// Recover, and tries again.
var ErrShareLost = errors.New("the shared state lost this node's share")

// State is the shared state that must be exact for the whole cluster:
// channel subscription counts, presence membership, the last event of
// cache channels and per-app connection counts. LocalState keeps it in
// memory for one node; RedisState keeps it in Redis, changed atomically
// by Lua scripts, with a lease per node so that the share of a dead node
// is removed.
//
// Every change of a channel is decided in one place: the atomic step (a
// script, or LocalState's locked section) that makes it also works out
// the cluster-wide Transitions it causes and numbers them with the
// channel's next sequence number (Seq). Member transitions are published
// by that same step (as KindPresence envelopes), so the cluster hears
// them exactly once and in the order the state changed; every other
// transition goes back to the caller, which alone may act on it. A member
// list is read atomically with the channel's Seq: it has every change
// numbered up to that Seq and none after.
type State interface {
	// JoinPresence counts one more subscription of a socket of this node
	// to a presence channel as userID and returns the member list after
	// the change with its Seq, and the transitions the change caused
	// (channel_occupied, member_added, subscription_count). A new user
	// beyond maxMembers (0: no limit) is refused with ErrMembersLimit.
	JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (Snapshot, []Transition, error)
	// LeavePresence counts one such subscription less and returns the
	// transitions (member_removed, channel_vacated, subscription_count).
	LeavePresence(ctx context.Context, appID, channel, userID string) ([]Transition, error)
	// PresenceMembers returns a presence channel's member list and its Seq.
	PresenceMembers(ctx context.Context, appID, channel string) (Snapshot, error)

	// SignIn counts one more signed-in socket of userID on this node: the
	// user's first anywhere makes them online (a member_added of
	// UsersChannel). SignOut counts one less: the last makes them offline.
	SignIn(ctx context.Context, appID, userID string) ([]Transition, error)
	SignOut(ctx context.Context, appID, userID string) ([]Transition, error)
	// Online returns which of users are online now, with the Seq of
	// UsersChannel that this answer reflects.
	Online(ctx context.Context, appID string, users []string) ([]string, uint64, error)
	// SetSubscriptions records how many subscriptions this node holds on
	// each of the given channels (never presence channels, which
	// JoinPresence and LeavePresence count) and returns the transitions
	// the new numbers cause. Counts are absolute, so writing one twice
	// changes nothing.
	SetSubscriptions(ctx context.Context, counts []ChannelCount) ([]Transition, error)

	// RememberEvent keeps payload as the last event of a cache channel for CacheTTL.
	RememberEvent(ctx context.Context, appID, channel string, payload []byte) error
	// LastEvent returns the last event of a cache channel, if one is kept.
	LastEvent(ctx context.Context, appID, channel string) ([]byte, bool, error)

	// AddConnection counts one more socket of appID unless the app already
	// has limit (0: no limit) across the cluster; it reports whether the
	// socket may stay.
	AddConnection(ctx context.Context, appID string, limit int) (bool, error)
	// RemoveConnection counts one socket of appID less.
	RemoveConnection(ctx context.Context, appID string) error

	// Recover makes the shared state whole again after ErrShareLost: every
	// node of the cluster re-asserts its share before it returns (or
	// before the cluster timeout, for a node that does not answer).
	Recover(ctx context.Context) error

	// Run keeps this node's share of the state alive until ctx ends:
	// RedisState renews its lease, re-asserts its share from source after
	// Redis lost it or a write failed, and removes the share of nodes
	// whose lease expired. The transitions these changes cause are handed
	// to decided, from one goroutine, in the order they were decided.
	Run(ctx context.Context, source ShareSource, decided func(context.Context, []Transition))
}

// Snapshot is a presence channel's member list, user id to user_info
// (JSON null when none was given), with the Seq of the last change it has.
type Snapshot struct {
	Members map[string]json.RawMessage
	Seq     uint64
}

// ChannelCount is how many subscriptions this node holds on a channel.
type ChannelCount struct {
	AppID         string
	Channel       string
	Subscriptions int
}

// TransitionKind names a cluster-wide change of a channel. The values
// are the names of Pusher's webhook events.
type TransitionKind string

// The transitions the shared state decides.
const (
	ChannelOccupied   TransitionKind = "channel_occupied"
	ChannelVacated    TransitionKind = "channel_vacated"
	MemberAdded       TransitionKind = "member_added"
	MemberRemoved     TransitionKind = "member_removed"
	SubscriptionCount TransitionKind = "subscription_count"
)

// Transition is one cluster-wide change of a channel: it became occupied
// or vacated, a presence member was added or removed, or its subscription
// count changed. Transitions of one atomic change share its Seq.
type Transition struct {
	Kind    TransitionKind
	AppID   string
	Channel string
	UserID  string          // member transitions
	Info    json.RawMessage // member_added: user_info
	Count   int             // subscription_count: the new count
	Seq     uint64
}

// UsersChannel is the presence channel, internal to each app, whose
// members are the app's signed-in users (pusher:signin): its member
// transitions are the watchlist's online and offline events. Its name is
// no valid channel name, so no client can subscribe to it, and it has no
// webhooks and no subscription count.
const UsersChannel = ":users"

// KindPresence is the kind of the envelopes that carry member
// transitions; the shared state publishes them, with the transition's
// Seq in Envelope.Seq.
const KindPresence = "presence"

// KindCount is the kind of the envelopes that carry a non-presence
// channel's new subscription count, for the apps that announce it
// (Config.SubscriptionCounts); the shared state publishes them, with the
// change's Seq in Envelope.Seq.
const KindCount = "count"

// CountEvent is the payload of a KindCount envelope.
type CountEvent struct {
	Channel           string `json:"channel"`
	SubscriptionCount int    `json:"subscription_count"`
}

// MemberEvent is the payload of a KindPresence envelope.
type MemberEvent struct {
	Added   bool   `json:"added,omitempty"`
	Channel string `json:"channel"`
	UserID  string `json:"user_id"`
	// UserInfo is the member's user_info as JSON text (member_added).
	UserInfo string `json:"user_info,omitempty"`
}

// ShareSource reports this node's own part of the shared state, the truth
// a node re-asserts after Redis lost it.
type ShareSource interface {
	// WithShare calls f with this node's share while holding off every
	// local change of it, so f can write the share without racing a
	// subscription or a disconnect.
	WithShare(f func(Share))
}

// Share is one node's part of the shared state.
type Share struct {
	Channels    []ChannelShare
	Presence    []PresenceShare
	Connections map[string]int // app id -> open sockets on this node
}

// ChannelShare is this node's subscriptions to one channel.
type ChannelShare struct {
	AppID         string
	Channel       string
	Subscriptions int
	// Seq is the largest Seq of the channel this node has seen. A
	// re-assert raises the channel's counter to at least Seq, so that no
	// socket of this node waits for numbers that were already handed out.
	Seq uint64
}

// PresenceShare is one user's sockets on one presence channel of this node.
type PresenceShare struct {
	AppID   string
	Channel string
	UserID  string
	Info    json.RawMessage
	Sockets int
}

// infoOrNull returns info, or JSON null when it is empty.
func infoOrNull(info json.RawMessage) json.RawMessage {
	if len(info) == 0 {
		return json.RawMessage("null")
	}
	return info
}

// memberEnvelope is the KindPresence envelope of a member transition.
func memberEnvelope(origin string, t Transition) (Envelope, error) {
	ev := MemberEvent{Added: t.Kind == MemberAdded, Channel: t.Channel, UserID: t.UserID}
	if ev.Added {
		ev.UserInfo = string(infoOrNull(t.Info))
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{V: Version, Kind: KindPresence, AppID: t.AppID, Origin: origin, Seq: t.Seq, Payload: payload}, nil
}

// countEnvelope is the KindCount envelope of a subscription_count transition.
func countEnvelope(origin string, t Transition) (Envelope, error) {
	payload, err := json.Marshal(CountEvent{Channel: t.Channel, SubscriptionCount: t.Count})
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{V: Version, Kind: KindCount, AppID: t.AppID, Origin: origin, Seq: t.Seq, Payload: payload}, nil
}
