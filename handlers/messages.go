package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/modules/membership"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/modules/webhooks"
	"github.com/fizz-server/fizz/scaling"
)

// publishTimeout bounds the wait to publish one event from a socket.
const publishTimeout = 5 * time.Second

// MessageHandler handles the frames a client sends: pings, subscriptions,
// sign-in and client events. It mirrors Reverb's Pusher EventHandler and
// ClientEvent. Each socket's frames are handled on its reader goroutine,
// in order.
type MessageHandler struct {
	channels   *channels.Manager
	membership *membership.Membership
	state      scaling.State
	dispatcher *dispatcher.Dispatcher
	webhooks   *webhooks.Sender
	stats      *stats.Stats
	feed       *console.Feed // nil: no console
	log        *slog.Logger
	now        func() time.Time
}

// MessageHandlerParams lists what NewMessageHandler takes.
type MessageHandlerParams struct {
	fx.In
	Channels   *channels.Manager
	Membership *membership.Membership
	State      scaling.State
	Dispatcher *dispatcher.Dispatcher
	Webhooks   *webhooks.Sender
	Stats      *stats.Stats
	Console    *console.Feed `optional:"true"`
	Log        *slog.Logger
}

// NewMessageHandler returns a MessageHandler.
func NewMessageHandler(p MessageHandlerParams) *MessageHandler {
	return &MessageHandler{channels: p.Channels, membership: p.Membership, state: p.State, dispatcher: p.Dispatcher,
		webhooks: p.Webhooks, stats: p.Stats, feed: p.Console, log: p.Log, now: time.Now}
}

var pongFrame = pusher.EncodeEvent(pusher.EventPong, "", json.RawMessage("{}"), "")

// Established returns the pusher:connection_established frame for c.
func Established(c *connection.Conn) []byte {
	data, _ := json.Marshal(struct {
		SocketID        string `json:"socket_id"`
		ActivityTimeout int    `json:"activity_timeout"`
	}{c.ID(), int(c.App().ActivityTimeout / time.Second)})
	return pusher.EncodeEvent(pusher.EventConnectionEstablished, "", pusher.StringData(data), "")
}

// Handle handles one text frame from c.
func (h *MessageHandler) Handle(ctx context.Context, c *connection.Conn, msg []byte) {
	f, err := pusher.ParseFrame(msg)
	if err != nil {
		h.reject(c, err)
		return
	}
	switch {
	case f.Event == pusher.EventPing:
		c.Send(pongFrame)
	case f.Event == pusher.EventPong:
		// Activity was recorded when the frame arrived.
	case f.Event == pusher.EventSubscribe:
		err = h.subscribe(ctx, c, f)
	case f.Event == pusher.EventUnsubscribe:
		err = h.unsubscribe(ctx, c, f)
	case f.Event == pusher.EventSignin:
		err = h.signin(ctx, c, f)
	case strings.HasPrefix(f.Event, pusher.ClientEventPrefix):
		err = h.clientEvent(ctx, c, f)
	default:
		err = pusher.Errorf(pusher.CodeGeneric, "Unknown event %q", clip(f.Event))
	}
	if err != nil {
		h.reject(c, err)
	}
}

// reject sends err to c as a pusher:error frame.
func (h *MessageHandler) reject(c *connection.Conn, err error) {
	if errors.Is(err, scaling.ErrLocalOnly) {
		// Delivered on this node; the cluster link is down and is
		// reported by /up and the logs, not to each client.
		return
	}
	var pe *pusher.Error
	if !errors.As(err, &pe) {
		h.log.Error("handling frame", "app_id", c.App().ID, "socket_id", c.ID(), "err", err)
		pe = pusher.Errorf(pusher.CodeGeneric, "Internal error")
	}
	c.SendError(pe)
}

// subscriptionError answers a refused subscription on its channel, so that
// pusher-js and Echo's .error() hear it.
func subscriptionError(c *connection.Conn, channel, kind, message string, status int) {
	data, _ := json.Marshal(struct {
		Type   string `json:"type"`
		Error  string `json:"error"`
		Status int    `json:"status"`
	}{kind, message, status})
	c.Send(pusher.EncodeEvent(pusher.EventSubscriptionError, channel, data, ""))
}

func (h *MessageHandler) subscribe(ctx context.Context, c *connection.Conn, f pusher.Frame) error {
	s, err := pusher.ParseSubscription(f.Data)
	if err != nil {
		return err
	}
	if !pusher.ValidChannelName(s.Channel) {
		return pusher.Errorf(pusher.CodeGeneric, "Invalid channel name %q", clip(s.Channel))
	}
	app := c.App()
	kind := pusher.KindOf(s.Channel)
	var member *pusher.Member
	if kind.Private {
		if !h.authorised(c, s) {
			subscriptionError(c, s.Channel, "AuthError", "Invalid signature for channel "+s.Channel, 401)
			return nil
		}
		if s.ChannelData != "" {
			m, err := pusher.ParseChannelData(s.ChannelData)
			switch {
			case err != nil && kind.Presence:
				subscriptionError(c, s.Channel, "InvalidChannelData", err.Error(), 400)
				return nil
			case err == nil:
				member = &m
			}
		}
		if kind.Presence && member == nil {
			subscriptionError(c, s.Channel, "InvalidChannelData", "channel_data with a user_id is required on presence channels", 400)
			return nil
		}
		if kind.Presence && len(member.UserInfo) > app.MaxPresenceUserInfo {
			subscriptionError(c, s.Channel, "LimitReached", "user_info is larger than the limit", 413)
			return nil
		}
		if member != nil && c.SetUserID(member.UserID) {
			h.channels.AddUser(c)
		}
	}
	if !kind.Presence {
		member = nil
	}
	again := c.Subscribed(s.Channel)
	switch err := h.membership.Join(ctx, c, s.Channel, member); {
	case errors.Is(err, membership.ErrTooManyChannels):
		subscriptionError(c, s.Channel, "LimitReached", fmt.Sprintf("A socket may join at most %d channels", membership.MaxChannelsPerSocket), 403)
		return nil
	case errors.Is(err, membership.ErrChannelFull):
		subscriptionError(c, s.Channel, "LimitReached", "The presence channel has reached its member limit", 403)
		return nil
	case errors.Is(err, membership.ErrUnavailable):
		subscriptionError(c, s.Channel, "Unavailable", "The presence state of the cluster is unavailable; retry later", 503)
		return nil
	case err != nil:
		return err
	}
	if h.feed.Watching() {
		h.feed.Emit(console.Event{App: app.ID, Type: console.TypeSubscribe, Socket: c.ID(), Channel: s.Channel, User: c.UserID()})
	}
	if kind.Cache && !again {
		h.replayCache(ctx, c, s.Channel)
	}
	return nil
}

// replayCache sends a cache channel's last event, or pusher:cache_miss.
func (h *MessageHandler) replayCache(ctx context.Context, c *connection.Conn, channel string) {
	payload, ok, err := h.state.LastEvent(ctx, c.App().ID, channel)
	if err != nil {
		h.log.Warn("reading a cache channel's last event", "app_id", c.App().ID, "channel", channel, "err", err)
	}
	if ok {
		c.Send(payload)
		return
	}
	c.Send(pusher.EncodeEvent(pusher.EventCacheMiss, channel, nil, ""))
	h.webhooks.CacheMiss(ctx, c.App(), channel)
}

// authorised checks a private channel's auth signature; a server-to-user
// channel needs instead that the socket signed in as that user.
func (h *MessageHandler) authorised(c *connection.Conn, s pusher.Subscription) bool {
	if user, ok := strings.CutPrefix(s.Channel, pusher.PrefixServerToUser); ok {
		return user != "" && c.UserID() == user
	}
	app := c.App()
	return pusher.VerifyChannelAuth(app.Key, app.Secret, c.ID(), s.Channel, s.ChannelData, s.Auth)
}

func (h *MessageHandler) unsubscribe(ctx context.Context, c *connection.Conn, f pusher.Frame) error {
	s, err := pusher.ParseSubscription(f.Data)
	if err != nil {
		return err
	}
	h.membership.Leave(ctx, c, s.Channel)
	if h.feed.Watching() {
		h.feed.Emit(console.Event{App: c.App().ID, Type: console.TypeUnsubscribe, Socket: c.ID(), Channel: s.Channel, User: c.UserID()})
	}
	return nil
}

// signin authenticates the socket as a user (pusher:signin), so that it may
// join its #server-to-user- channel and be terminated by user id.
func (h *MessageHandler) signin(ctx context.Context, c *connection.Conn, f pusher.Frame) error {
	var req struct {
		UserData string `json:"user_data"`
		Auth     string `json:"auth"`
	}
	obj, err := pusher.ObjectData(f.Data)
	if err == nil {
		err = json.Unmarshal(obj, &req)
	}
	if err != nil || req.UserData == "" {
		return pusher.Errorf(pusher.CodeGeneric, "Invalid sign-in: user_data and auth must be strings")
	}
	app := c.App()
	want := app.Key + ":" + pusher.Sign(app.Secret, pusher.UserAuthMessage(c.ID(), req.UserData))
	if !pusher.EqualSignature(want, req.Auth) {
		return pusher.Errorf(pusher.CodeUnauthorized, "Invalid signature for sign-in")
	}
	var user struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal([]byte(req.UserData), &user); err != nil {
		return pusher.Errorf(pusher.CodeGeneric, "Invalid sign-in: user_data is not a JSON object")
	}
	id, ok := pusher.UserID(user.ID)
	if !ok {
		return pusher.Errorf(pusher.CodeGeneric, "Invalid sign-in: user_data needs an id")
	}
	watchlist, err := membership.WatchlistOf([]byte(req.UserData))
	if err != nil {
		return err
	}
	if !c.SetUserID(id) {
		return pusher.Errorf(pusher.CodeUnauthorized, "The socket is already signed in as another user")
	}
	h.channels.AddUser(c)
	body, _ := json.Marshal(struct {
		UserData string `json:"user_data"`
	}{req.UserData})
	h.membership.SignIn(ctx, c, id, watchlist, pusher.EncodeEvent("pusher:signin_success", "", pusher.StringData(body), ""))
	return nil
}

// clientEvent relays a client-* event to the other subscribers, under the
// rules of docs/architecture.md, "Client events and sign-in".
func (h *MessageHandler) clientEvent(ctx context.Context, c *connection.Conn, f pusher.Frame) error {
	app := c.App()
	if app.AcceptClientEventsFrom == apps.ClientEventsNone {
		return pusher.Errorf(pusher.CodeClientEventBlocked, "Client events are disabled for this app")
	}
	if f.Channel == "" {
		return pusher.Errorf(pusher.CodeClientEventBlocked, "Client event rejected: no channel")
	}
	if len(f.Event) > pusher.MaxEventNameLength {
		return pusher.Errorf(pusher.CodeClientEventBlocked, "Client event rejected: event name longer than %d characters", pusher.MaxEventNameLength)
	}
	kind := pusher.KindOf(f.Channel)
	switch {
	case kind.Encrypted:
		return pusher.Errorf(pusher.CodeClientEventBlocked, "Client events are not allowed on encrypted channels")
	case strings.HasPrefix(f.Channel, pusher.PrefixServerToUser):
		return pusher.Errorf(pusher.CodeClientEventBlocked, "Client events are not allowed on user channels")
	case !kind.Private && app.AcceptClientEventsFrom != apps.ClientEventsAll:
		return pusher.Errorf(pusher.CodeClientEventBlocked, "Client events are only allowed on private and presence channels")
	}
	if !c.Subscribed(f.Channel) {
		return pusher.Errorf(pusher.CodeClientEventBlocked, "Client event rejected: not subscribed to %s", clip(f.Channel))
	}
	if !c.AllowClientEvent(h.now()) {
		h.stats.RateLimited(app.ID)
		return pusher.Errorf(pusher.CodeClientEventBlocked, "Client event rejected: rate limit of %d per second exceeded", app.ClientEventsPerSecond)
	}
	ev := dispatcher.Event{Channels: []string{f.Channel}, Name: f.Event, Data: f.Data, Client: true}
	if ev.Data == nil {
		ev.Data = json.RawMessage("null")
	}
	if kind.Presence {
		ev.UserID = c.UserID()
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := h.dispatcher.Dispatch(ctx, app.ID, ev, c.ID()); err != nil {
		return err
	}
	if h.feed.Watching() {
		h.feed.Emit(console.Event{App: app.ID, Type: console.TypeClientEvent, Socket: c.ID(), Channel: f.Channel, Event: f.Event,
			User: ev.UserID, Data: console.Clip(string(ev.Data))})
	}
	h.webhooks.ClientEvent(ctx, app, f.Channel, f.Event, ev.Data, c.ID(), ev.UserID)
	return nil
}

// clip shortens client-supplied text echoed in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
