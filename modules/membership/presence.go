package membership

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

var emptyData = pusher.StringData([]byte("{}"))

// succeeded is subscription_succeeded on a channel without members.
func succeeded(channel string) []byte {
	return pusher.EncodeEvent(pusher.EventSubscriptionSucceeded, channel, emptyData, "")
}

// presence is the member list of subscription_succeeded.
type presence struct {
	IDs   []string                   `json:"ids"`
	Hash  map[string]json.RawMessage `json:"hash"`
	Count int                        `json:"count"`
}

// succeededPresence is subscription_succeeded on a presence channel with
// members, user id to user_info.
func succeededPresence(channel string, members map[string]json.RawMessage) ([]byte, error) {
	p := presence{IDs: make([]string, 0, len(members)), Hash: members, Count: len(members)}
	if p.Hash == nil {
		p.Hash = map[string]json.RawMessage{}
	}
	for id := range members {
		p.IDs = append(p.IDs, id)
	}
	sort.Strings(p.IDs)
	body, err := json.Marshal(struct {
		Presence presence `json:"presence"`
	}{p})
	if err != nil {
		return nil, fmt.Errorf("encode the member list of %s: %w", channel, err)
	}
	return pusher.EncodeEvent(pusher.EventSubscriptionSucceeded, channel, pusher.StringData(body), ""), nil
}

// Kind reports the envelope kind Membership handles: the member
// transitions the shared state publishes.
func (m *Membership) Kind() string { return scaling.KindPresence }

// Handle delivers one member transition to this node's subscribers of its
// channel as member_added or member_removed, numbered by the envelope's
// Seq: held for sockets still waiting for their member list, dropped for
// those whose list already has it.
func (m *Membership) Handle(ctx context.Context, e scaling.Envelope) {
	var ev scaling.MemberEvent
	if err := json.Unmarshal(e.Payload, &ev); err != nil || ev.Channel == "" || ev.UserID == "" {
		m.log.Warn("dropped malformed presence envelope", "app_id", e.AppID, "origin", e.Origin, "err", err)
		return
	}
	if ev.Channel == scaling.UsersChannel {
		n := m.watched(e.AppID, ev, e.Seq)
		if m.log.Enabled(ctx, slog.LevelDebug) {
			m.log.Debug("watchlist", "app_id", e.AppID, "user_id", ev.UserID, "online", ev.Added, "seq", e.Seq, "sockets", n)
		}
		return
	}
	name, data, err := memberData(ev)
	if err != nil {
		m.log.Warn("dropped presence envelope", "app_id", e.AppID, "channel", ev.Channel, "err", err)
		return
	}
	frame := connection.TextFrame(pusher.EncodeEvent(name, ev.Channel, pusher.StringData(data), ""))
	n := m.channels.BroadcastMember(e.AppID, ev.Channel, frame, "", e.Seq)
	if m.log.Enabled(ctx, slog.LevelDebug) {
		m.log.Debug("broadcast", "app_id", e.AppID, "channel", ev.Channel, "event", name, "seq", e.Seq, "sockets", n)
	}
}

// memberData returns the event name and data of a member transition.
func memberData(ev scaling.MemberEvent) (string, []byte, error) {
	if !ev.Added {
		data, err := json.Marshal(struct {
			UserID string `json:"user_id"`
		}{ev.UserID})
		return pusher.EventMemberRemoved, data, err
	}
	info := json.RawMessage(ev.UserInfo)
	if !json.Valid(info) {
		return "", nil, fmt.Errorf("user_info of %q is not JSON", ev.UserID)
	}
	data, err := json.Marshal(struct {
		UserID   string          `json:"user_id"`
		UserInfo json.RawMessage `json:"user_info"`
	}{ev.UserID, info})
	return pusher.EventMemberAdded, data, err
}
