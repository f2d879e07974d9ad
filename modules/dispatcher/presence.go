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
	ev, err := memberEvent(scaling.PresenceChange{Channel: channel, UserID: userID, Info: info, Added: true})
	if err != nil {
		return err
	}
	return d.publish(ctx, appID, ev, exceptID, seq)
}

// MemberRemoved announces that a presence member's last socket left; seq
// is the number of the change, as for MemberAdded.
func (d *Dispatcher) MemberRemoved(ctx context.Context, appID, channel, userID string, seq uint64) error {
	ev, err := memberEvent(scaling.PresenceChange{Channel: channel, UserID: userID})
	if err != nil {
		return err
	}
	return d.publish(ctx, appID, ev, "", seq)
}

// memberEvent is the member_added or member_removed event of ch.
func memberEvent(ch scaling.PresenceChange) (Event, error) {
	name := pusher.EventMemberRemoved
	var body any = struct {
		UserID string `json:"user_id"`
	}{ch.UserID}
	if ch.Added {
		name = pusher.EventMemberAdded
		body = struct {
			UserID   string          `json:"user_id"`
			UserInfo json.RawMessage `json:"user_info,omitempty"`
		}{ch.UserID, ch.Info}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s: %w", name, err)
	}
	return Event{Channels: []string{ch.Channel}, Name: name, Data: pusher.StringData(data)}, nil
}

// maxUnannounced bounds the presence changes kept for the cluster while
// the link is down; beyond it the oldest are dropped (and logged).
const maxUnannounced = 1 << 16

// Announce publishes the member events that follow changes of the shared
// state that no socket of this node made (a dead node's share removed, a
// share restored after Redis lost it), each with the Seq of its change, to
// the whole cluster, this node included, once each and in order. A change
// that cannot be published now (the Redis link is down, or PUBLISH
// failed) is kept, with every later one, and published first on a later
// call: scaling.State.Run calls Announce again, with or without changes,
// after each heartbeat. Nothing is ever delivered to this node's sockets
// alone, so the later publish reaches them exactly once.
func (d *Dispatcher) Announce(ctx context.Context, changes []scaling.PresenceChange) {
	// announceMu is held while publishing: it is what keeps the
	// announcements in order and each published once. Only Announce takes it.
	d.announceMu.Lock()
	defer d.announceMu.Unlock()
	d.unannounced = append(d.unannounced, changes...)
	if over := len(d.unannounced) - maxUnannounced; over > 0 {
		d.log.Error("dropped presence changes never announced to the cluster", "count", over)
		d.unannounced = append([]scaling.PresenceChange(nil), d.unannounced[over:]...)
	}
	sent := 0
	defer func() {
		clear(d.unannounced[:sent])
		d.unannounced = d.unannounced[sent:]
	}()
	for _, ch := range d.unannounced {
		ev, err := memberEvent(ch)
		var e scaling.Envelope
		if err == nil {
			e, err = d.envelope(ch.AppID, ev, "", ch.Seq)
		}
		if err != nil {
			d.log.Warn("announcing a presence change", "app_id", ch.AppID, "channel", ch.Channel, "err", err)
			sent++ // no retry can encode it
			continue
		}
		if err := d.publishCluster(ctx, e); err != nil {
			d.log.Debug("presence changes wait for the cluster", "count", len(d.unannounced)-sent, "err", err)
			return
		}
		d.stats.EventTriggered(ch.AppID, ev.Name, false)
		sent++
	}
}

// publishCluster publishes e to every node or to none
// (scaling.PubSubProvider.PublishCluster).
func (d *Dispatcher) publishCluster(ctx context.Context, e scaling.Envelope) error {
	if _, err := d.pubsub.PublishCluster(ctx, e); err != nil {
		return fmt.Errorf("publish event: %w", err)
	}
	return nil
}

// isMemberEvent reports whether name is a presence member event, which
// is delivered through channels.Manager.BroadcastMember.
func isMemberEvent(name string) bool {
	return name == pusher.EventMemberAdded || name == pusher.EventMemberRemoved
}
