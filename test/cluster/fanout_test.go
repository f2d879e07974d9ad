package cluster_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	pusherhttp "github.com/pusher/pusher-http-go/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// fanOutEvents is how many numbered events the sequential phase sends.
const fanOutEvents = 200

// fanOutChannel is private so that sockets may send client events on it.
const fanOutChannel = "private-fanout"

// sent is one numbered event and where it entered the cluster.
type sent struct {
	n      int
	origin int                  // index of the node it was published through
	sender *pusherclient.Client // the socket of a client event, nil otherwise
}

// fanOut is three nodes with two subscribers each.
type fanOut struct {
	nodes []*node
	subs  [][]*pusherclient.Client // subs[i]: the subscribers on nodes[i]
	// reaches reports whether an event published through nodes[from]
	// reaches the subscribers of nodes[to].
	reaches func(from, to int) bool
}

func newFanOut(t *testing.T, nodes []*node, reaches func(from, to int) bool) *fanOut {
	f := &fanOut{nodes: nodes, reaches: reaches, subs: make([][]*pusherclient.Client, len(nodes))}
	for i, n := range nodes {
		for range 2 {
			c := harness.Dial(t, n)
			harness.Subscribe(t, c, fanOutChannel)
			f.subs[i] = append(f.subs[i], c)
		}
	}
	return f
}

// want returns the numbers socket c on nodes[at] must receive, in order.
func (f *fanOut) want(events []sent, at int, c *pusherclient.Client) []int {
	out := []int{}
	for _, e := range events {
		if e.sender != c && f.reaches(e.origin, at) {
			out = append(out, e.n)
		}
	}
	return out
}

// endAll triggers an end marker through every node and waits until each
// socket has the markers of every node that reaches it: what was
// published before them has arrived.
func (f *fanOut) endAll(t *testing.T, name string) {
	t.Helper()
	for i, n := range f.nodes {
		require.NoError(t, n.pusher.Trigger(fanOutChannel, fmt.Sprintf("%s-end-%d", name, i), "end"))
	}
	for to, subs := range f.subs {
		for _, c := range subs {
			for from := range f.nodes {
				if f.reaches(from, to) {
					harness.Expect(t, c, fmt.Sprintf("%s-end-%d", name, from), fanOutChannel)
				}
			}
		}
	}
}

// received takes every pending event named one of names from c and
// returns the numbers they carry, in arrival order.
func received(t *testing.T, c *pusherclient.Client, names ...string) []int {
	t.Helper()
	out := []int{}
	for range len(c.Pending()) {
		f, err := c.ExpectFunc(func(f pusherclient.Frame) bool {
			return f.Channel == fanOutChannel && slices.Contains(names, f.Event)
		}, 0)
		if err != nil {
			break
		}
		var d struct {
			N int `json:"n"`
		}
		require.NoError(t, f.DecodeData(&d))
		out = append(out, d.N)
	}
	return out
}

func numbered(n int) map[string]int { return map[string]int{"n": n} }

// sequential sends fanOutEvents numbered events one after the other,
// rotating through the nodes and through three ways in: a trigger, a
// batch, and a client event from a socket on A or B. Each call returns
// once the event is published (a client event's sender is pinged: its
// pong proves the event was handled), so the publish order is the
// numbering.
func (f *fanOut) sequential(t *testing.T) []sent {
	t.Helper()
	senders := []struct {
		node int
		c    *pusherclient.Client
	}{{0, f.subs[0][1]}, {1 % len(f.nodes), f.subs[1%len(f.nodes)][1]}}
	var events []sent
	for round := 0; len(events) < fanOutEvents; round++ {
		next := len(events)
		via := round % len(f.nodes)
		switch round % 4 {
		case 0, 3:
			require.NoError(t, f.nodes[via].pusher.Trigger(fanOutChannel, "ev", numbered(next)))
			events = append(events, sent{n: next, origin: via})
		case 1:
			var batch []pusherhttp.Event
			for k := next; k < min(next+4, fanOutEvents); k++ {
				batch = append(batch, pusherhttp.Event{Channel: fanOutChannel, Name: "ev", Data: numbered(k)})
				events = append(events, sent{n: k, origin: via})
			}
			_, err := f.nodes[via].pusher.TriggerBatch(batch)
			require.NoError(t, err)
		case 2:
			s := senders[(round/4)%len(senders)]
			require.NoError(t, s.c.Trigger("client-ev", fanOutChannel, numbered(next)))
			require.NoError(t, s.c.Ping())
			events = append(events, sent{n: next, origin: s.node, sender: s.c})
		}
	}
	return events
}

// check requires that every socket received exactly the events that
// reach it, in publish order, client events and triggers alike.
func (f *fanOut) check(t *testing.T, events []sent) {
	t.Helper()
	for at, subs := range f.subs {
		for i, c := range subs {
			got := received(t, c, "ev", "client-ev")
			assert.Equal(t, f.want(events, at, c), got, "events on %s, socket %d (%s)", f.nodes[at], i, c.SocketID)
		}
	}
}

// concurrent sends perNode events through every node at once and returns
// what each node's sender sent, in its own order.
func (f *fanOut) concurrent(t *testing.T, perNode int) [][]int {
	t.Helper()
	sentBy := make([][]int, len(f.nodes))
	errs := make([]error, len(f.nodes))
	var wg sync.WaitGroup
	for i, n := range f.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perNode {
				num := 10000*(i+1) + k
				if err := n.pusher.Trigger(fanOutChannel, "cc", numbered(num)); err != nil {
					errs[i] = err
					return
				}
				sentBy[i] = append(sentBy[i], num)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "concurrent triggers through %s", f.nodes[i])
	}
	return sentBy
}

// runFanOut is the fan-out scenario; reaches says which nodes share events.
func runFanOut(t *testing.T, nodes []*node, reaches func(from, to int) bool) {
	f := newFanOut(t, nodes, reaches)

	start := time.Now()
	events := f.sequential(t)
	published := time.Since(start)
	f.endAll(t, "seq")
	distinct := map[string]bool{}
	for _, n := range nodes {
		distinct[n.httpURL] = true
	}
	t.Logf("fan-out: %d events to %d sockets on %d node(s): published one after the other in %s, all delivered after %s",
		len(events), 2*len(nodes), len(distinct), published.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	f.check(t, events)

	// Concurrent publishers: whatever order the cluster picks, every
	// socket sees the same one, and each publisher's own order is kept.
	const perNode = 40
	sentBy := f.concurrent(t, perNode)
	f.endAll(t, "cc")
	var reference []int
	for at, subs := range f.subs {
		for _, c := range subs {
			got := received(t, c, "cc")
			var want int
			for from, nums := range sentBy {
				if f.reaches(from, at) {
					want += len(nums)
					assert.Equal(t, nums, subsequence(got, nums), "order of %s's events on %s", f.nodes[from], f.nodes[at])
				}
			}
			require.Len(t, got, want, "concurrent events on %s (no gaps, no duplicates)", f.nodes[at])
			if allReach(f, at) {
				if reference == nil {
					reference = got
				}
				assert.Equal(t, reference, got, "every socket sees the cluster's one order (socket on %s)", f.nodes[at])
			}
		}
	}
}

// allReach reports whether every node's events reach nodes[at].
func allReach(f *fanOut, at int) bool {
	for from := range f.nodes {
		if !f.reaches(from, at) {
			return false
		}
	}
	return true
}

// subsequence returns the elements of got that are in of, in got's order.
func subsequence(got, of []int) []int {
	in := make(map[int]bool, len(of))
	for _, n := range of {
		in[n] = true
	}
	out := []int{}
	for _, n := range got {
		if in[n] {
			out = append(out, n)
		}
	}
	return out
}

// TestFanOutCluster: events triggered through any node, as a trigger, a
// batch or a client event, reach every subscriber on every node once, in
// one order.
func TestFanOutCluster(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, true, 3, nil)
	runFanOut(t, nodes, func(int, int) bool { return true })
}

// TestFanOutWithoutScaling is the same scenario on three nodes that share
// no Redis: nothing crosses from one node to another, which shows that
// TestFanOutCluster's cross-node deliveries come from the cluster.
func TestFanOutWithoutScaling(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, false, 3, nil)
	runFanOut(t, nodes, func(from, to int) bool { return from == to })
}

// TestFanOutSingleNode is the scenario on one node (scaling off) reached
// through three names, for the timing comparison with the cluster.
func TestFanOutSingleNode(t *testing.T) {
	t.Parallel()
	n := startSingle(t, "A", nil)
	runFanOut(t, []*node{n, n, {name: "A'", wsURL: n.wsURL, httpURL: n.httpURL, pusher: n.pusher, http: n.http}},
		func(int, int) bool { return true })
}

// TestExcludedSocketOnAnotherNode: socket_id exclusion works wherever the
// excluded socket lives.
func TestExcludedSocketOnAnotherNode(t *testing.T) {
	t.Parallel()
	nodes := startNodes(t, true, 2, nil)
	a, b := nodes[0], nodes[1]
	a1 := harness.Dial(t, a)
	b1, b2 := harness.Dial(t, b), harness.Dial(t, b)
	all := []*pusherclient.Client{a1, b1, b2}
	for _, c := range all {
		harness.Subscribe(t, c, fanOutChannel)
	}

	// A trigger through A that excludes a socket on B.
	require.NoError(t, a.pusher.TriggerExclusive(fanOutChannel, "not-b1", "x", b1.SocketID))
	// A batch through B whose first item excludes a socket on A.
	id := a1.SocketID
	_, err := b.pusher.TriggerBatch([]pusherhttp.Event{
		{Channel: fanOutChannel, Name: "not-a1", Data: "x", SocketID: &id},
		{Channel: fanOutChannel, Name: "everyone", Data: "x"},
	})
	require.NoError(t, err)
	// A client event from B: its sender alone does not get it.
	require.NoError(t, b2.Trigger("client-not-b2", fanOutChannel, map[string]string{"x": "y"}))
	require.NoError(t, b2.Ping())
	harness.Flush(t, a, fanOutChannel, all...)

	got := func(c *pusherclient.Client) []string {
		var names []string
		for _, f := range c.Pending() {
			if f.Channel == fanOutChannel {
				names = append(names, f.Event)
			}
		}
		return names
	}
	assert.Equal(t, []string{"not-b1", "everyone", "client-not-b2"}, got(a1), "a1 on A")
	assert.Equal(t, []string{"not-a1", "everyone", "client-not-b2"}, got(b1), "b1 on B")
	assert.Equal(t, []string{"not-b1", "not-a1", "everyone"}, got(b2), "b2 on B")
}
