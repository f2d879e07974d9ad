package cluster_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// Sizes of BenchmarkWebhookLoad.
const (
	loadJoins       = 10_000 // presence joins, each followed by its leave
	loadJoiners     = 50     // sockets that join and leave, side by side
	loadChannels    = 10     // presence channels they use
	loadSubscribers = 200    // sockets that receive the triggered events
	loadInFlight    = 4      // triggers in flight at once
	loadReceiveTime = 50 * time.Millisecond
)

// BenchmarkWebhookLoad: two nodes (processes) on one Redis take 10,000
// presence joins and leaves while events are triggered to 200 other
// sockets, with webhooks off, on and batched (every event, a receiver
// that answers in 50 ms). It reports the deliveries per second to sockets during the
// joins, the time from the first join until the last webhook arrived,
// and the peak RSS of the nodes. Run it once: -benchtime 1x.
func BenchmarkWebhookLoad(b *testing.B) {
	for _, mode := range []string{"off", "on", "batched"} {
		b.Run("webhooks="+mode, func(b *testing.B) {
			for range b.N {
				runWebhookLoad(b, mode)
			}
		})
	}
}

// loadReceiver counts the events of the webhooks it answers, after
// loadReceiveTime each.
type loadReceiver struct {
	srv    *httptest.Server
	events atomic.Int64
	last   atomic.Int64 // unix ns of the last POST
}

func newLoadReceiver(t testing.TB) *loadReceiver {
	r := &loadReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		time.Sleep(loadReceiveTime) // the receiver's own work
		r.events.Add(int64(strings.Count(string(body), `"name":`)))
		r.last.Store(time.Now().UnixNano())
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// runWebhookLoad runs the load once; mode is off, on or batched.
func runWebhookLoad(b *testing.B, mode string) {
	cl := newCluster(b)
	env := map[string]string{"FIZZ_LOG_LEVEL": "info"}
	var r *loadReceiver
	hooked := mode != "off"
	if hooked {
		r = newLoadReceiver(b)
		env["FIZZ_APP_WEBHOOK_URL"] = r.srv.URL
		env["FIZZ_APP_WEBHOOK_BATCHING"] = strconv.FormatBool(mode == "batched")
	}
	nodes := []*node{cl.startProcess(b, "A", env), cl.startProcess(b, "B", env)}
	waitUp(b, nodes...)

	var received atomic.Int64
	for i := range loadSubscribers {
		c := harness.Dial(b, nodes[i%2])
		harness.Subscribe(b, c, "load-fanout")
		go func() {
			for {
				if _, err := c.ExpectFunc(pusherclient.Match("load-event", "load-fanout"), time.Minute); err != nil {
					return
				}
				received.Add(1)
			}
		}()
	}

	// Triggers go on until the joins are done.
	ctx, stop := context.WithCancel(context.Background())
	var triggers sync.WaitGroup
	for i := range loadInFlight {
		triggers.Go(func() {
			for ctx.Err() == nil {
				_ = nodes[i%2].pusher.Trigger("load-fanout", "load-event", "x")
			}
		})
	}

	start := time.Now()
	before := received.Load()
	var next atomic.Int64
	var joiners sync.WaitGroup
	errs := make(chan error, loadJoiners)
	for w := range loadJoiners {
		c := harness.Dial(b, nodes[w%2])
		joiners.Go(func() {
			for {
				n := next.Add(1)
				if n > loadJoins {
					return
				}
				channel := fmt.Sprintf("presence-load-%d", n%loadChannels)
				f, err := trySubscribePresence(c, channel, "u"+strconv.FormatInt(n, 10))
				if err == nil && f.Event != pusher.EventSubscriptionSucceeded {
					err = fmt.Errorf("join: %s", f)
				}
				if err == nil {
					err = c.Unsubscribe(channel)
				}
				if err == nil {
					err = c.Ping()
				}
				if err != nil {
					errs <- err
					return
				}
				for range len(c.Pending()) {
					if _, err := c.Next(0); err != nil {
						break
					}
				}
			}
		})
	}
	joiners.Wait()
	took := time.Since(start)
	delivered := received.Load() - before
	stop()
	triggers.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(delivered)/took.Seconds(), "deliveries/s")
	b.ReportMetric(float64(loadJoins)/took.Seconds(), "joins/s")

	if hooked {
		// Every join and leave is a member event, and each channel was
		// occupied and vacated at least once.
		want := int64(2*loadJoins + 2*loadChannels)
		deadline := time.Now().Add(5 * time.Minute)
		for r.events.Load() < want && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if r.events.Load() < want {
			b.Fatalf("%d webhook events arrived, want at least %d", r.events.Load(), want)
		}
		b.ReportMetric(time.Unix(0, r.last.Load()).Sub(start).Seconds(), "s-to-last-webhook")
		b.ReportMetric(float64(r.events.Load()), "webhook-events")
	}
	var peak int64
	for _, n := range nodes {
		peak = max(peak, peakRSS(b, n.proc.Pid()))
	}
	b.ReportMetric(float64(peak)/1024, "peak-MB-per-node")
}

// peakRSS returns a process's peak resident set size in KB (VmHWM).
func peakRSS(t testing.TB, pid int) int64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Logf("no peak RSS: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}
