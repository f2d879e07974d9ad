package cluster_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// chaosLong runs the chaos lane's long form: go test ./test/cluster -run
// TestChaos -chaos.long (minutes; the short form runs in CI).
var chaosLong = flag.Bool("chaos.long", false, "run the chaos lane's long form")

// chaosPlan sizes one run of the chaos lane.
type chaosPlan struct {
	cycles    int           // fault cycles: a Redis restart, then a Redis pause
	cycle     time.Duration // the traffic between two faults
	malformed int           // sockets sending malformed frames all along
	stalled   int           // connections stalled in their handshake at any time
	bursts    int           // bursts of client events to prompt and stalled readers
	seed      uint64
}

// TestChaos is the hostile day in one run, on a three-node cluster over a
// real Redis: numbered events triggered all along (one at a time, via two
// nodes in turn), while sockets send malformed frames at volume, stalled
// handshakes hold connections, bursts of 20 KB client events go to prompt
// and stalled readers, a node is killed with SIGKILL, Redis is restarted
// and paused. For the sockets that stayed connected, nothing that got a
// 2xx answer is lost, duplicated or reordered (but for what Redis held
// when it was killed: pub/sub delivers at most once), and
// afterwards every node serves. A failure names its seed.
func TestChaos(t *testing.T) {
	plan := chaosPlan{cycles: 1, cycle: 2 * time.Second, malformed: 20, stalled: 20, bursts: 1, seed: rand.Uint64()}
	if *chaosLong {
		plan = chaosPlan{cycles: 10, cycle: 10 * time.Second, malformed: 200, stalled: 500, bursts: 10, seed: plan.seed}
	}
	if harness.Race {
		plan.malformed, plan.stalled = plan.malformed/2, plan.stalled/2
	}
	t.Logf("seed %d, plan %+v", plan.seed, plan)
	cl := newCluster(t)
	if !cl.redis.Real() {
		t.Skip("the chaos lane needs redis-server (it restarts and pauses Redis)")
	}
	mutate := func(c *app.Config) {
		c.Server.HeaderTimeout = time.Second
		c.Apps[0].MaxMessageSize = 32 << 10
		c.Apps[0].PingInterval = 15 * time.Second // pings under load too (the default is 60 s)
	}
	a, c := cl.start(t, "A", mutate), cl.start(t, "C", mutate)
	p := cl.startProcess(t, "P", nil)
	waitUp(t, a, c, p)
	const feed = "chaos-feed"
	watchers := map[*node][]*pusherclient.Client{}
	for _, n := range []*node{a, c, p} {
		for range 5 {
			s := harness.DialWith(t, n, pusherclient.Options{AnswerPings: true}) // as pusher-js does
			harness.Subscribe(t, s, feed)
			watchers[n] = append(watchers[n], s)
		}
	}
	waitCrossDelivery(t, a, watchers[c][0], feed)
	waitCrossDelivery(t, c, watchers[a][0], feed)
	waitCrossDelivery(t, a, watchers[p][0], feed)
	harness.Flush(t, a, feed, append(append(watchers[a], watchers[c]...), watchers[p]...)...)

	ctx, stop := context.WithCancel(context.Background())
	var chaos sync.WaitGroup
	tally := &chaosTally{}
	for i := range plan.malformed {
		chaos.Go(func() { malform(ctx, []*node{a, c}[i%2], rand.New(rand.NewPCG(plan.seed, uint64(i))), tally) })
	}
	for range plan.stalled {
		chaos.Go(func() { stall(ctx, a, tally) })
	}
	trig := startNumbered(a, c, feed)

	// The timeline: a node killed, then each cycle a Redis restart and a
	// Redis pause, with traffic between.
	time.Sleep(plan.cycle)
	p.proc.Kill()
	tally.fault(t, "node P killed")
	for cycle := range plan.cycles {
		for b := range plan.bursts {
			burst(t, a, fmt.Sprintf("private-burst-%d-%d", cycle, b), tally)
		}
		time.Sleep(plan.cycle)
		trig.died(time.Now())
		cl.redis.Restart()
		tally.fault(t, "Redis restarted")
		waitUp(t, a, c)
		time.Sleep(plan.cycle)
		cl.redis.Pause(time.Second)
		tally.fault(t, "Redis paused 1 s")
		waitUp(t, a, c)
	}
	time.Sleep(plan.cycle)
	acked := trig.end()
	stop()
	chaos.Wait()

	// Every watcher that stayed connected: in order, no duplicates, and
	// every acknowledged event (on C, but for those Redis may have held
	// when it died).
	t.Logf("seed %d: %d events acknowledged (%d refused during faults); %s", plan.seed, len(acked.seqs), acked.refused, tally)
	require.NotEmpty(t, acked.seqs, "seed %d: no trigger was acknowledged", plan.seed)
	last := acked.seqs[len(acked.seqs)-1]
	excusedTotal := 0
	for _, n := range []*node{a, c} {
		for i, s := range watchers[n] {
			got := receivedUntil(t, s, feed, last)
			code, reason, closed := s.CloseStatus()
			require.False(t, closed, "seed %d: watcher %d on %s was closed: %d %q", plan.seed, i, n, code, reason)
			require.NoError(t, inOrder(got), "seed %d: watcher %d on %s", plan.seed, i, n)
			missing, excused := acked.missingFrom(got)
			excusedTotal += excused
			require.Empty(t, missing, "seed %d: watcher %d on %s lost acknowledged events", plan.seed, i, n)
		}
	}
	for _, n := range []*node{a, c} {
		harness.RequireOpen(t, harness.Dial(t, n))
	}
	t.Logf("seed %d: every acknowledged event delivered in order to the %d watchers that stayed, but %d deliveries of events acknowledged just before Redis was killed",
		plan.seed, len(watchers[a])+len(watchers[c]), excusedTotal)
}

// chaosTally counts what the chaos did, for the log.
type chaosTally struct {
	frames, sockets, stalled, cut, burstEvents, slowClosed atomic.Int64
	mu                                                     sync.Mutex
	faults                                                 []string
}

func (c *chaosTally) fault(t *testing.T, what string) {
	t.Logf("fault: %s", what)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, what)
}

func (c *chaosTally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d malformed frames over %d sockets, %d stalled connections (%d cut by the server), %d burst events, %d stalled burst readers closed, faults: %s",
		c.frames.Load(), c.sockets.Load(), c.stalled.Load(), c.cut.Load(), c.burstEvents.Load(), c.slowClosed.Load(), strings.Join(c.faults, ", "))
}

// malformedFrames are what a broken or hostile client sends.
var malformedFrames = [][]byte{
	[]byte("hello"), []byte(""), []byte(`{"event":"pusher:ping"`), []byte(`[1,2]`), []byte(`null`), []byte(`{}`),
	[]byte(`{"event":42}`), []byte(`{"event":"pusher:subscribe","data":42}`), []byte(`{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"k:bad"}}`),
	[]byte(`{"event":"pusher:subscribe","data":{"channel":"presence-x","auth":"k:bad","channel_data":"{"}}`),
	[]byte(`{"event":"client-x","channel":"chaos-feed","data":{}}`), []byte(`{"event":"pusher:unsubscribe","data":["a"]}`),
	[]byte(`{"event":"pusher:teleport"}`), []byte(`{"event":"pusher:signin","data":{"user_data":5}}`),
	[]byte(`{"event":"pusher:subscribe","data":{"channel":"` + strings.Repeat("x", 300) + `"}}`),
	[]byte("{\"event\":\"pusher:ping\",\"data\":\"\xff\"}"), // invalid UTF-8: closed with 1007, and dialled again
}

// malform keeps a socket to n sending malformed frames, random bytes and
// oversized frames until ctx ends, dialling again when the server closes it.
func malform(ctx context.Context, n *node, r *rand.Rand, tally *chaosTally) {
	for ctx.Err() == nil {
		s, err := pusherclient.Dial(n.SocketURL())
		if err != nil {
			time.Sleep(50 * time.Millisecond) // the node may be busy: try again
			continue
		}
		tally.sockets.Add(1)
		for ctx.Err() == nil {
			var frame []byte
			switch k := r.IntN(10); {
			case k < 7:
				frame = malformedFrames[r.IntN(len(malformedFrames))]
			case k < 9:
				frame = make([]byte, r.IntN(200))
				for i := range frame {
					frame[i] = byte(' ' + r.IntN(95)) // printable noise
				}
			default:
				frame = []byte(strings.Repeat("x", 40<<10)) // over max_message_size
			}
			if s.SendText(frame) != nil {
				break
			}
			tally.frames.Add(1)
			if r.IntN(20) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		_ = s.Close()
	}
}

// stall holds a connection to n that sends part of a handshake and then
// nothing, opening another when the server cuts it, until ctx ends.
func stall(ctx context.Context, n *node, tally *chaosTally) {
	host := strings.TrimPrefix(n.httpURL, "http://")
	for ctx.Err() == nil {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		tally.stalled.Add(1)
		_, _ = io.WriteString(conn, "GET /app/"+harness.AppKey+"?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, conn) // until the server cuts it
			close(done)
		}()
		select {
		case <-done:
			tally.cut.Add(1)
		case <-ctx.Done():
		}
		_ = conn.Close()
		<-done
	}
}

// burst sends 200 client events of 20 KB on channel to 5 prompt readers and
// one that stops reading: the readers get every event in order and stay.
func burst(t *testing.T, n *node, channel string, tally *chaosTally) {
	t.Helper()
	const events, size = 200, 20 << 10
	readers := make([]*pusherclient.Client, 5)
	for i := range readers {
		readers[i] = harness.DialWith(t, n, pusherclient.Options{AnswerPings: true, Timeout: 30 * time.Second})
		harness.Subscribe(t, readers[i], channel)
	}
	stalled := harness.DialWith(t, n, pusherclient.Options{Paused: true, ReceiveBuffer: 4096})
	harness.Subscribe(t, stalled, channel)
	sender := harness.DialWith(t, n, pusherclient.Options{AnswerPings: true, Timeout: 30 * time.Second})
	harness.Subscribe(t, sender, channel)
	pad := strings.Repeat("x", size)
	for i := range events {
		require.NoError(t, sender.Trigger("client-burst", channel, map[string]any{"n": i, "pad": pad}))
	}
	tally.burstEvents.Add(events)
	for i, r := range readers {
		for want := range events {
			f, err := r.Expect("client-burst", channel, 30*time.Second)
			require.NoError(t, err, "burst reader %d, event %d", i, want)
			var d struct{ N int }
			require.NoError(t, json.Unmarshal(f.Data, &d))
			require.Equal(t, want, d.N, "burst reader %d", i)
		}
	}
	// What the kernel's buffers took reaches the stalled reader, in order;
	// a burst larger than they hold closes it as a slow consumer.
	stalled.Resume()
	for want := 0; ; want++ {
		f, err := stalled.Expect("client-burst", channel, 2*time.Second)
		if err != nil {
			if _, _, closed := stalled.CloseStatus(); closed {
				tally.slowClosed.Add(1)
			}
			return
		}
		var d struct{ N int }
		require.NoError(t, json.Unmarshal(f.Data, &d))
		require.Equal(t, want, d.N, "the stalled reader's events stay in order")
	}
}

// numberedTrigger triggers events numbered 0, 1, 2 … one at a time, through two
// nodes in turn, and remembers which were acknowledged.
type numberedTrigger struct {
	stop, done chan struct{}
	mu         sync.Mutex
	acked      ackedEvents
	deaths     []time.Time // when Redis was killed
}

// ackedEvents are the events that got a 2xx answer, in order, and when.
type ackedEvents struct {
	seqs    []int
	at      []time.Time
	deaths  []time.Time
	refused int
}

func startNumbered(a, c *node, channel string) *numberedTrigger {
	tr := &numberedTrigger{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(tr.done)
		deadline := time.Now().Add(10 * time.Minute)
		for i := 0; i < 1_000_000 && time.Now().Before(deadline); i++ {
			select {
			case <-tr.stop:
				return
			case <-time.After(2 * time.Millisecond): // pacing
			}
			err := []*node{a, c}[i%2].Trigger(channel, "n", map[string]int{"seq": i})
			tr.mu.Lock()
			if err == nil {
				tr.acked.seqs = append(tr.acked.seqs, i)
				tr.acked.at = append(tr.acked.at, time.Now())
			} else {
				tr.acked.refused++
			}
			tr.mu.Unlock()
		}
	}()
	return tr
}

// died records that Redis is about to be killed.
func (tr *numberedTrigger) died(at time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.deaths = append(tr.deaths, at)
}

func (tr *numberedTrigger) end() ackedEvents {
	close(tr.stop)
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.acked.deaths = tr.deaths
	return tr.acked
}

// inFlight is how long before Redis dies an acknowledged event may still
// sit in Redis's buffer to another node's subscription, and be lost with
// it: pub/sub delivers at most once, and a killed Redis flushes nothing.
const inFlight = 250 * time.Millisecond

// missingFrom lists the acknowledged events got lacks, and counts those
// it excuses: acknowledged within inFlight before Redis died. While the
// link is up every node, the publisher included, hears an event back from
// Redis, so such an event may be lost for all of them.
func (e ackedEvents) missingFrom(got []int) (missing []int, excused int) {
	return e.missingExcept(got, e.nearDeath)
}

// missingExcept lists the acknowledged events got lacks, and counts those
// it excuses: acknowledged at a time excuse accepts.
func (e ackedEvents) missingExcept(got []int, excuse func(time.Time) bool) (missing []int, excused int) {
	have := make(map[int]bool, len(got))
	for _, s := range got {
		have[s] = true
	}
	for i, s := range e.seqs {
		switch {
		case have[s]:
		case excuse(e.at[i]):
			excused++
		default:
			missing = append(missing, s)
		}
	}
	return missing, excused
}

func (e ackedEvents) nearDeath(at time.Time) bool {
	for _, d := range e.deaths {
		if !at.Before(d.Add(-inFlight)) && at.Before(d.Add(time.Second)) {
			return true
		}
	}
	return false
}

// receivedUntil takes s's numbered events on channel until it has last,
// or none comes for a while.
func receivedUntil(t *testing.T, s *pusherclient.Client, channel string, last int) []int {
	t.Helper()
	var got []int
	for len(got) == 0 || got[len(got)-1] < last {
		f, err := s.Expect("n", channel, wait)
		if err != nil {
			break
		}
		var d struct{ Seq int }
		require.NoError(t, f.DecodeData(&d))
		got = append(got, d.Seq)
	}
	return got
}

// inOrder checks that seqs only increase: nothing duplicated or reordered.
func inOrder(seqs []int) error {
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			return fmt.Errorf("event %d after %d (position %d of %d)", seqs[i], seqs[i-1], i, len(seqs))
		}
	}
	return nil
}
