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

// State is the shared state that must be exact for the whole cluster:
// presence membership, the last event of cache channels and per-app
// connection counts. LocalState keeps it in memory for one node;
// RedisState keeps it in Redis, changed atomically by Lua scripts, with a
// lease per node so that the share of a dead node is removed.
type State interface {
	// JoinPresence counts one more socket of userID on a presence channel
	// and reports whether the user is new to the channel (so member_added
	// is due). A new user beyond maxMembers (0: no limit) is refused with
	// ErrMembersLimit.
	JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (added bool, err error)
	// LeavePresence counts one socket of userID less and reports whether
	// it was the user's last one anywhere (so member_removed is due).
	LeavePresence(ctx context.Context, appID, channel, userID string) (removed bool, err error)
	// PresenceMembers returns every member of a presence channel, user id
	// to user_info (null when none was given).
	PresenceMembers(ctx context.Context, appID, channel string) (map[string]json.RawMessage, error)

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

	// Run keeps this node's share of the state alive until ctx ends:
	// RedisState renews its lease, re-asserts its share from source after
	// Redis lost it, and removes the share of nodes whose lease expired,
	// handing the presence changes that follow to announce.
	Run(ctx context.Context, source ShareSource, announce func(context.Context, []PresenceChange))
}

// ShareSource reports this node's own part of the shared state, the truth
// a node re-asserts after Redis lost it.
type ShareSource interface {
	// WithShare calls f with this node's share while holding off every
	// local change of it, so f can write the share without racing a join
	// or a leave.
	WithShare(f func(Share))
}

// Share is one node's part of the shared state.
type Share struct {
	Presence    []PresenceShare
	Connections map[string]int // app id -> open sockets on this node
}

// PresenceShare is one user's sockets on one presence channel of this node.
type PresenceShare struct {
	AppID   string
	Channel string
	UserID  string
	Info    json.RawMessage
	Sockets int
}

// PresenceChange is a member that joined or left a presence channel for
// a reason other than one of this node's sockets (a dead node, a restored
// share).
type PresenceChange struct {
	AppID   string
	Channel string
	UserID  string
	Info    json.RawMessage
	Added   bool // false: removed
}

// infoOrNull returns info, or JSON null when it is empty.
func infoOrNull(info json.RawMessage) json.RawMessage {
	if len(info) == 0 {
		return json.RawMessage("null")
	}
	return info
}
