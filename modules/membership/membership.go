package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/console"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/stats"
	"github.com/fizz-server/fizz/scaling"
)

// MaxChannelsPerSocket bounds one socket's subscriptions, so that no client
// can grow the server's memory without bound by joining channels.
const MaxChannelsPerSocket = 1000

// maxRecoveries bounds how often one change waits for the shared state to
// be made whole again (scaling.ErrShareLost) before it gives up.
const maxRecoveries = 3

// Errors of Join, which the handlers answer with pusher:subscription_error.
var (
	// ErrTooManyChannels refuses a socket's subscription beyond MaxChannelsPerSocket.
	ErrTooManyChannels = fmt.Errorf("a socket may join at most %d channels", MaxChannelsPerSocket)
	// ErrChannelFull refuses a new member of a full presence channel.
	ErrChannelFull = scaling.ErrMembersLimit
	// ErrUnavailable refuses a presence subscription while the cluster's
	// shared state cannot be reached: its member list could not be exact.
	ErrUnavailable = errors.New("the presence state of the cluster is unavailable")
)

// Membership admits sockets and moves them in and out of channels, on this
// node and in the cluster's shared state, and announces what follows.
type Membership struct {
	channels *channels.Manager
	registry *connection.Registry
	state    scaling.State
	stats    *stats.Stats  // nil counts nothing
	feed     *console.Feed // nil reports nothing
	log      *slog.Logger
	counter  *counter
	counts   *counts

	// mu is the share lock (see the package doc).
	mu sync.RWMutex

	// usersMu guards the signed-in sockets of this node: their sessions,
	// the signed-in sockets per user (this node's share of
	// scaling.UsersChannel), the watchers of each user, the sign-in
	// deadlines and the largest Seq of UsersChannel seen per app.
	usersMu   sync.Mutex
	sessions  map[*connection.Conn]*session
	signedIn  map[appUser]int
	watchers  map[appUser]map[*connection.Conn]*watch
	deadlines map[*connection.Conn]*time.Timer
	usersSeen map[string]uint64
}

var _ scaling.ShareSource = (*Membership)(nil)

// New returns a Membership. It starts nothing: Run keeps the shared state
// and the counter going.
// Its transitions are reported to feed (nil: none) while a console watches.
func New(manager *channels.Manager, registry *connection.Registry, state scaling.State, st *stats.Stats, feed *console.Feed, log *slog.Logger) *Membership {
	m := &Membership{
		channels: manager, registry: registry, state: state, stats: st, feed: feed, log: log,
		sessions:  make(map[*connection.Conn]*session),
		signedIn:  make(map[appUser]int),
		watchers:  make(map[appUser]map[*connection.Conn]*watch),
		deadlines: make(map[*connection.Conn]*time.Timer),
		usersSeen: make(map[string]uint64),
	}
	m.counter = newCounter(m)
	m.counts = newCounts(m)
	return m
}

// Run keeps the shared state's upkeep (scaling.State.Run, with this
// node's share) and the subscription counter going until ctx ends. The
// counter then writes what is left before the upkeep stops (which drops
// this node's lease).
func (m *Membership) Run(ctx context.Context) {
	upkeep, stop := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.state.Run(upkeep, m, m.decided)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.counts.run(upkeep)
	}()
	m.counter.run(ctx)
	stop()
	wg.Wait()
}

// change runs f, a change of this node's share, under the share lock's
// read side: changes run side by side, never during WithShare.
func (m *Membership) change(f func()) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	f()
}

// recover has the shared state made whole after err, when err is
// scaling.ErrShareLost and attempt is not the last; it reports whether the
// change should be tried again.
func (m *Membership) recover(ctx context.Context, err error, attempt int) bool {
	if !errors.Is(err, scaling.ErrShareLost) || attempt >= maxRecoveries {
		return false
	}
	if err := m.state.Recover(ctx); err != nil {
		m.log.Warn("the shared state could not be made whole", "err", err)
		return false
	}
	return true
}

// WithShare implements scaling.ShareSource: it calls f with this node's
// share while no change of it is under way.
func (m *Membership) WithShare(f func(scaling.Share)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	share := scaling.Share{Connections: m.registry.Counts()}
	for _, h := range m.channels.Held() {
		share.Channels = append(share.Channels, scaling.ChannelShare{AppID: h.AppID, Channel: h.Channel, Subscriptions: h.Subscriptions, Seq: h.Seen})
		for _, mem := range h.Members {
			share.Presence = append(share.Presence, scaling.PresenceShare{AppID: h.AppID, Channel: h.Channel, UserID: mem.UserID, Info: mem.Info, Sockets: mem.Sockets})
		}
	}
	m.signedInShare(&share)
	f(share)
}

// Admit counts c against its app's cluster-wide connection cap and
// registers it. A shared state that cannot be reached admits the socket: a
// Redis outage must not lock clients out; the count is restored when the
// node re-asserts its share.
func (m *Membership) Admit(ctx context.Context, c *connection.Conn) *pusher.Error {
	app := c.App()
	for attempt := 0; ; attempt++ {
		var perr *pusher.Error
		var err error
		m.change(func() {
			switch err := m.registry.Add(c); {
			case errors.Is(err, connection.ErrFull):
				perr = pusher.Fatalf(pusher.CodeOverCapacity, "Over capacity")
				return
			case err != nil:
				perr = pusher.Fatalf(pusher.CodeGeneric, "Server is restarting")
				return
			}
			var ok bool
			ok, err = m.state.AddConnection(ctx, app.ID, app.MaxConnections)
			switch {
			case errors.Is(err, scaling.ErrShareLost):
				m.registry.Remove(c)
			case err != nil:
				m.log.Warn("counting a connection failed; admitting it", "err", err)
			case !ok:
				m.registry.Remove(c)
				perr = pusher.Fatalf(pusher.CodeOverQuota, "Application is over connection quota")
			}
		})
		if m.recover(ctx, err, attempt) {
			continue
		}
		if errors.Is(err, scaling.ErrShareLost) {
			// Admit rather than lock clients out; the count comes back
			// with the re-assert.
			m.change(func() { _ = m.registry.Add(c) })
		}
		if perr == nil && app.RequireSignin {
			m.requireSignin(c)
		}
		return perr
	}
}

// Release undoes Admit.
func (m *Membership) Release(ctx context.Context, c *connection.Conn) {
	for attempt := 0; ; attempt++ {
		var err error
		m.change(func() {
			err = m.state.RemoveConnection(ctx, c.App().ID)
			if !errors.Is(err, scaling.ErrShareLost) {
				m.registry.Remove(c)
			}
		})
		if m.recover(ctx, err, attempt) {
			continue
		}
		if err != nil {
			// The count comes right with the next re-assert.
			m.log.Warn("uncounting a connection failed", "err", err)
		}
		if errors.Is(err, scaling.ErrShareLost) {
			m.change(func() { m.registry.Remove(c) })
		}
		return
	}
}

// Join subscribes c to channel, as member on a presence channel (nil
// elsewhere), and answers the client with subscription_succeeded: on a
// presence channel with the cluster's member list, after which c hears
// exactly the member changes that list does not have. Subscribing again
// to a channel sends the answer again. Errors: ErrTooManyChannels,
// ErrChannelFull, ErrUnavailable, or one for the handler to log.
func (m *Membership) Join(ctx context.Context, c *connection.Conn, channel string, member *pusher.Member) error {
	kind := pusher.KindOf(channel)
	if c.Subscribed(channel) {
		if kind.Presence {
			return m.succeededAgain(ctx, c, channel)
		}
		c.Send(succeeded(channel))
		return nil
	}
	if c.ChannelCount() >= MaxChannelsPerSocket {
		return ErrTooManyChannels
	}
	if kind.Presence && member == nil {
		return fmt.Errorf("join %s: a presence channel needs a member", channel)
	}
	if !kind.Presence {
		app := c.App()
		var written <-chan struct{}
		m.change(func() {
			if app.SubscriptionCount {
				// No count reaches it before its answer.
				m.channels.SubscribePending(c, channel)
			} else {
				m.channels.Subscribe(c, channel, nil)
			}
			written = m.counter.touch(app.ID, channel)
		})
		// Counted in the cluster before the client hears it is in.
		wait(ctx, written)
		if !app.SubscriptionCount {
			c.Send(succeeded(channel))
			return nil
		}
		m.channels.Ready(c, channel, 0, succeeded(channel))
		if n, seq, ok := m.counts.latest(app.ID, channel); ok {
			m.channels.SendCount(c, channel, countFrame(channel, n), seq) // the next one follows the change
		}
		return nil
	}
	app := c.App()
	for attempt := 0; ; attempt++ {
		var snap scaling.Snapshot
		var ts []scaling.Transition
		var err error
		m.change(func() {
			// The subscription starts pending, so that member events
			// are held for it from before the state changes until the
			// member list is queued (Ready).
			m.channels.Subscribe(c, channel, member)
			snap, ts, err = m.state.JoinPresence(ctx, app.ID, channel, member.UserID, member.UserInfo, app.MaxPresenceMembers)
			if err != nil {
				m.channels.Unsubscribe(c, channel)
			}
		})
		if m.recover(ctx, err, attempt) {
			continue
		}
		switch {
		case errors.Is(err, scaling.ErrMembersLimit):
			return ErrChannelFull
		case err != nil:
			m.log.Warn("presence join failed", "channel", channel, "err", err)
			return ErrUnavailable
		}
		m.decided(ctx, ts)
		payload, err := succeededPresence(channel, snap.Members)
		if err != nil {
			m.channels.Ready(c, channel, snap.Seq, nil)
			return err
		}
		m.channels.Ready(c, channel, snap.Seq, payload)
		return nil
	}
}

// succeededAgain answers a repeated subscription to a presence channel
// with the member list as it is now.
func (m *Membership) succeededAgain(ctx context.Context, c *connection.Conn, channel string) error {
	for attempt := 0; ; attempt++ {
		snap, err := m.state.PresenceMembers(ctx, c.App().ID, channel)
		if m.recover(ctx, err, attempt) {
			continue
		}
		if err != nil {
			return err
		}
		payload, err := succeededPresence(channel, snap.Members)
		if err != nil {
			return err
		}
		m.channels.Ready(c, channel, snap.Seq, payload)
		return nil
	}
}

// Leave unsubscribes c from channel; leaving a channel it is not
// subscribed to does nothing.
//
// The socket leaves this node's channels first, then the shared state,
// which announces what follows: whoever hears member_removed and then asks
// any node for the channel's users no longer finds this socket's user
// there. A leave the state cannot take is remembered by the state, which
// announces it once it is whole again (after Recover, or its next
// heartbeat); it is not tried again, as the re-assert already wrote this
// node's share without it.
func (m *Membership) Leave(ctx context.Context, c *connection.Conn, channel string) {
	app := c.App()
	var ts []scaling.Transition
	var err error
	m.change(func() {
		user, ok := m.channels.Subscription(c, channel)
		m.channels.Unsubscribe(c, channel)
		switch {
		case !ok:
		case user == "":
			m.counter.touch(app.ID, channel)
		default:
			ts, err = m.state.LeavePresence(ctx, app.ID, channel, user)
		}
	})
	m.decided(ctx, ts)
	switch {
	case errors.Is(err, scaling.ErrShareLost):
		if err := m.state.Recover(ctx); err != nil {
			m.log.Warn("the shared state could not be made whole", "err", err)
		}
	case err != nil:
		m.log.Warn("presence leave failed; the shared state announces it later", "channel", channel, "err", err)
	}
}

// Disconnect takes a finished socket out of every channel it was in,
// then out of the index of sockets by user, and signs it out.
func (m *Membership) Disconnect(ctx context.Context, c *connection.Conn) {
	for _, channel := range c.Channels() {
		m.Leave(ctx, c, channel)
	}
	m.channels.Disconnect(c)
	m.signOut(ctx, c)
}

// decided acts on the transitions this node decided: each is counted,
// and logged at debug level. The member transitions were published by the
// shared state already.
func (m *Membership) decided(ctx context.Context, ts []scaling.Transition) {
	for _, t := range ts {
		if t.Channel == scaling.UsersChannel {
			if kind := userTransition(t.Kind); kind != "" {
				m.stats.Transition(t.AppID, kind)
			}
			continue
		}
		m.stats.Transition(t.AppID, string(t.Kind))
		if m.feed.Watching() {
			m.feed.Emit(console.Event{App: t.AppID, Type: string(t.Kind), Channel: t.Channel, User: t.UserID, Count: int64(t.Count)})
		}
		switch t.Kind {
		case scaling.MemberAdded:
			m.stats.EventTriggered(t.AppID, pusher.EventMemberAdded, false)
		case scaling.MemberRemoved:
			m.stats.EventTriggered(t.AppID, pusher.EventMemberRemoved, false)
		}
		if m.log.Enabled(ctx, slog.LevelDebug) {
			m.log.Debug("transition", "app_id", t.AppID, "channel", t.Channel, "kind", t.Kind,
				"user_id", t.UserID, "count", t.Count, "seq", t.Seq)
		}
	}
}

// userTransition names a transition of scaling.UsersChannel for the
// metrics: a user online or offline ("" for the other kinds there, which
// count nothing).
func userTransition(kind scaling.TransitionKind) string {
	switch kind {
	case scaling.MemberAdded:
		return "user_online"
	case scaling.MemberRemoved:
		return "user_offline"
	}
	return ""
}
