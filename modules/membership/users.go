package membership

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// MaxWatchlist bounds the users one sign-in may watch, as Pusher does.
const MaxWatchlist = 100

// EventWatchlist carries a watchlist's online and offline events.
const EventWatchlist = "pusher_internal:watchlist_events"

// appUser names one user of one app.
type appUser struct{ appID, userID string }

// session is a signed-in socket (pusher:signin) of this node.
type session struct {
	user  appUser
	watch *watch // nil without a watchlist
}

// watch is a signed-in socket's watchlist. Like a presence subscription
// it starts pending: online and offline events are held until the list of
// the watched users online now has been sent (at Seq after), then those
// numbered after or less are dropped. All of an app's are numbered on one
// channel, scaling.UsersChannel.
type watch struct {
	users   []string
	pending bool
	held    []watchEvent
	after   uint64
}

// watchEvent is one online or offline event of a watched user.
type watchEvent struct {
	frame []byte
	seq   uint64
}

// watchFrame is a pusher_internal:watchlist_events frame of one event.
func watchFrame(name string, users []string) []byte {
	type entry struct {
		Name    string   `json:"name"`
		UserIDs []string `json:"user_ids"`
	}
	var body struct {
		Events []entry `json:"events"`
	}
	body.Events = []entry{}
	if len(users) > 0 {
		body.Events = append(body.Events, entry{Name: name, UserIDs: users})
	}
	data, _ := json.Marshal(body) // strings only: never fails
	return pusher.EncodeEvent(EventWatchlist, "", pusher.StringData(data), "")
}

// requireSignin closes c with 4009 unless it signs in within its app's
// SigninTimeout. Admit calls it for apps that require sign-in.
func (m *Membership) requireSignin(c *connection.Conn) {
	app := c.App()
	t := time.AfterFunc(app.SigninTimeout, func() {
		m.usersMu.Lock()
		_, signed := m.sessions[c]
		delete(m.deadlines, c)
		m.usersMu.Unlock()
		if !signed {
			c.Close(pusher.Fatalf(pusher.CodeUnauthorized, "Connection not authorized: no sign-in within %s", app.SigninTimeout))
		}
	})
	m.usersMu.Lock()
	m.deadlines[c] = t
	m.usersMu.Unlock()
}

// SignIn makes c a signed-in socket of userID (pusher:signin, already
// checked by the handler): the user is online while any such socket is
// open anywhere in the cluster. It sends success (pusher:signin_success),
// then, with a watchlist, the watched users online now as one
// watchlist_events frame, after which c hears each watched user come
// online and go offline. Signing in again as the same user changes
// nothing but the answer.
func (m *Membership) SignIn(ctx context.Context, c *connection.Conn, userID string, watchlist []string, success []byte) {
	app := c.App()
	user := appUser{app.ID, userID}
	for attempt := 0; ; attempt++ {
		var ts []scaling.Transition
		var err error
		var again bool
		m.change(func() {
			var s *session
			if s, again = m.join(c, user, watchlist); again {
				return
			}
			ts, err = m.state.SignIn(ctx, app.ID, userID)
			if errors.Is(err, scaling.ErrShareLost) {
				m.part(c, s)
			}
		})
		if again {
			c.Send(success)
			return
		}
		if m.recover(ctx, err, attempt) {
			continue
		}
		if err != nil {
			// Signed in on this node all the same: the re-assert counts
			// the user in and announces them.
			m.log.Warn("sign-in not counted in the cluster yet", "user_id", userID, "err", err)
			if errors.Is(err, scaling.ErrShareLost) {
				m.change(func() { m.join(c, user, watchlist) })
			}
		}
		m.decided(ctx, ts)
		break
	}
	c.Send(success)
	if len(watchlist) > 0 {
		m.sendWatchlist(ctx, c, watchlist)
	}
}

// join records c's session (and watchlist); it reports the session and
// whether c was signed in already (then nothing changes). Caller holds
// the share lock's read side.
func (m *Membership) join(c *connection.Conn, user appUser, watchlist []string) (*session, bool) {
	m.usersMu.Lock()
	defer m.usersMu.Unlock()
	if s := m.sessions[c]; s != nil {
		return s, true
	}
	if t := m.deadlines[c]; t != nil {
		t.Stop()
		delete(m.deadlines, c)
	}
	s := &session{user: user}
	if len(watchlist) > 0 {
		s.watch = &watch{users: watchlist, pending: true}
		for _, u := range watchlist {
			key := appUser{user.appID, u}
			set := m.watchers[key]
			if set == nil {
				set = make(map[*connection.Conn]*watch)
				m.watchers[key] = set
			}
			set[c] = s.watch
		}
	}
	m.sessions[c] = s
	m.signedIn[user]++
	return s, false
}

// part forgets c's session and reports it (nil when c had none). Caller
// holds the share lock's read side.
func (m *Membership) part(c *connection.Conn, s *session) *session {
	m.usersMu.Lock()
	defer m.usersMu.Unlock()
	if t := m.deadlines[c]; t != nil {
		t.Stop()
		delete(m.deadlines, c)
	}
	if s == nil {
		s = m.sessions[c]
	}
	if s == nil || m.sessions[c] != s {
		return nil
	}
	delete(m.sessions, c)
	if m.signedIn[s.user]--; m.signedIn[s.user] <= 0 {
		delete(m.signedIn, s.user)
	}
	if s.watch != nil {
		for _, u := range s.watch.users {
			key := appUser{s.user.appID, u}
			delete(m.watchers[key], c)
			if len(m.watchers[key]) == 0 {
				delete(m.watchers, key)
			}
		}
	}
	return s
}

// signOut ends c's session, if it had one: the user's last signed-in
// socket anywhere makes them offline. A sign-out the state cannot take is
// announced by the state once it is whole (as a presence leave is).
func (m *Membership) signOut(ctx context.Context, c *connection.Conn) {
	var ts []scaling.Transition
	var err error
	m.change(func() {
		s := m.part(c, nil)
		if s == nil {
			return
		}
		ts, err = m.state.SignOut(ctx, s.user.appID, s.user.userID)
	})
	m.decided(ctx, ts)
	switch {
	case errors.Is(err, scaling.ErrShareLost):
		if err := m.state.Recover(ctx); err != nil {
			m.log.Warn("the shared state could not be made whole", "err", err)
		}
	case err != nil:
		m.log.Warn("sign-out not counted in the cluster yet", "err", err)
	}
}

// sendWatchlist sends c the watched users online now and ends its
// watch's wait: the events held meanwhile that the list does not have
// follow it, in order.
func (m *Membership) sendWatchlist(ctx context.Context, c *connection.Conn, watchlist []string) {
	app := c.App()
	var online []string
	var seq uint64
	var err error
	for attempt := 0; ; attempt++ {
		online, seq, err = m.state.Online(ctx, app.ID, watchlist)
		if !m.recover(ctx, err, attempt) {
			break
		}
	}
	if err != nil {
		// No list to send: release what was held, unfiltered, rather
		// than hold it until the socket overflows.
		m.log.Warn("reading the watched users online failed", "err", err)
		online, seq = nil, 0
	}
	m.usersMu.Lock()
	defer m.usersMu.Unlock()
	m.usersSeen[app.ID] = max(m.usersSeen[app.ID], seq)
	s := m.sessions[c]
	if s == nil || s.watch == nil {
		return
	}
	w := s.watch
	c.Send(watchFrame("online", online))
	w.after = max(w.after, seq)
	held := w.held
	w.held, w.pending = nil, false
	for _, e := range held {
		if e.seq == 0 || e.seq > w.after {
			c.SendFrame(e.frame)
		}
	}
}

// watched delivers a watched user's online or offline event to this
// node's watchers of that user, in step with each one's list.
func (m *Membership) watched(appID string, ev scaling.MemberEvent, seq uint64) int {
	name := "offline"
	if ev.Added {
		name = "online"
	}
	frame := connection.TextFrame(watchFrame(name, []string{ev.UserID}))
	m.usersMu.Lock()
	defer m.usersMu.Unlock()
	m.usersSeen[appID] = max(m.usersSeen[appID], seq)
	n := 0
	for c, w := range m.watchers[appUser{appID, ev.UserID}] {
		switch {
		case w.pending:
			if len(w.held) >= maxHeldWatch {
				w.held, w.pending = nil, false
				c.Close(pusher.Fatalf(pusher.CodeOverCapacity, "Over capacity"))
				continue
			}
			w.held = append(w.held, watchEvent{frame: frame, seq: seq})
		case seq != 0 && seq <= w.after:
			continue
		default:
			c.SendFrame(frame)
		}
		n++
	}
	return n
}

// maxHeldWatch bounds the events held for one pending watchlist.
const maxHeldWatch = connection.QueueSize

// signedInShare lists this node's signed-in users, for the re-assert.
// Caller holds the share lock.
func (m *Membership) signedInShare(share *scaling.Share) {
	m.usersMu.Lock()
	defer m.usersMu.Unlock()
	sockets := make(map[string]int)
	for u, n := range m.signedIn {
		share.Presence = append(share.Presence, scaling.PresenceShare{AppID: u.appID, Channel: scaling.UsersChannel, UserID: u.userID, Sockets: n})
		sockets[u.appID] += n
	}
	for appID, n := range sockets {
		share.Channels = append(share.Channels, scaling.ChannelShare{AppID: appID, Channel: scaling.UsersChannel, Subscriptions: n, Seq: m.usersSeen[appID]})
	}
}

// WatchlistOf parses a sign-in's user data for its watchlist: at most
// MaxWatchlist user ids, strings or numbers (numbers become their text).
func WatchlistOf(userData []byte) ([]string, error) {
	var data struct {
		Watchlist []json.RawMessage `json:"watchlist"`
	}
	if err := json.Unmarshal(userData, &data); err != nil {
		return nil, pusher.Errorf(pusher.CodeGeneric, "Invalid sign-in: user_data is not a JSON object")
	}
	if len(data.Watchlist) > MaxWatchlist {
		return nil, pusher.Errorf(pusher.CodeGeneric, "Invalid sign-in: a watchlist holds at most %d user ids, not %d", MaxWatchlist, len(data.Watchlist))
	}
	out := make([]string, 0, len(data.Watchlist))
	seen := make(map[string]bool, len(data.Watchlist))
	for _, raw := range data.Watchlist {
		id, ok := pusher.UserID(raw)
		if !ok {
			return nil, pusher.Errorf(pusher.CodeGeneric, "Invalid sign-in: watchlist entries must be user ids")
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// SignedInAs reports whether c has signed in (pusher:signin) as userID.
func (m *Membership) SignedInAs(c *connection.Conn, userID string) bool {
	m.usersMu.Lock()
	defer m.usersMu.Unlock()
	s := m.sessions[c]
	return s != nil && s.user.userID == userID
}
