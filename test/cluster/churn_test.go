package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// Churn sizes. Each seed plays churnBatches batches of churnBatchMin to
// churnBatchMax operations that start at the same moment, on fresh nodes.
const (
	churnSeeds    = 20
	churnUsers    = 30
	churnChannels = 3
	churnBatches  = 20
	churnBatchMin = 4
	churnBatchMax = 8
	// churnCheckEvery is how many batches pass between full checks of
	// the nodes' member lists and counts.
	churnCheckEvery = 10
	// churnPerNode caps one user's open sockets on one node.
	churnPerNode = 2
)

// churnBaseSeed returns CLUSTER_CHURN_SEED when set (one seed, to replay a
// failure), else a fresh base seed from which the test derives its seeds.
func churnBaseSeed(t *testing.T) (seed uint64, replay bool) {
	if s := os.Getenv("CLUSTER_CHURN_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CLUSTER_CHURN_SEED")
		return seed, true
	}
	return rand.Uint64(), false
}

// churnSocket is one socket of a user. A socket joins presence channels
// only as its user; it may be on several channels at once.
type churnSocket struct {
	user string
	at   int // index in the run's nodes
	c    *pusherclient.Client
	subs map[int]bool // the channels it is subscribed to
}

// churnKind is what an operation does.
type churnKind int

const (
	churnJoin  churnKind = iota // subscribe as the socket's user
	churnUnsub                  // unsubscribe
	churnClose                  // close the socket: it leaves every channel
)

func (k churnKind) String() string {
	return [...]string{"join", "unsubscribe", "close"}[k]
}

// churnOp is one operation of a batch. Every op of a batch is on a
// different socket, so the ops commute on the truth's counts.
type churnOp struct {
	kind   churnKind
	s      *churnSocket
	ch     int // join and unsubscribe
	answer pusherclient.Frame
	err    error
}

// do performs the op, then waits for what proves its member event (if
// any) published: the pong after a join or an unsubscribe (the server
// handles a socket's frames in order). A close is waited for by the
// caller, through the connection count.
func (op *churnOp) do(channel string) error {
	c := op.s.c
	switch op.kind {
	case churnJoin:
		f, err := trySubscribePresence(c, channel, op.s.user)
		if err != nil {
			return err
		}
		op.answer = f
		if f.Event != pusher.EventSubscriptionSucceeded {
			return fmt.Errorf("subscription refused: %s", f)
		}
		return c.Ping()
	case churnUnsub:
		if err := c.Unsubscribe(channel); err != nil {
			return err
		}
		return c.Ping()
	default:
		return c.Close()
	}
}

// churnObserver is a socket subscribed to one channel for the whole seed,
// and the member list it has built from its events, in arrival order.
type churnObserver struct {
	name  string // "observer-<node>-<channel>", its user id
	label string // its name and node, for messages
	ch    int
	at    int
	c     *pusherclient.Client
	view  map[string]bool
	start map[string]bool // the view when the churn began
	// added and removed count the member events since the churn began;
	// net is added minus removed, per user.
	added, removed int
	net            map[string]int
}

// memberChange is a member event as an observer heard it.
type memberChange struct {
	added bool
	user  string
}

func (m memberChange) String() string {
	if m.added {
		return "+" + m.user
	}
	return "-" + m.user
}

// churnRun is one seed's churn over nodes. The truth is kept here: per
// channel, the number of sockets subscribed as each user.
type churnRun struct {
	t         *testing.T
	seed      uint64
	rng       *rand.Rand
	nodes     []*node
	channels  []string
	users     []string
	sockets   map[string][]*churnSocket // the open sockets of each user
	count     []map[string]int          // per channel: user -> subscribed sockets
	observers []*churnObserver
	round     int

	// Statistics, logged at the end.
	ops, joins, unsubs, closes int
	sameUser                   int // batches where two sockets of one user acted on one channel
	swaps                      int // ... one leaving while another joined
	twoNodes                   map[string]bool
}

// where names the seed and round for failure messages.
func (r *churnRun) where() string {
	return fmt.Sprintf("seed %d (CLUSTER_CHURN_SEED=%d replays it), round %d", r.seed, r.seed, r.round)
}

// observerUsers are the user ids of ch's observers.
func (r *churnRun) observerUsers(ch int) []string {
	var out []string
	for _, o := range r.observers {
		if o.ch == ch {
			out = append(out, o.name)
		}
	}
	return out
}

// truth is the sorted member list of ch: its observers and every user
// with a subscribed socket.
func (r *churnRun) truth(ch int) []string {
	out := r.observerUsers(ch)
	for u, n := range r.count[ch] {
		if n > 0 {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// openSockets counts every open socket of the seed, observers included
// (not the sockets planned but never dialled).
func (r *churnRun) openSockets() int {
	total := len(r.observers)
	for _, socks := range r.sockets {
		for _, s := range socks {
			if s.c != nil {
				total++
			}
		}
	}
	return total
}

// subscribed returns u's sockets on ch that no op of the batch uses yet.
func (r *churnRun) subscribed(u string, ch int, busy map[*churnSocket]bool) []*churnSocket {
	var out []*churnSocket
	for _, s := range r.sockets[u] {
		if s.subs[ch] && !busy[s] {
			out = append(out, s)
		}
	}
	return out
}

// free returns a socket of u on node at that can join ch in this batch:
// an open one not on ch, else a new one (dialled before the batch starts)
// while u has fewer than churnPerNode sockets there; nil if none.
func (r *churnRun) free(u string, ch, at int, busy map[*churnSocket]bool) *churnSocket {
	here := 0
	for _, s := range r.sockets[u] {
		if s.at != at {
			continue
		}
		here++
		if !s.subs[ch] && !busy[s] {
			return s
		}
	}
	if here >= churnPerNode {
		return nil
	}
	s := &churnSocket{user: u, at: at, subs: map[int]bool{}}
	r.sockets[u] = append(r.sockets[u], s)
	return s
}

// leave is an op that takes s off ch: unsubscribing, or now and then
// closing the socket (which takes it off its other channels too).
func (r *churnRun) leave(s *churnSocket, ch int) *churnOp {
	if r.rng.IntN(10) < 3 {
		return &churnOp{kind: churnClose, s: s}
	}
	return &churnOp{kind: churnUnsub, s: s, ch: ch}
}

// otherNode returns a node index other than at (at itself when the run
// has one node index only).
func (r *churnRun) otherNode(at int) int {
	if len(r.nodes) == 1 {
		return at
	}
	return (at + 1 + r.rng.IntN(len(r.nodes)-1)) % len(r.nodes)
}

// pickMember returns a user with a subscribed socket on ch that the batch
// does not use yet, preferring users with exactly one subscribed socket
// (whose leave and another socket's join race on member events); "" if
// none.
func (r *churnRun) pickMember(ch int, busy map[*churnSocket]bool, minSockets int) string {
	var one, more []string
	for _, u := range r.users {
		free := len(r.subscribed(u, ch, busy))
		switch {
		case free < minSockets:
		case r.count[ch][u] == 1:
			one = append(one, u)
		default:
			more = append(more, u)
		}
	}
	if len(one) > 0 && (len(more) == 0 || r.rng.IntN(100) < 80) {
		return one[r.rng.IntN(len(one))]
	}
	if len(more) > 0 {
		return more[r.rng.IntN(len(more))]
	}
	return ""
}

// plan picks the next batch. Most of it is made of pairs of ops by two
// sockets of one user on one channel: one leaving on a node while another
// joins on another node, or two joining, or two leaving, at once.
func (r *churnRun) plan() []*churnOp {
	size := churnBatchMin + r.rng.IntN(churnBatchMax-churnBatchMin+1)
	busy := map[*churnSocket]bool{}
	var ops []*churnOp
	add := func(more ...*churnOp) {
		for _, op := range more {
			busy[op.s] = true
		}
		ops = append(ops, more...)
	}
	for tries := 0; len(ops) < size && tries < 100; tries++ {
		ch := r.rng.IntN(len(r.channels))
		switch p := r.rng.IntN(100); {
		case p < 50: // one socket of u leaves while another joins elsewhere
			u := r.pickMember(ch, busy, 1)
			if u == "" {
				continue
			}
			socks := r.subscribed(u, ch, busy)
			s1 := socks[r.rng.IntN(len(socks))]
			if s2 := r.free(u, ch, r.otherNode(s1.at), busy); s2 != nil {
				add(r.leave(s1, ch), &churnOp{kind: churnJoin, s: s2, ch: ch})
			}
		case p < 65: // two sockets of u join at once on two nodes
			u := r.users[r.rng.IntN(len(r.users))]
			at := r.rng.IntN(len(r.nodes))
			s1 := r.free(u, ch, at, busy)
			if s1 == nil {
				continue
			}
			busy[s1] = true
			s2 := r.free(u, ch, r.otherNode(at), busy)
			delete(busy, s1)
			if s2 != nil {
				add(&churnOp{kind: churnJoin, s: s1, ch: ch}, &churnOp{kind: churnJoin, s: s2, ch: ch})
			}
		case p < 75: // two sockets of u leave at once
			u := r.pickMember(ch, busy, 2)
			if u == "" {
				continue
			}
			socks := r.subscribed(u, ch, busy)
			r.rng.Shuffle(len(socks), func(i, j int) { socks[i], socks[j] = socks[j], socks[i] })
			add(r.leave(socks[0], ch), r.leave(socks[1], ch))
		case p < 88: // someone joins; every third user on a second node
			i := r.rng.IntN(len(r.users))
			u, at := r.users[i], r.rng.IntN(len(r.nodes))
			if socks := r.subscribed(u, ch, nil); i%3 == 0 && len(socks) > 0 {
				at = r.otherNode(socks[0].at)
			}
			if s := r.free(u, ch, at, busy); s != nil {
				add(&churnOp{kind: churnJoin, s: s, ch: ch})
			}
		default: // someone leaves
			var socks []*churnSocket
			for _, u := range r.users {
				socks = append(socks, r.subscribed(u, ch, busy)...)
			}
			if len(socks) > 0 {
				add(r.leave(socks[r.rng.IntN(len(socks))], ch))
			}
		}
	}
	return ops
}

// batchEffect is what a batch did to one user on one channel.
type batchEffect struct {
	before, joins, leaves int
	ops                   []string // "join on B", "close on A", …
}

// maxRemoved is how many member_removed the batch can cause for the user:
// the count hits zero once after its first before leaves, and once more
// for each further leave (each after a join).
func (e batchEffect) maxRemoved() int {
	if e.leaves == 0 || e.leaves < e.before {
		return 0
	}
	return e.leaves - e.before + 1
}

// run executes ops at once, each on its own goroutine, released
// together, and folds them into the truth. It returns what the batch did,
// per channel and user.
func (r *churnRun) run(ops []*churnOp) []map[string]*batchEffect {
	t := r.t
	for _, op := range ops {
		if op.s.c == nil {
			op.s.c = harness.Dial(t, r.nodes[op.s.at])
		}
	}
	effects := make([]map[string]*batchEffect, len(r.channels))
	for ch := range effects {
		effects[ch] = map[string]*batchEffect{}
	}
	effect := func(ch int, u string) *batchEffect {
		e := effects[ch][u]
		if e == nil {
			e = &batchEffect{before: r.count[ch][u]}
			effects[ch][u] = e
		}
		return e
	}
	closes := 0
	for _, op := range ops {
		at := r.nodes[op.s.at].name
		switch op.kind {
		case churnJoin:
			e := effect(op.ch, op.s.user)
			e.joins++
			e.ops = append(e.ops, "join on "+at)
		case churnUnsub:
			e := effect(op.ch, op.s.user)
			e.leaves++
			e.ops = append(e.ops, "unsubscribe on "+at)
		case churnClose:
			closes++
			for ch := range op.s.subs {
				e := effect(ch, op.s.user)
				e.leaves++
				e.ops = append(e.ops, "close on "+at)
			}
		}
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, op := range ops {
		wg.Go(func() {
			<-start
			op.err = op.do(r.channels[op.ch])
		})
	}
	close(start)
	wg.Wait()

	for _, op := range ops {
		where := fmt.Sprintf("%s: socket %s of %s on %s", r.where(), op.s.c.SocketID, op.s.user, r.nodes[op.s.at])
		require.NoError(t, op.err, "%s: %s (channel %s)", where, op.kind, r.channels[op.ch])
		switch op.kind {
		case churnJoin:
			r.count[op.ch][op.s.user]++
			op.s.subs[op.ch] = true
		case churnUnsub:
			r.count[op.ch][op.s.user]--
			delete(op.s.subs, op.ch)
		case churnClose:
			for ch := range op.s.subs {
				r.count[ch][op.s.user]--
			}
			op.s.subs = nil
			r.sockets[op.s.user] = slices.DeleteFunc(r.sockets[op.s.user], func(s *churnSocket) bool { return s == op.s })
		}
	}
	// Each joiner's list is a snapshot taken during the batch: it has the
	// joiner, and every user the batch did not touch is as the truth says.
	for _, op := range ops {
		if op.kind != churnJoin {
			continue
		}
		list := map[string]bool{}
		for _, id := range members(t, op.answer) {
			list[id] = true
		}
		where := fmt.Sprintf("%s: the member list of socket %s of %s joining %s on %s", r.where(), op.s.c.SocketID, op.s.user, r.channels[op.ch], r.nodes[op.s.at])
		assert.True(t, list[op.s.user], "%s lacks the joiner: %v", where, sorted(list))
		for _, u := range r.truth(op.ch) {
			if effects[op.ch][u] == nil {
				assert.True(t, list[u], "%s lacks %s, a member all along: %v", where, u, sorted(list))
			}
		}
		for u := range list {
			if effects[op.ch][u] == nil {
				assert.Contains(t, r.truth(op.ch), u, "%s has %s, not a member", where, u)
			}
		}
	}
	if closes > 0 {
		// A closed socket is uncounted after its member_removed is
		// published: wait for it before anything else.
		waitConnections(t, r.nodes[r.round%len(r.nodes)], r.openSockets())
	}
	r.tally(ops, effects)
	return effects
}

// tally adds a batch to the statistics.
func (r *churnRun) tally(ops []*churnOp, effects []map[string]*batchEffect) {
	r.ops += len(ops)
	for _, op := range ops {
		switch op.kind {
		case churnJoin:
			r.joins++
		case churnUnsub:
			r.unsubs++
		default:
			r.closes++
		}
	}
	same, swap := false, false
	for _, perUser := range effects {
		for _, e := range perUser {
			same = same || e.joins+e.leaves > 1
			swap = swap || (e.joins > 0 && e.leaves > 0)
		}
	}
	if same {
		r.sameUser++
	}
	if swap {
		r.swaps++
	}
	for u, socks := range r.sockets {
		at := map[int]bool{}
		for _, s := range socks {
			if len(s.subs) > 0 {
				at[s.at] = true
			}
		}
		if len(at) > 1 {
			r.twoNodes[u] = true
		}
	}
}

// takeMemberChanges removes the member events on channel from c's inbox
// and returns them in arrival order.
func takeMemberChanges(t testing.TB, c *pusherclient.Client, channel string) []memberChange {
	t.Helper()
	var out []memberChange
	for range len(c.Pending()) {
		f, err := c.ExpectFunc(func(f pusherclient.Frame) bool {
			return f.Channel == channel && (f.Event == memberAdded || f.Event == memberRemoved)
		}, 0)
		if err != nil {
			break
		}
		out = append(out, memberChange{added: f.Event == memberAdded, user: memberID(t, f)})
	}
	return out
}

// flushAll is a barrier on every channel: once it returns, every member
// event published so far is in the observers' inboxes.
func (r *churnRun) flushAll() {
	for ch, name := range r.channels {
		var clients []*pusherclient.Client
		for _, o := range r.observers {
			if o.ch == ch {
				clients = append(clients, o.c)
			}
		}
		harness.Flush(r.t, r.nodes[(r.round+ch)%len(r.nodes)], name, clients...)
	}
}

// check folds the member events each observer heard during the batch into
// its view, in arrival order, and checks them against what the batch did:
// no member_added for a user in the view, no member_removed for one not in
// it, no more member_removed than the batch can cause, the view equal to
// the truth after the batch, and the same events on every observer of a
// channel.
func (r *churnRun) check(effects []map[string]*batchEffect) {
	t := r.t
	r.flushAll()
	heard := map[*churnObserver]map[string][]memberChange{}
	for _, o := range r.observers {
		perUser := map[string][]memberChange{}
		heard[o] = perUser
		changes := takeMemberChanges(t, o.c, r.channels[o.ch])
		for _, m := range changes {
			perUser[m.user] = append(perUser[m.user], m)
			e := effects[o.ch][m.user]
			if e == nil {
				e = &batchEffect{before: r.count[o.ch][m.user]}
			}
			what := fmt.Sprintf("%s: %s heard %v (all it heard in this batch: %v); before the batch %s had %d sockets on %s, the batch did %v",
				r.where(), o.label, m, changes, m.user, e.before, r.channels[o.ch], e.ops)
			if m.added {
				assert.False(t, o.view[m.user], "%s: member_added for a user already in its view", what)
				o.view[m.user] = true
				o.added++
				o.net[m.user]++
			} else {
				assert.True(t, o.view[m.user], "%s: member_removed for a user not in its view", what)
				delete(o.view, m.user)
				o.removed++
				o.net[m.user]--
			}
		}
		for u, ms := range perUser {
			e := effects[o.ch][u]
			if e == nil {
				e = &batchEffect{}
			}
			removed := 0
			for _, m := range ms {
				if !m.added {
					removed++
				}
			}
			assert.LessOrEqual(t, removed, e.maxRemoved(), "%s: %s heard %v for %s; the batch did %v (%d sockets before), which can cause at most %d member_removed",
				r.where(), o.label, ms, u, e.ops, e.before, e.maxRemoved())
		}
		assert.Equal(t, r.truth(o.ch), sorted(o.view), "%s: the view of %s after the batch (events heard: %v)", r.where(), o.label, changes)
	}
	// Every observer of a channel hears the same changes of each user.
	for ch := range r.channels {
		var first *churnObserver
		for _, o := range r.observers {
			if o.ch != ch {
				continue
			}
			if first == nil {
				first = o
				continue
			}
			users := map[string]bool{}
			for u := range heard[o] {
				users[u] = true
			}
			for u := range heard[first] {
				users[u] = true
			}
			for u := range users {
				assert.Equal(t, heard[first][u], heard[o][u], "%s: %s and %s heard different member events for %s", r.where(), first.label, o.label, u)
			}
		}
	}
}

// checkCounts checks user_count and the users of every channel through
// every node against the truth (extra members added).
func (r *churnRun) checkCounts(extra ...string) {
	t := r.t
	for ch, name := range r.channels {
		want := append(r.truth(ch), extra...)
		sort.Strings(want)
		for _, n := range r.nodes {
			assert.Equal(t, len(want), userCount(t, n, name), "%s: user_count of %s through %s", r.where(), name, n)
			assert.Equal(t, want, channelUsers(t, n, name), "%s: the users of %s through %s", r.where(), name, n)
		}
	}
}

// checkNodes checks the counts, then gives a fresh socket on each node the
// member list of each channel. It joins as that node's observer of the
// channel: a socket of a member already there announces nothing, when it
// comes or when it goes.
func (r *churnRun) checkNodes() {
	t := r.t
	r.checkCounts()
	for _, o := range r.observers {
		fresh := harness.Dial(t, r.nodes[o.at])
		name := r.channels[o.ch]
		f, err := trySubscribePresence(fresh, name, o.name)
		require.NoError(t, err, "%s: a fresh subscriber to %s on %s", r.where(), name, r.nodes[o.at])
		assert.Equal(t, r.truth(o.ch), members(t, f), "%s: the member list of a fresh subscriber to %s on %s", r.where(), name, r.nodes[o.at])
		require.NoError(t, fresh.Close())
	}
	waitConnections(t, r.nodes[r.round%len(r.nodes)], r.openSockets())
}

// stopOnFailure ends the seed once something failed: later rounds would
// only repeat it.
func (r *churnRun) stopOnFailure() {
	if r.t.Failed() {
		r.t.FailNow()
	}
}

// runChurnSeed plays one seed on nodes.
func runChurnSeed(t *testing.T, seed uint64, index int, nodes []*node) {
	r := &churnRun{
		t:        t,
		seed:     seed,
		rng:      rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		nodes:    nodes,
		sockets:  map[string][]*churnSocket{},
		count:    make([]map[string]int, churnChannels),
		twoNodes: map[string]bool{},
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d failed; replay it with CLUSTER_CHURN_SEED=%d", seed, seed)
		}
	})
	for ch := range r.count {
		r.count[ch] = map[string]int{}
		r.channels = append(r.channels, fmt.Sprintf("presence-churn-%d-%d", index, ch))
	}
	for u := range churnUsers {
		r.users = append(r.users, fmt.Sprintf("user-%02d", u))
	}

	// One observer per node and channel, joined one after the other.
	for at, n := range nodes {
		for ch, name := range r.channels {
			o := &churnObserver{name: fmt.Sprintf("observer-%d-%d", at, ch), ch: ch, at: at, c: harness.Dial(t, n), view: map[string]bool{}, net: map[string]int{}}
			o.label = fmt.Sprintf("%s (on node %s)", o.name, n)
			for _, id := range join(t, o.c, name, o.name) {
				o.view[id] = true
			}
			r.observers = append(r.observers, o)
		}
	}
	// Each hears the later ones arrive; from here on all hear the same.
	r.flushAll()
	for _, o := range r.observers {
		for _, m := range takeMemberChanges(t, o.c, r.channels[o.ch]) {
			require.True(t, m.added, "%s: %s heard %v while the observers joined", r.where(), o.label, m)
			require.False(t, o.view[m.user], "%s: %s heard %v, already in its view", r.where(), o.label, m)
			o.view[m.user] = true
		}
		require.Equal(t, r.truth(o.ch), sorted(o.view), "%s: the view of %s once the observers joined", r.where(), o.label)
		o.start = map[string]bool{}
		for id := range o.view {
			o.start[id] = true
		}
	}

	for r.round = 1; r.round <= churnBatches; r.round++ {
		r.check(r.run(r.plan()))
		r.stopOnFailure()
		if r.round%churnCheckEvery == 0 || r.round == churnBatches {
			r.checkNodes()
			r.stopOnFailure()
		}
	}

	// The last batch: every user socket closes at once.
	var last []*churnOp
	for _, u := range r.users {
		for _, s := range r.sockets[u] {
			if s.c != nil {
				last = append(last, &churnOp{kind: churnClose, s: s})
			}
		}
	}
	r.check(r.run(last))
	r.stopOnFailure()
	for ch := range r.channels {
		require.Equal(t, r.observerUsers(ch), r.truth(ch), "%s: everyone but the observers left", r.where())
	}

	// Over the whole run, each observer heard each user arrive and leave
	// as the truth did, and as much as every other observer of its channel.
	for _, o := range r.observers {
		for _, u := range r.users {
			assert.Equal(t, 0, o.net[u], "%s: member_added minus member_removed of %s heard by %s (absent at the start and at the end)", r.where(), u, o.label)
		}
		for _, other := range r.observers {
			if other.ch == o.ch {
				assert.Equal(t, o.added, other.added, "%s: member_added heard by %s and by %s", r.where(), o.label, other.label)
				assert.Equal(t, o.removed, other.removed, "%s: member_removed heard by %s and by %s", r.where(), o.label, other.label)
			}
		}
		assert.Equal(t, sorted(o.start), sorted(o.view), "%s: the final view of %s", r.where(), o.label)
	}

	// Fresh subscribers, new users, on each node: each list is the truth
	// and the fresh ones before it; every observer hears each arrive once.
	r.checkCounts()
	fresh := make([][]string, len(r.channels))
	for at, n := range nodes {
		for ch, name := range r.channels {
			id := fmt.Sprintf("fresh-%d", at)
			c := harness.Dial(t, n)
			want := append(append(r.truth(ch), fresh[ch]...), id)
			sort.Strings(want)
			assert.Equal(t, want, join(t, c, name, id), "%s: the member list of a fresh subscriber to %s on %s", r.where(), name, n)
			fresh[ch] = append(fresh[ch], id)
		}
	}
	r.flushAll()
	for _, o := range r.observers {
		var want []memberChange
		for _, id := range fresh[o.ch] {
			want = append(want, memberChange{added: true, user: id})
		}
		assert.Equal(t, want, takeMemberChanges(t, o.c, r.channels[o.ch]), "%s: what %s heard as the fresh subscribers came", r.where(), o.label)
	}
	r.checkCounts(fresh[0]...)
	r.stopOnFailure()

	var users []string
	for u := range r.twoNodes {
		users = append(users, u)
	}
	sort.Strings(users)
	t.Logf("seed %d: %d batches, %d ops (%d joins, %d unsubscribes, %d closes); %d batches with two sockets of a user on one channel, %d with one leaving as another joined; %d users on two nodes at once: %s",
		seed, churnBatches+1, r.ops, r.joins, r.unsubs, r.closes, r.sameUser, r.swaps, len(users), strings.Join(users, " "))
	require.Positive(t, r.swaps, "%s: some batch had a socket of a user leave as another of that user joined", r.where())
	require.Positive(t, len(users), "%s: some user was on two nodes at once", r.where())
}

// runChurn plays churnSeeds seeds (one when CLUSTER_CHURN_SEED is set),
// each a subtest on fresh nodes from start.
func runChurn(t *testing.T, start func(t *testing.T) []*node) {
	base, replay := churnBaseSeed(t)
	seeds := []uint64{base}
	if !replay {
		t.Logf("churn base seed %d; each failing seed names itself (set CLUSTER_CHURN_SEED to replay one)", base)
		rng := rand.New(rand.NewPCG(base, 0))
		seeds = seeds[:0]
		for range churnSeeds {
			seeds = append(seeds, rng.Uint64())
		}
	}
	for i, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runChurnSeed(t, seed, i, start(t))
		})
	}
}

// TestPresenceChurn: on three nodes over one Redis, batches of joins and
// leaves (unsubscribing or closing) start at the same moment; two sockets
// of one user, on two nodes, often act on one channel at once. Every
// long-lived observer hears each member arrive and leave exactly when the
// truth says, and the nodes' member lists, user_count and the lists fresh
// subscribers get equal the truth.
func TestPresenceChurn(t *testing.T) {
	t.Parallel()
	runChurn(t, func(t *testing.T) []*node { return startNodes(t, true, 3, nil) })
}

// TestPresenceChurnSingleNode is the churn on one node without Redis.
func TestPresenceChurnSingleNode(t *testing.T) {
	t.Parallel()
	runChurn(t, func(t *testing.T) []*node {
		n := startSingle(t, "A", nil)
		return []*node{n, n, n}
	})
}
