package cluster_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// Join benchmark sizes: joinWorkers sockets join and leave side by side,
// spread over the nodes and over joinChannels channels.
const (
	joinWorkers  = 16
	joinChannels = 4
)

// BenchmarkJoinLeave measures subscription throughput: each op is one
// socket's subscription (answered with subscription_succeeded) and its
// unsubscription (proved handled by a pong), with joinWorkers sockets at
// work at once. On presence channels every join and leave also changes
// the member set and sends member events to the channel's other members.
// It reports joins per second; compare it only with itself, run on the
// same machine.
func BenchmarkJoinLeave(b *testing.B) {
	tests := []struct {
		name    string
		scaling bool
		nodes   int
		prefix  string
	}{
		{"presence/single", false, 1, "presence-bench-"},
		{"presence/cluster-2", true, 2, "presence-bench-"},
		{"public/single", false, 1, "bench-"},
		{"public/cluster-2", true, 2, "bench-"},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			// Nodes log at info: debug lines would be part of what is measured.
			nodes := startNodes(b, tt.scaling, tt.nodes, func(c *app.Config) { c.Log.Level = "info" })
			workers := make(chan *joinWorker, joinWorkers)
			for i := range joinWorkers {
				workers <- &joinWorker{
					c:       harness.Dial(b, nodes[i%len(nodes)]),
					user:    fmt.Sprintf("w%02d", i),
					channel: fmt.Sprintf("%s%d", tt.prefix, i%joinChannels),
				}
			}
			var failed atomic.Pointer[error]
			b.SetParallelism(joinWorkers / 2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				w := <-workers
				for pb.Next() {
					if err := w.joinLeave(); err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
				}
			})
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
		})
	}
}

// joinWorker is one socket of BenchmarkJoinLeave.
type joinWorker struct {
	c       *pusherclient.Client
	user    string
	channel string
}

// joinLeave subscribes, waits for the answer, unsubscribes and pings.
func (w *joinWorker) joinLeave() error {
	var f pusherclient.Frame
	var err error
	if pusher.KindOf(w.channel).Presence {
		f, err = trySubscribePresence(w.c, w.channel, w.user)
	} else {
		f, err = w.c.Subscribe(w.channel, "", "")
	}
	if err != nil {
		return err
	}
	if f.Event != pusher.EventSubscriptionSucceeded {
		return fmt.Errorf("subscribe %s: %s", w.channel, f)
	}
	if err := w.c.Unsubscribe(w.channel); err != nil {
		return err
	}
	if err := w.c.Ping(); err != nil {
		return err
	}
	// Member events of the others' joins and leaves pile up otherwise.
	for range len(w.c.Pending()) {
		if _, err := w.c.Next(0); err != nil {
			break
		}
	}
	return nil
}
