package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// MemberAdded announces a presence member to every subscriber of channel
// but the socket exceptID (the member's own). seq is the number the shared
// state gave the change (0: none); it travels in the envelope, so that a
// socket whose member list already has the member does not hear it again.
func (d *Dispatcher) MemberAdded(ctx context.Context, appID, channel, userID string, info json.RawMessage, seq uint64, exceptID string) error {
	body, err := json.Marshal(struct {
		UserID   string          `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info,omitempty"`
	}{userID, info})
	if err != nil {
		return fmt.Errorf("encode member_added: %w", err)
	}
	ev := Event{Channels: []string{channel}, Name: pusher.EventMemberAdded, Data: pusher.StringData(body)}
	return d.publish(ctx, appID, ev, exceptID, seq)
}

// MemberRemoved announces that a presence member's last socket left; seq
// is the number of the change, as for MemberAdded.
func (d *Dispatcher) MemberRemoved(ctx context.Context, appID, channel, userID string, seq uint64) error {
	body, err := json.Marshal(struct {
		UserID string `json:"user_id"`
	}{userID})
	if err != nil {
		return fmt.Errorf("encode member_removed: %w", err)
	}
	ev := Event{Channels: []string{channel}, Name: pusher.EventMemberRemoved, Data: pusher.StringData(body)}
	return d.publish(ctx, appID, ev, "", seq)
}

// Announce publishes the member events that follow changes of the shared
// state that no socket of this node made (a dead node's share removed, a
// share restored after Redis lost it), each with the Seq of its change.
func (d *Dispatcher) Announce(ctx context.Context, changes []scaling.PresenceChange) {
	for _, ch := range changes {
		var err error
		if ch.Added {
			err = d.MemberAdded(ctx, ch.AppID, ch.Channel, ch.UserID, ch.Info, ch.Seq, "")
		} else {
			err = d.MemberRemoved(ctx, ch.AppID, ch.Channel, ch.UserID, ch.Seq)
		}
		if err != nil {
			d.log.Warn("announcing a presence change", "app_id", ch.AppID, "channel", ch.Channel, "err", err)
		}
	}
}

// isMemberEvent reports whether name is a presence member event, which
// is delivered through channels.Manager.BroadcastMember.
func isMemberEvent(name string) bool {
	return name == pusher.EventMemberAdded || name == pusher.EventMemberRemoved
}
