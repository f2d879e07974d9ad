package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/pusherclient"
)

// Churn sizes: users split into lanes that run side by side; each lane
// works on its own users one operation at a time.
const (
	churnUsers  = 30
	churnLanes  = 3
	churnRounds = 150 // each lane does one operation per round
	// churnSocketsPerSlot caps one user's sockets on one node.
	churnSocketsPerSlot = 2
)

const churnChannel = "presence-churn"

// churnSeed returns the seed of the churn test: CLUSTER_CHURN_SEED when
// set (to replay a failure), else a fresh one.
func churnSeed(t *testing.T) uint64 {
	if s := os.Getenv("CLUSTER_CHURN_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CLUSTER_CHURN_SEED")
		return seed
	}
	return rand.Uint64()
}

// lane owns some users and the sockets they hold. Only its goroutine
// touches it during a round.
type lane struct {
	rng   *rand.Rand
	users []string
	// active[user][node] are sockets subscribed as user; idle ones left
	// the channel by unsubscribing and may join again as the same user.
	active map[string][][]*pusherclient.Client
	idle   map[string][][]*pusherclient.Client

	count              map[string]int // the user's subscribed sockets anywhere
	added, removed     int            // the truth's transitions
	joins, leaves      int
	closes             int // leaves by closing the socket
	onTwoNodes         int // joins that put a user on a second node
	pendingDisconnects int // closes whose effect the round must wait for
	dialed             []*pusherclient.Client
}

// step performs one random operation of the lane against nodes: a user
// with sockets leaves from one of its nodes a bit more often than not, so
// that users keep coming and going.
func (l *lane) step(nodes []*node) error {
	user := l.users[l.rng.IntN(len(l.users))]
	var held, free []int
	for at := range nodes {
		if len(l.active[user][at]) > 0 {
			held = append(held, at)
		}
		if len(l.active[user][at]) < churnSocketsPerSlot {
			free = append(free, at)
		}
	}
	if len(held) > 0 && (len(free) == 0 || l.rng.IntN(100) < 55) {
		return l.leave(user, held[l.rng.IntN(len(held))])
	}
	return l.join(nodes, user, free[l.rng.IntN(len(free))])
}

func (l *lane) join(nodes []*node, user string, at int) error {
	var c *pusherclient.Client
	if idle := l.idle[user][at]; len(idle) > 0 {
		c, l.idle[user][at] = idle[len(idle)-1], idle[:len(idle)-1]
	} else {
		var err error
		if c, err = pusherclient.Dial(nodes[at].wsURL); err != nil {
			return fmt.Errorf("dial %s: %w", nodes[at], err)
		}
		l.dialed = append(l.dialed, c)
	}
	f, err := trySubscribePresence(c, churnChannel, user)
	if err != nil {
		return fmt.Errorf("join %s on %s: %w", user, nodes[at], err)
	}
	if f.Event != "pusher_internal:subscription_succeeded" {
		return fmt.Errorf("join %s on %s: %s", user, nodes[at], f)
	}
	// The pong proves the member_added this join causes is published.
	if err := c.Ping(); err != nil {
		return fmt.Errorf("ping after joining %s: %w", user, err)
	}
	nodesBefore := 0
	for _, socks := range l.active[user] {
		if len(socks) > 0 {
			nodesBefore++
		}
	}
	if nodesBefore == 1 && len(l.active[user][at]) == 0 {
		l.onTwoNodes++
	}
	l.active[user][at] = append(l.active[user][at], c)
	l.joins++
	l.count[user]++
	if l.count[user] == 1 {
		l.added++
	}
	return nil
}

func (l *lane) leave(user string, at int) error {
	socks := l.active[user][at]
	c := socks[len(socks)-1]
	l.active[user][at] = socks[:len(socks)-1]
	l.leaves++
	l.count[user]--
	if l.count[user] == 0 {
		l.removed++
	}
	if l.rng.IntN(10) < 3 {
		// Its effect is known once the cluster no longer counts it.
		l.closes++
		l.pendingDisconnects++
		return c.Close()
	}
	if err := c.Unsubscribe(churnChannel); err != nil {
		return fmt.Errorf("unsubscribe %s: %w", user, err)
	}
	// The pong proves the leave and its member_removed are done.
	if err := c.Ping(); err != nil {
		return fmt.Errorf("ping after %s left: %w", user, err)
	}
	l.idle[user][at] = append(l.idle[user][at], c)
	return nil
}

// observer is a socket subscribed for the whole test, and the member
// list it has built from its events.
type observer struct {
	c       *pusherclient.Client
	at      *node
	view    map[string]bool
	added   int
	removed int
}

// apply folds the member events in the observer's inbox into its view,
// in arrival order.
func (o *observer) apply(t testing.TB) {
	t.Helper()
	for range len(o.c.Pending()) {
		f, err := o.c.ExpectFunc(func(f pusherclient.Frame) bool {
			return f.Channel == churnChannel && (f.Event == memberAdded || f.Event == memberRemoved)
		}, 0)
		if err != nil {
			break
		}
		id := memberID(t, f)
		if f.Event == memberAdded {
			assert.False(t, o.view[id], "observer on %s: member_added %s, already a member", o.at, id)
			o.view[id] = true
			o.added++
		} else {
			assert.True(t, o.view[id], "observer on %s: member_removed %s, not a member", o.at, id)
			delete(o.view, id)
			o.removed++
		}
	}
}

// runChurn joins and leaves users at random over nodes A, B, C and
// checks that every view of the member list ends equal to the truth.
func runChurn(t *testing.T, nodes []*node) {
	seed := churnSeed(t)
	t.Logf("churn seed %d (set CLUSTER_CHURN_SEED=%d to replay)", seed, seed)

	// One observer per node, joined one after the other.
	var observers []*observer
	truth := map[string]bool{}
	for i, n := range nodes {
		id := fmt.Sprintf("observer-%d", i)
		c := dial(t, n)
		o := &observer{c: c, at: n, view: map[string]bool{}}
		for _, m := range join(t, c, churnChannel, id) {
			o.view[m] = true
		}
		truth[id] = true
		observers = append(observers, o)
	}
	lanes := make([]*lane, churnLanes)
	for i := range lanes {
		l := &lane{
			rng:    rand.New(rand.NewPCG(seed, uint64(i))),
			active: map[string][][]*pusherclient.Client{},
			idle:   map[string][][]*pusherclient.Client{},
			count:  map[string]int{},
		}
		for u := i; u < churnUsers; u += churnLanes {
			user := fmt.Sprintf("user-%02d", u)
			l.users = append(l.users, user)
			l.active[user] = make([][]*pusherclient.Client, len(nodes))
			l.idle[user] = make([][]*pusherclient.Client, len(nodes))
		}
		lanes[i] = l
	}
	t.Cleanup(func() {
		for _, l := range lanes {
			for _, c := range l.dialed {
				_ = c.Close()
			}
		}
	})
	sockets := func() int {
		total := len(observers)
		for _, l := range lanes {
			for _, slots := range l.active {
				for _, socks := range slots {
					total += len(socks)
				}
			}
			for _, slots := range l.idle {
				for _, socks := range slots {
					total += len(socks)
				}
			}
		}
		return total
	}

	start := time.Now()
	for round := range churnRounds {
		errs := make([]error, len(lanes))
		var wg sync.WaitGroup
		for i, l := range lanes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = l.step(nodes)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "round %d, lane %d (seed %d)", round, i, seed)
		}
		closed := 0
		for _, l := range lanes {
			closed += l.pendingDisconnects
			l.pendingDisconnects = 0
		}
		if closed > 0 {
			// A closed socket is uncounted after its member_removed is
			// published: wait for it before the user's next operation.
			waitConnections(t, nodes[round%len(nodes)], sockets())
		}
	}
	var joins, leaves, closes, twoNodes, added, removed int
	for _, l := range lanes {
		joins += l.joins
		leaves += l.leaves
		closes += l.closes
		twoNodes += l.onTwoNodes
		added += l.added
		removed += l.removed
		for user, n := range l.count {
			if n > 0 {
				truth[user] = true
			}
		}
	}
	t.Logf("churn: %d joins, %d leaves (%d by closing), %d times a user joined a second node, %d member transitions in, %d out, in %s",
		joins, leaves, closes, twoNodes, added, removed, time.Since(start).Round(time.Millisecond))
	require.Positive(t, twoNodes, "some users were on two nodes at once")
	want := sorted(truth)

	check := func(t *testing.T, want []string, added, removed int) {
		for _, n := range nodes {
			flush(t, n, churnChannel, clientsOf(observers)...)
		}
		for i, o := range observers {
			o.apply(t)
			assert.Equal(t, want, sorted(o.view), "the view of the observer on %s", o.at)
			// Observers joined in order: each saw the later ones arrive.
			assert.Equal(t, added+len(observers)-1-i, o.added, "member_added seen on %s", o.at)
			assert.Equal(t, removed, o.removed, "member_removed seen on %s", o.at)
		}
		requireCounts(t, nodes, churnChannel, want...)
		for i, n := range nodes {
			fresh := dial(t, n)
			// A socket of a member already there changes nothing.
			assert.Equal(t, want, join(t, fresh, churnChannel, fmt.Sprintf("observer-%d", i)), "a fresh subscriber on %s", n)
			require.NoError(t, fresh.Close())
		}
		waitConnections(t, nodes[0], sockets())
	}
	t.Run("after the churn", func(t *testing.T) { check(t, want, added, removed) })

	// Everyone but the observers leaves at once, without waiting.
	for _, l := range lanes {
		for user, n := range l.count {
			if n > 0 {
				removed++
			}
			l.count[user] = 0
		}
		for _, c := range l.dialed {
			_ = c.Close()
		}
		l.active, l.idle = nil, nil
	}
	waitConnections(t, nodes[1%len(nodes)], sockets())
	t.Run("after everyone left", func(t *testing.T) {
		check(t, []string{"observer-0", "observer-1", "observer-2"}, added, removed)
	})
}

func clientsOf(observers []*observer) []*pusherclient.Client {
	out := make([]*pusherclient.Client, len(observers))
	for i, o := range observers {
		out[i] = o.c
	}
	return out
}

// TestPresenceChurn: hundreds of random joins and leaves over three
// nodes leave every node's member list, user_count and the views of
// long-lived observers equal to the truth.
func TestPresenceChurn(t *testing.T) {
	t.Parallel()
	runChurn(t, startNodes(t, true, 3, nil))
}

// TestPresenceChurnSingleNode is the churn on one node without Redis.
func TestPresenceChurnSingleNode(t *testing.T) {
	t.Parallel()
	n := startSingle(t, "A", nil)
	runChurn(t, []*node{n, n, n})
}
