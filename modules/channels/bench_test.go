package channels

import (
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"testing"

	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
	"github.com/fizz-server/fizz/modules/pusher"
)

// BenchmarkBroadcast measures one event fanned out to every subscriber of a
// channel: the broadcast itself, the queueing and the writers' writes. It
// reports the time and allocations per delivery, and deliveries per write.
// Two paths:
//   - one-at-a-time: each event is written to every socket before the next
//     is broadcast, so every socket is idle when an event comes (a trigger,
//     then quiet: the common case); nothing waits behind it, so the
//     broadcast writes to each socket itself;
//   - burst: 64 events are broadcast before the writers catch up, each but
//     the last with more waiting behind it, so the sockets are behind and
//     their writers coalesce.
func BenchmarkBroadcast(b *testing.B) {
	paths := []struct {
		name  string
		burst int // events broadcast before waiting for the writers
	}{
		{"one-at-a-time", 1},
		{"burst", 64}, // below QueueSize: no queue fills (that would be a slow consumer, not the hot path)
	}
	for _, path := range paths {
		for _, n := range []int{1_000, 10_000} {
			b.Run(fmt.Sprintf("%s/subscribers=%d", path.name, n), func(b *testing.B) {
				benchmarkBroadcast(b, n, path.burst)
			})
		}
	}
}

func benchmarkBroadcast(b *testing.B, n, burst int) {
	app := testApp("bench")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := NewManager()
	registry := connection.NewRegistry()
	writers := connection.NewWriters()
	writers.Start()
	written := &connectiontest.Counter{} // shared by every socket
	conns := make([]*connection.Conn, n)
	for i := range conns {
		conns[i] = connection.New(fmt.Sprintf("%d.%d", i, i), app, written, connection.Options{Log: log, Writers: writers})
		if err := registry.Add(conns[i]); err != nil {
			b.Fatal(err)
		}
		m.Subscribe(conns[i], "bench-channel", nil)
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Finish(true)
		}
		writers.Stop()
	})
	frame := connection.TextFrame(pusher.EncodeEvent("price", "bench-channel", pusher.StringData([]byte(`{"symbol":"FZZ","price":101.5}`)), ""))
	want := written.Written()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	writes := written.Writes()
	b.ResetTimer()
	followed := func() bool { return true }
	alone := func() bool { return false }
	for i := 0; b.Loop(); i++ {
		last := i%burst == burst-1
		more := followed
		if last {
			more = alone
		}
		m.Broadcast(app.ID, "bench-channel", frame, "", more)
		want += int64(len(frame) * n)
		if last {
			for written.Written() < want {
				runtime.Gosched()
			}
		}
	}
	for written.Written() < want {
		runtime.Gosched()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	deliveries := float64(b.N) * float64(n)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")
	b.ReportMetric(deliveries/float64(written.Writes()-writes), "deliveries/write")
}
