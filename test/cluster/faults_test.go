package cluster_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// fastFail bounds one call while Redis is down: publishing must fail fast,
// and a node serve its own sockets (docs/architecture.md, "When the Redis
// link is down"). A call that waits on Redis at all (a dial, a timeout,
// go-redis's dial retries, 4 × 100 ms by default) takes longer; a call that
// does not takes a few milliseconds.
const fastFail = 300 * time.Millisecond

// timed runs f and requires that it took less than fastFail.
func timed(t testing.TB, what string, f func()) time.Duration {
	t.Helper()
	start := time.Now()
	f()
	took := time.Since(start)
	assert.Less(t, took, fastFail, "%s while Redis is down", what)
	return took
}

// requireDownHealth checks GET /up while the node has no Redis link: 503
// with a JSON body that names Redis.
func requireDownHealth(t testing.TB, n *node) {
	t.Helper()
	status, body := health(t, n)
	require.Equal(t, http.StatusServiceUnavailable, status, "GET /up on %s: %s", n, body)
	require.True(t, json.Valid([]byte(body)), "GET /up answers JSON: %q", body)
	require.True(t, containsFold(body, "redis"), "GET /up names the Redis link: %q", body)
}

// requireLocalOnly triggers event on channel through n while its Redis
// link is down: the answer is a fast 503 that names the Redis link.
func requireLocalOnly(t testing.TB, n *node, channel, event string) time.Duration {
	t.Helper()
	start := time.Now()
	err := n.pusher.Trigger(channel, event, "local")
	took := time.Since(start)
	require.Error(t, err, "a trigger through %s without Redis", n)
	assert.Equal(t, http.StatusServiceUnavailable, statusOf(err), "%v", err)
	assert.True(t, containsFold(err.Error(), "redis"), "the 503 names the Redis link: %v", err)
	assert.Less(t, took, fastFail, "a trigger without Redis fails fast")
	return took
}

// waitCrossDelivery triggers probes through from until to's socket gets
// one; it returns how long that took.
func waitCrossDelivery(t testing.TB, from *node, to *pusherclient.Client, channel string) time.Duration {
	t.Helper()
	k := 0
	return eventually(t, 3*wait, fmt.Sprintf("an event through %s reaches a socket on another node", from), func() (bool, string) {
		k++
		event := fmt.Sprintf("probe-%d", k)
		if err := from.pusher.Trigger(channel, event, "probe"); err != nil {
			return false, err.Error()
		}
		_, err := to.Expect(event, channel, 200*time.Millisecond)
		return err == nil, fmt.Sprint(err)
	})
}

// TestNodeStartsWithoutRedis: nodes started while Redis is down start
// anyway and serve their own sockets; /up says what is wrong; once Redis
// starts they join the cluster within seconds.
func TestNodeStartsWithoutRedis(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	cl.redis.Stop()
	a := cl.start(t, "A", nil)
	b := cl.start(t, "B", nil)
	const channel = "public-outage"

	requireDownHealth(t, a)
	requireDownHealth(t, b)
	var sa, sb *pusherclient.Client
	timed(t, "a socket connecting", func() { sa = harness.Dial(t, a) })
	timed(t, "a socket connecting", func() { sb = harness.Dial(t, b) })
	harness.Subscribe(t, sa, channel)
	harness.Subscribe(t, sb, channel)

	took := requireLocalOnly(t, a, channel, "local-a")
	t.Logf("a trigger without Redis answered in %s", took.Round(time.Microsecond))
	harness.Expect(t, sa, "local-a", channel)
	requireLocalOnly(t, b, channel, "local-b")
	harness.Expect(t, sb, "local-b", channel)

	// Cluster queries answer from this node alone, at once.
	start := time.Now()
	assert.Equal(t, 1, connections(t, a), "connections of A without Redis")
	assert.Less(t, time.Since(start), fastFail, "a query without Redis answers at once")
	// A cache channel's last event cannot be kept: the 503 says so, fast.
	timed(t, "a trigger on a cache channel", func() {
		err := a.pusher.Trigger("cache-outage", "e", "x")
		assert.Equal(t, http.StatusServiceUnavailable, statusOf(err), "%v", err)
	})
	// A presence channel cannot be exact without Redis: refused with 503.
	var f pusherclient.Frame
	var err error
	timed(t, "a presence subscription", func() { f, err = trySubscribePresence(sa, "presence-outage", "u1") })
	require.NoError(t, err)
	require.Equal(t, pusher.EventSubscriptionError, f.Event, "%s", f)
	se, err := f.SubscriptionError()
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, se.Status)

	cl.redis.Restart()
	redisUp := time.Now()
	waitUp(t, a, b)
	t.Logf("/up was 200 on both nodes %s after Redis started", time.Since(redisUp).Round(time.Millisecond))
	waitCrossDelivery(t, a, sb, channel)
	waitCrossDelivery(t, b, sa, channel)
	recovered := time.Since(redisUp)
	t.Logf("cluster delivery both ways %s after Redis started", recovered.Round(time.Millisecond))
	// The reconnect back-off is at most 5 s (scaling/redis.go).
	assert.Less(t, recovered, 6*time.Second, "the cluster is whole again within seconds of Redis starting")
	assert.Equal(t, 2, connections(t, b), "connections across the cluster")
	// The events that reached one node only never turn up on the other.
	harness.Flush(t, a, channel, sa, sb)
	assert.Empty(t, take(sb, "local-a", channel))
	assert.Empty(t, take(sa, "local-b", channel))
}

// traffic triggers events through the nodes in turn until stopped, and
// records how each call ended.
type traffic struct {
	mu      sync.Mutex
	ok      int
	down    int // 503 naming the Redis link
	other   []string
	slowest time.Duration

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

func startTraffic(nodes []*node, channel string) *traffic {
	tr := &traffic{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		ticker := time.NewTicker(5 * time.Millisecond) // pacing, not synchronisation
		defer ticker.Stop()
		deadline := time.Now().Add(2 * time.Minute)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			select {
			case <-tr.stop:
				return
			case <-ticker.C:
			}
			n := nodes[i%len(nodes)]
			start := time.Now()
			err := n.pusher.Trigger(channel, "tick", "x")
			took := time.Since(start)
			tr.mu.Lock()
			tr.slowest = max(tr.slowest, took)
			switch {
			case err == nil:
				tr.ok++
			case statusOf(err) == http.StatusServiceUnavailable && containsFold(err.Error(), "redis"):
				tr.down++
			default:
				tr.other = append(tr.other, fmt.Sprintf("%s: %v", n, err))
			}
			tr.mu.Unlock()
		}
	}()
	return tr
}

// counts returns the successes and the 503s so far.
func (tr *traffic) counts() (ok, down int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.ok, tr.down
}

func (tr *traffic) end() {
	tr.stopOnce.Do(func() { close(tr.stop) })
	<-tr.done
}

// TestRedisRestartMidTraffic: redis-server dies and comes back while
// events flow. During the outage every call fails fast with a 503 naming
// Redis and local subscribers still get the events; afterwards the nodes
// reconnect and resubscribe by themselves and cross-node delivery
// resumes within seconds, in order.
func TestRedisRestartMidTraffic(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	a, b := cl.start(t, "A", nil), cl.start(t, "B", nil)
	p := cl.startProcess(t, "P", nil) // a real process must survive it too
	waitUp(t, a, b, p)
	const channel, ticks = "public-restart", "public-ticks"
	sa, sb, sp := harness.Dial(t, a), harness.Dial(t, b), harness.Dial(t, p)
	harness.Subscribe(t, sa, channel)
	harness.Subscribe(t, sb, channel)
	harness.Subscribe(t, sp, channel)
	for _, n := range []*node{a, b, p} {
		harness.Subscribe(t, harness.Dial(t, n), ticks) // traffic has subscribers on every node
	}
	waitCrossDelivery(t, a, sb, channel)
	waitCrossDelivery(t, a, sp, channel)

	tr := startTraffic([]*node{a, b}, ticks)
	defer tr.end()
	eventually(t, wait, "traffic flows", func() (bool, string) {
		ok, _ := tr.counts()
		return ok >= 20, fmt.Sprint(ok)
	})

	cl.redis.Stop()
	down := time.Now()
	for _, n := range []*node{a, b, p} {
		eventually(t, wait, fmt.Sprintf("%s notices the outage", n), func() (bool, string) {
			status, body := health(t, n)
			return status == http.StatusServiceUnavailable, body
		})
		requireDownHealth(t, n)
	}
	t.Logf("every node reported the outage on /up %s after redis-server died", time.Since(down).Round(time.Millisecond))
	requireLocalOnly(t, a, channel, "outage-a")
	harness.Expect(t, sa, "outage-a", channel)
	requireLocalOnly(t, b, channel, "outage-b")
	harness.Expect(t, sb, "outage-b", channel)
	var newcomer *pusherclient.Client
	timed(t, "a socket connecting", func() { newcomer = harness.Dial(t, a) })
	harness.Subscribe(t, newcomer, channel)
	eventually(t, wait, "traffic meets the outage", func() (bool, string) {
		_, d := tr.counts()
		return d >= 10, fmt.Sprint(d)
	})

	cl.redis.Restart()
	back := time.Now()
	waitCrossDelivery(t, a, sb, channel)
	waitCrossDelivery(t, b, sa, channel)
	waitCrossDelivery(t, p, sa, channel)
	waitCrossDelivery(t, a, sp, channel)
	t.Logf("cross-node delivery resumed %s after redis-server restarted", time.Since(back).Round(time.Millisecond))
	waitUp(t, a, b, p)
	okBefore, _ := tr.counts()
	eventually(t, wait, "traffic flows again", func() (bool, string) {
		ok, _ := tr.counts()
		return ok >= okBefore+20, fmt.Sprint(ok)
	})
	tr.end()

	tr.mu.Lock()
	t.Logf("traffic: %d delivered to the cluster, %d answered 503 during the outage, slowest call %s", tr.ok, tr.down, tr.slowest.Round(time.Millisecond))
	assert.Empty(t, tr.other, "every call answered 200, or 503 naming Redis")
	assert.Less(t, tr.slowest, fastFail, "no call waited on the dead Redis")
	tr.mu.Unlock()

	// In order again, both ways, and the outage's local events stayed local.
	for i := range 21 {
		via := []*node{a, b, p}[i%3]
		require.NoError(t, via.pusher.Trigger(channel, "after", map[string]int{"n": i}))
	}
	for _, s := range []*pusherclient.Client{sa, sb, sp} {
		for i := range 21 {
			f := harness.Expect(t, s, "after", channel)
			var d struct{ N int }
			require.NoError(t, f.DecodeData(&d))
			require.Equal(t, i, d.N, "events after the restart arrive in order")
		}
	}
	harness.Flush(t, a, channel, sa, sb, sp)
	assert.Empty(t, take(sb, "outage-a", channel))
	assert.Empty(t, take(sp, "outage-a", channel))
	assert.Empty(t, take(sa, "outage-b", channel))
	for _, n := range []*node{a, b, p} {
		harness.RequireOpen(t, harness.Dial(t, n))
	}
}

// TestNodeKillLeavesOthersServing: a node killed with SIGKILL takes only
// its own sockets with it; the other node goes on serving and delivering.
func TestNodeKillLeavesOthersServing(t *testing.T) {
	t.Parallel()
	cl := newCluster(t)
	a := cl.start(t, "A", nil)
	p := cl.startProcess(t, "P", nil)
	waitUp(t, a, p)
	const channel = "public-kill"
	sa, sp := harness.Dial(t, a), harness.Dial(t, p)
	harness.Subscribe(t, sa, channel)
	harness.Subscribe(t, sp, channel)
	waitCrossDelivery(t, a, sp, channel)
	waitCrossDelivery(t, p, sa, channel)

	const ticks = "public-kill-ticks"
	harness.Subscribe(t, harness.Dial(t, a), ticks)
	tr := startTraffic([]*node{a}, ticks)
	defer tr.end()
	eventually(t, wait, "traffic flows", func() (bool, string) {
		ok, _ := tr.counts()
		return ok >= 10, fmt.Sprint(ok)
	})
	p.proc.Kill()
	killed, _ := tr.counts()
	code, _, err := sp.WaitClosed(wait)
	require.NoError(t, err)
	assert.Equal(t, 1006, code, "a killed node's sockets drop without a close frame")
	eventually(t, wait, "traffic flows after the kill", func() (bool, string) {
		ok, _ := tr.counts()
		return ok >= killed+10, fmt.Sprint(ok)
	})
	tr.end()
	assert.Empty(t, tr.other, "triggers through the surviving node during the kill")
	assert.Zero(t, tr.down, "triggers through the surviving node during the kill")

	waitUp(t, a)
	require.NoError(t, a.pusher.Trigger(channel, "after-kill", "x"))
	harness.Expect(t, sa, "after-kill", channel)
	late := harness.Dial(t, a)
	harness.Subscribe(t, late, channel)
	harness.Flush(t, a, channel, sa, late)
	// Cluster queries answer again without waiting on the dead node.
	waitConnections(t, a, 3)
	start := time.Now()
	assert.Equal(t, 3, connections(t, a))
	assert.Less(t, time.Since(start), fastFail, "GET connections once the dead node is gone")
}
