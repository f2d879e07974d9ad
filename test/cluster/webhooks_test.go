package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/hookrecv"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// distinct drops the repeats of an id, keeping the first.
func distinct(evs []hookrecv.Event) (out []hookrecv.Event, repeats []string) {
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.ID] {
			repeats = append(repeats, e.ID+" "+e.String())
			continue
		}
		seen[e.ID] = true
		out = append(out, e)
	}
	return out, repeats
}

// transitionHooks are the events that follow the cluster's transitions
// one for one.
var transitionHooks = []string{pusher.WebhookChannelOccupied, pusher.WebhookChannelVacated, pusher.WebhookMemberAdded, pusher.WebhookMemberRemoved}

// keyOf is the order key of an occupancy or member event: the channel,
// and the user for member events.
func keyOf(e hookrecv.Event) string {
	if e.Name == pusher.WebhookMemberAdded || e.Name == pusher.WebhookMemberRemoved {
		return e.Channel + " user " + e.UserID
	}
	return e.Channel
}

// checkAlternation checks, per key of evs (occupancy and member events,
// repeats dropped), that joins and leaves alternate starting with a join,
// and that the last is a join exactly for the keys in present. It returns
// the problems found.
func checkAlternation(evs []hookrecv.Event, keys []string, present map[string]bool) []string {
	seqs := map[string][]string{}
	for _, e := range evs {
		seqs[keyOf(e)] = append(seqs[keyOf(e)], e.Name)
	}
	var problems []string
	for _, key := range keys {
		seq := seqs[key]
		join, leave := pusher.WebhookChannelOccupied, pusher.WebhookChannelVacated
		if strings.Contains(key, " user ") {
			join, leave = pusher.WebhookMemberAdded, pusher.WebhookMemberRemoved
		}
		for i, name := range seq {
			want := join
			if i%2 == 1 {
				want = leave
			}
			if name != want {
				problems = append(problems, fmt.Sprintf("%s: event %d is %s, not %s: %v", key, i, name, want, seq))
				break
			}
		}
		endsJoined := len(seq)%2 == 1
		if endsJoined != present[key] {
			problems = append(problems, fmt.Sprintf("%s: ends %v while it is present=%v", key, seq, present[key]))
		}
	}
	return problems
}

// hookChurnSeed returns WEBHOOK_CHURN_SEED when set (one seed, to replay a
// failure), else a fresh base seed.
func hookChurnSeed(t *testing.T) (seed uint64, replay bool) {
	if s := os.Getenv("WEBHOOK_CHURN_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "WEBHOOK_CHURN_SEED")
		return seed, true
	}
	return rand.Uint64() >> 1, false
}

// Webhook churn sizes, per seed.
const (
	hookSeeds    = 6
	hookSockets  = 9
	hookUsers    = 5
	hookBatches  = 20
	hookBatchMin = 3
	hookBatchMax = 6
)

// TestWebhooksFollowClusterTransitions: random churn of public and
// presence subscribers over three nodes, with no leave delay. Once quiet,
// the receiver has had exactly the cluster's transitions (the sum of every
// node's fizz_channel_transitions_total): per channel occupied and vacated
// alternate, per member added and removed alternate, each ending as the
// channel or member is; no event twice unless a retry was counted.
// WEBHOOK_CHURN_SEED=<seed> replays one seed.
func TestWebhooksFollowClusterTransitions(t *testing.T) {
	t.Parallel()
	r := hookrecv.New(t)
	nodes := startNodes(t, true, 3, func(c *app.Config) {
		c.Apps[0].Webhooks = []apps.Webhook{{URL: r.URL(), EventTypes: transitionHooks}}
		c.Webhooks.LeaveDelay = 0
	})
	base, replay := hookChurnSeed(t)
	seeds := hookSeeds
	if replay {
		seeds = 1
	}
	t.Logf("base seed %d (WEBHOOK_CHURN_SEED=<seed> replays one)", base)
	for i := range seeds {
		seed := base + uint64(i)
		if !t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { hookChurn(t, seed, nodes, r) }) {
			return // the nodes' state is off: later seeds would say nothing new
		}
	}
}

// hookSocket is one socket of the churn: a user on a node, and the
// channels it is subscribed to.
type hookSocket struct {
	user string
	at   int
	c    *pusherclient.Client
	subs map[string]bool
}

// hookOp is one operation of a batch.
type hookOp struct {
	s       *hookSocket
	kind    churnKind
	channel string
}

func (op hookOp) String() string {
	return fmt.Sprintf("%s %s by %s on %c", op.kind, op.channel, op.s.user, 'A'+op.s.at)
}

// do performs op and waits until the server has handled it (a pong; for
// a close, the caller waits for the connection count).
func (op hookOp) do() error {
	c := op.s.c
	switch op.kind {
	case churnJoin:
		var f pusherclient.Frame
		var err error
		if pusher.KindOf(op.channel).Presence {
			f, err = trySubscribePresence(c, op.channel, op.s.user)
		} else {
			f, err = c.Subscribe(op.channel, "", "")
		}
		if err == nil && f.Event != pusher.EventSubscriptionSucceeded {
			err = fmt.Errorf("subscription refused: %s", f)
		}
		if err != nil {
			return err
		}
		return c.Ping()
	case churnUnsub:
		if err := c.Unsubscribe(op.channel); err != nil {
			return err
		}
		return c.Ping()
	default:
		return c.Close()
	}
}

func hookChurn(t *testing.T, seed uint64, nodes []*node, r *hookrecv.Receiver) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	say := func(format string, args ...any) string {
		return fmt.Sprintf("seed %d (WEBHOOK_CHURN_SEED=%d): ", seed, seed) + fmt.Sprintf(format, args...)
	}
	channels := []string{
		fmt.Sprintf("wh%d-a", seed), fmt.Sprintf("wh%d-b", seed),
		fmt.Sprintf("presence-wh%d-a", seed), fmt.Sprintf("presence-wh%d-b", seed),
	}
	open := func() *hookSocket {
		at := rng.IntN(len(nodes))
		return &hookSocket{user: fmt.Sprintf("u%d", rng.IntN(hookUsers)), at: at, c: harness.Dial(t, nodes[at]), subs: map[string]bool{}}
	}
	sockets := make([]*hookSocket, hookSockets)
	for i := range sockets {
		sockets[i] = open()
	}
	var history []string
	for batch := range hookBatches {
		size := hookBatchMin + rng.IntN(hookBatchMax-hookBatchMin+1)
		var ops []hookOp
		for _, i := range rng.Perm(len(sockets))[:size] {
			s := sockets[i]
			var subbed, free []string
			for _, ch := range channels {
				if s.subs[ch] {
					subbed = append(subbed, ch)
				} else {
					free = append(free, ch)
				}
			}
			p := rng.Float64()
			switch {
			case p < 0.12:
				ops = append(ops, hookOp{s: s, kind: churnClose})
			case len(subbed) > 0 && (p < 0.5 || len(free) == 0):
				ops = append(ops, hookOp{s: s, kind: churnUnsub, channel: subbed[rng.IntN(len(subbed))]})
			default:
				ops = append(ops, hookOp{s: s, kind: churnJoin, channel: free[rng.IntN(len(free))]})
			}
		}
		history = append(history, fmt.Sprintf("batch %d: %v", batch, ops))
		start := make(chan struct{})
		errs := make([]error, len(ops))
		var wg sync.WaitGroup
		for i, op := range ops {
			wg.Go(func() {
				<-start
				errs[i] = op.do()
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, say("batch %d: %s", batch, ops[i]))
		}
		for _, op := range ops {
			switch op.kind {
			case churnJoin:
				op.s.subs[op.channel] = true
			case churnUnsub:
				delete(op.s.subs, op.channel)
			}
		}
		for i, s := range sockets {
			if _, _, closed := s.c.CloseStatus(); closed {
				sockets[i] = open()
			}
		}
	}

	check := func(when string) {
		t.Helper()
		present := map[string]bool{}
		for _, s := range sockets {
			if _, _, closed := s.c.CloseStatus(); closed {
				continue
			}
			for ch := range s.subs {
				present[ch] = true
				if pusher.KindOf(ch).Presence {
					present[ch+" user "+s.user] = true
				}
			}
		}
		keys := slices.Clone(channels)
		for _, ch := range channels[2:] {
			for u := range hookUsers {
				keys = append(keys, fmt.Sprintf("%s user u%d", ch, u))
			}
		}
		// A public channel's count is written a moment after a change: wait
		// until the cluster sees every channel as the churn left it.
		for _, ch := range channels {
			eventually(t, wait, say("%s: %s occupied=%v", when, ch, present[ch]), func() (bool, string) {
				info, err := nodes[0].pusher.Channel(ch, pusherhttp.ChannelParams{})
				return err == nil && info.Occupied == present[ch], fmt.Sprint(info, err)
			})
		}
		waitHooksCaughtUp(t, nodes, r, say("%s: the receiver has every transition", when))
		evs, repeats := distinct(r.Accepted())
		if retries := sumMetric(t, nodes, "fizz_webhook_retries_total"); retries == 0 {
			assert.Empty(t, repeats, say("%s: events sent twice with no retry counted", when))
		}
		var mine []hookrecv.Event
		for _, e := range evs {
			if slices.Contains(channels, e.Channel) {
				mine = append(mine, e)
			}
		}
		t.Logf("%s: %d webhooks on this seed's channels", when, len(mine))
		if problems := checkAlternation(mine, keys, present); len(problems) > 0 {
			assert.Fail(t, say("%s: webhooks do not follow the transitions", when), "%s\nbatches:\n%s", strings.Join(problems, "\n"), strings.Join(history, "\n"))
		}
	}
	openCount := 0
	for _, s := range sockets {
		if _, _, closed := s.c.CloseStatus(); !closed {
			openCount++
		}
	}
	waitConnections(t, nodes[0], openCount)
	check("after the churn")

	for _, s := range sockets {
		require.NoError(t, s.c.Close())
	}
	waitConnections(t, nodes[0], 0)
	for _, s := range sockets {
		s.subs = map[string]bool{}
	}
	check("once every socket closed")
}

// waitHooksCaughtUp waits until the receiver has had, of each transition
// kind, as many distinct events as the nodes decided transitions, and
// checks that it did. When they never match, it waits for the webhooks to
// settle (no node holds any, nothing new for a while) so that the caller
// can report what the receiver got.
func waitHooksCaughtUp(t testing.TB, nodes []*node, r *hookrecv.Receiver, what string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	last, stableSince := -1, time.Now()
	for {
		evs, _ := distinct(r.Accepted())
		got := map[string]int{}
		for _, e := range evs {
			got[e.Name]++
		}
		ok := true
		var state []string
		for _, kind := range transitionHooks {
			want := transitionsOf(t, nodes, kind)
			ok = ok && got[kind] == want
			state = append(state, fmt.Sprintf("%s: %d webhooks, %d transitions", kind, got[kind], want))
		}
		if ok {
			return
		}
		if len(evs) != last {
			last, stableSince = len(evs), time.Now()
		}
		// (<= 0: fizz_webhook_queue can go below 0, see TestWebhookFlapsLeaveNothingHeld)
		settled := time.Since(stableSince) > time.Second && sumMetric(t, nodes, "fizz_webhook_queue") <= 0
		if settled || time.Now().After(deadline) {
			assert.Fail(t, what, "settled=%v: %s", settled, strings.Join(state, "; "))
			return
		}
		time.Sleep(pollEvery) // polling the receiver and the nodes against the deadline
	}
}

// TestWebhookLeaveDelayAcrossNodes: a user whose socket closes on one node
// and who is back through another within the leave delay (a reload that
// the load balancer sends elsewhere) causes no webhook: no member_removed
// and member_added, no channel_vacated and channel_occupied, though the
// cluster did decide those transitions. The real leave later sends them,
// after the delay.
func TestWebhookLeaveDelayAcrossNodes(t *testing.T) {
	t.Parallel()
	const delay = 1500 * time.Millisecond
	r := hookrecv.New(t)
	nodes := startNodes(t, true, 3, func(c *app.Config) {
		c.Apps[0].Webhooks = []apps.Webhook{{URL: r.URL(), EventTypes: transitionHooks}}
		c.Webhooks.LeaveDelay = delay
	})
	a, b := nodes[0], nodes[1]
	const presence, public = "presence-reload", "reload"
	on := func(n *node) *pusherclient.Client {
		c := harness.Dial(t, n)
		join(t, c, presence, "u1")
		harness.Subscribe(t, c, public)
		return c
	}
	ca := on(a)
	eventually(t, wait, "the joins' webhooks", func() (bool, string) {
		evs := r.Accepted()
		return len(evs) == 3, fmt.Sprint(evs)
	})

	closed := time.Now()
	require.NoError(t, ca.Close())
	eventually(t, wait, "the close decided as leaves", func() (bool, string) {
		removed, vacated := transitionsOf(t, nodes, "member_removed"), transitionsOf(t, nodes, "channel_vacated")
		return removed == 1 && vacated == 2, fmt.Sprintf("member_removed %d, channel_vacated %d", removed, vacated)
	})
	cb := on(b)
	took := time.Since(closed)
	require.Less(t, took, delay, "the reload must come back within the leave delay")
	assert.Equal(t, 2, transitionsOf(t, nodes, "member_added"), "the return was decided as a join")
	assert.Equal(t, 4, transitionsOf(t, nodes, "channel_occupied"), "the return was decided as occupied")

	left := time.Now()
	require.NoError(t, cb.Close())
	eventually(t, 2*wait, "the real leave's webhooks", func() (bool, string) {
		evs := r.Accepted()
		return len(evs) >= 6, fmt.Sprint(evs)
	})
	evs, repeats := distinct(r.Accepted())
	assert.Empty(t, repeats)
	assert.Empty(t, checkAlternation(evs, []string{presence, public, presence + " user u1"}, nil))
	want := []string{
		"channel_occupied:" + presence, "channel_occupied:" + public, "member_added:" + presence + ":u1",
		"channel_vacated:" + presence, "channel_vacated:" + public, "member_removed:" + presence + ":u1",
	}
	gotNames := []string{}
	for _, e := range evs {
		gotNames = append(gotNames, e.String())
		if e.Name == pusher.WebhookChannelVacated || e.Name == pusher.WebhookMemberRemoved {
			assert.GreaterOrEqual(t, e.At.Sub(left), delay-5*time.Millisecond, "%s waited the leave delay", e)
		}
	}
	assert.ElementsMatch(t, want, gotNames, "nothing for the reload (back after %s)", took)
	assert.Equal(t, 2, transitionsOf(t, nodes, "member_removed"))
	assert.Equal(t, 4, transitionsOf(t, nodes, "channel_vacated"))
}
