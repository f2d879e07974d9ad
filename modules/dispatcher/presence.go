package dispatcher

import (
	"context"
	"encoding/json"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// MemberAdded announces a presence member to every subscriber of channel
// but the socket exceptID (the member's own).
func (d *Dispatcher) MemberAdded(ctx context.Context, appID, channel, userID string, info json.RawMessage, exceptID string) error {
	body, err := json.Marshal(struct {
		UserID   string          `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info,omitempty"`
	}{userID, info})
	if err != nil {
		return err
	}
	ev := Event{Channels: []string{channel}, Name: pusher.EventMemberAdded, Data: pusher.StringData(body)}
	return d.Dispatch(ctx, appID, ev, exceptID)
}

// MemberRemoved announces that a presence member's last socket left.
func (d *Dispatcher) MemberRemoved(ctx context.Context, appID, channel, userID string) error {
	body, err := json.Marshal(struct {
		UserID string `json:"user_id"`
	}{userID})
	if err != nil {
		return err
	}
	ev := Event{Channels: []string{channel}, Name: pusher.EventMemberRemoved, Data: pusher.StringData(body)}
	return d.Dispatch(ctx, appID, ev, "")
}

// Announce publishes the member events that follow changes of the shared
// state that no socket of this node made (a dead node's share removed, a
// share restored after Redis lost it).
func (d *Dispatcher) Announce(ctx context.Context, changes []scaling.PresenceChange) {
	for _, ch := range changes {
		var err error
		if ch.Added {
			err = d.MemberAdded(ctx, ch.AppID, ch.Channel, ch.UserID, ch.Info, "")
		} else {
			err = d.MemberRemoved(ctx, ch.AppID, ch.Channel, ch.UserID)
		}
		if err != nil {
			d.log.Warn("announcing a presence change", "app_id", ch.AppID, "channel", ch.Channel, "err", err)
		}
	}
}
