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
//
// Every change of a presence channel's member set is numbered, atomically
// with the change, by a sequence number of the channel (a Seq): later
// changes get larger numbers, and PresenceMembers reports the number of
// the last change its member list reflects. A member event carries the
// number of its change, so a socket that got the member list at Seq S
// drops the member events numbered S or less: the list already has them.
// Changes of a user's socket count that leave the member set as it was
// are not numbered (Seq 0).
type State interface {
	// JoinPresence counts one more socket of userID on a presence channel
	// and reports whether the user is new to the channel (so member_added
	// is due) and, when it is, the Seq of that change. A new user beyond
	// maxMembers (0: no limit) is refused with ErrMembersLimit.
	JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (added bool, seq uint64, err error)
	// LeavePresence counts one socket of userID less and reports whether
	// it was the user's last one anywhere (so member_removed is due) and,
	// when it was, the Seq of that change.
	LeavePresence(ctx context.Context, appID, channel, userID string) (removed bool, seq uint64, err error)
	// PresenceMembers returns every member of a presence channel, user id
	// to user_info (null when none was given), and the Seq of the last
	// change the list reflects, read atomically with it (0: no change is
	// on record).
	PresenceMembers(ctx context.Context, appID, channel string) (members map[string]json.RawMessage, seq uint64, err error)

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
	// handing the presence changes that follow to announce. It calls
	// announce from one goroutine, in the order of the changes, and also
	// with no changes now and then, so that an announcer can publish
	// first what it could not publish before.
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
	// Seq is the largest Seq of the channel this node has seen (in a
	// member list or a member event). A re-assert raises the channel's
	// counter to at least Seq, so that no socket of this node waits for
	// numbers that were already handed out.
	Seq uint64
}

// PresenceChange is a member that joined or left a presence channel for
// a reason other than one of this node's sockets (a dead node, a restored
// share).
type PresenceChange struct {
	AppID   string
	Channel string
	UserID  string
	Info    json.RawMessage
	Added   bool   // false: removed
	Seq     uint64 // the change's number on the channel; 0: none
}

// infoOrNull returns info, or JSON null when it is empty.
func infoOrNull(info json.RawMessage) json.RawMessage {
	if len(info) == 0 {
		return json.RawMessage("null")
	}
	return info
}
