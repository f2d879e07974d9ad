package handlers

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/channels"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/connection/connectiontest"
	"github.com/fizz-server/fizz/modules/dispatcher"
	"github.com/fizz-server/fizz/modules/membership"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/scaling"
)

// BenchmarkClientEvent measures one client frame from a socket's reader to
// its delivery on the other subscriber's socket: parse, rules, rate limit,
// publish through scaling.Local, and the local broadcast.
func BenchmarkClientEvent(b *testing.B) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := &apps.App{ID: "bench", Key: "bench-key", Secret: "bench-secret", PingInterval: time.Hour}
	*app = app.WithDefaults()
	app.ClientEventsPerSecond = 0 // measure the path, not the limiter
	manager := channels.NewManager()
	registry := connection.NewRegistry()
	local := scaling.NewLocal(nil)
	d := dispatcher.New(local, manager, nil, log)
	router, err := scaling.NewRouter([]scaling.Handler{d}, log)
	if err != nil {
		b.Fatal(err)
	}
	if err := local.Subscribe(context.Background(), router.Deliver); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = local.Close() })
	state := scaling.NewLocalState(local, scaling.Config{})
	m := membership.New(manager, registry, state, nil, nil, log)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(runCtx)
	}()
	b.Cleanup(func() { stop(); <-done })
	h := NewMessageHandler(MessageHandlerParams{
		Channels: manager, Membership: m, State: state, Dispatcher: d, Log: log,
	})

	sent, received := &connectiontest.Counter{}, &connectiontest.Counter{}
	sender := connection.New("1.1", app, sent, connection.Options{Log: log})
	receiver := connection.New("2.2", app, received, connection.Options{Log: log})
	b.Cleanup(func() { sender.Finish(true); receiver.Finish(true) })
	const channel = "private-bench"
	manager.Subscribe(sender, channel, nil)
	manager.Subscribe(receiver, channel, nil)

	frame := []byte(`{"event":"client-typing","channel":"private-bench","data":{"user":"alice","typing":true}}`)
	want := int64(len(connection.TextFrame(pusher.EncodeEvent("client-typing", channel, []byte(`{"user":"alice","typing":true}`), ""))))
	ctx := context.Background()
	b.ReportAllocs()
	var delivered int64
	for b.Loop() {
		h.Handle(ctx, sender, frame)
		delivered += want
		// Each event is delivered before the next is sent, so the
		// receiver's queue never fills.
		for received.Written() < delivered {
			runtime.Gosched()
		}
	}
	if sent.Written() != 0 {
		b.Fatalf("the sender received its own client event (%d bytes)", sent.Written())
	}
}
