package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// bigEvent is the data of the slow-consumer test's events. Its fields
// marshal in this order, so seq can be read off the front of the data.
type bigEvent struct {
	Seq int    `json:"seq"`
	Pad string `json:"pad"`
}

// seqOf reads seq from an event's data without decoding the whole of it:
// `{"seq":12,"pad":…` as a client event carries it, or `"{\"seq\":12,…`
// as the HTTP API does.
func seqOf(f pusherclient.Frame) (int, error) {
	head := string(f.Data[:min(len(f.Data), 32)])
	s, ok := strings.CutPrefix(head, `{"seq":`)
	if !ok {
		s, ok = strings.CutPrefix(head, `"{\"seq\":`)
	}
	if i := strings.IndexByte(s, ','); ok && i > 0 {
		return strconv.Atoi(s[:i])
	}
	return 0, fmt.Errorf("no seq at the start of %s", f)
}

// TestSlowConsumer is the burst that once closed every socket: 600 client
// events of 20 KB sent as fast as one socket can to a private channel.
// The 100 sockets (10 under the race detector) that read promptly get every event, in order, and stay
// open; the 5 that never read are closed once their writes make no
// progress for the grace period (the default, 5 s: a reader in this same
// process may wait a while for a core), and only they are counted as slow.
func TestSlowConsumer(t *testing.T) {
	// Not parallel: a gigabyte of writes would slow the timed tests beside it.
	const (
		nonReaders = 5
		events     = 600
		size       = 20 << 10
		channel    = "private-burst"
		grace      = connection.DefaultSlowConsumerGrace
	)
	readers := 100
	if harness.Race {
		readers = 10 // 1.2 GB of writes is minutes under the race detector
	}
	n := harness.Start(t, func(c *app.Config) {
		c.Apps[0].MaxMessageSize = 32 << 10
		c.Apps[0].ClientEventsPerSecond = 0 // no cap: the burst is the point
	})
	stalled := make([]*pusherclient.Client, nonReaders)
	for i := range stalled {
		stalled[i] = harness.DialWith(t, n, pusherclient.Options{Paused: true, ReceiveBuffer: 4096})
		harness.Subscribe(t, stalled[i], channel)
	}
	clients := harness.DialMany(t, n, readers)
	harness.SubscribeAll(t, clients, channel)
	sender := harness.DialWith(t, n, pusherclient.Options{Timeout: 30 * time.Second}) // its pong waits behind the burst
	harness.Subscribe(t, sender, channel)

	// Each reader checks its events, in order, on its own goroutine.
	failures := make(chan error, readers)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			for want := range events {
				f, err := c.Expect("client-big", channel, 30*time.Second)
				if err == nil {
					var seq int
					if seq, err = seqOf(f); err == nil && seq != want {
						err = fmt.Errorf("got event %d, want %d", seq, want)
					}
				}
				if err != nil {
					failures <- fmt.Errorf("reader %d, event %d: %w", i, want, err)
					return
				}
			}
		})
	}

	start := time.Now()
	pad := strings.Repeat("x", size)
	for seq := range events {
		require.NoError(t, sender.Trigger("client-big", channel, bigEvent{Seq: seq, Pad: pad}))
	}
	require.NoError(t, sender.Ping(), "the server has taken the whole burst")
	t.Logf("the burst of %d events of %d KB took %s", events, size>>10, time.Since(start).Round(time.Millisecond))
	wg.Wait()
	t.Logf("every reader had every event after %s", time.Since(start).Round(time.Millisecond))
	close(failures)
	for err := range failures {
		require.NoError(t, err)
	}
	for _, c := range clients {
		harness.RequireOpen(t, c)
	}
	harness.RequireOpen(t, sender)

	// The stalled sockets are cut within a few graces of falling behind,
	// after an in-order prefix of the burst.
	require.Eventually(t, func() bool {
		return n.Metric(t, "fizz_slow_consumer_closes_total") == nonReaders
	}, 3*grace, 50*time.Millisecond, "every stalled socket is closed as a slow consumer")
	t.Logf("the stalled sockets were closed %s after the burst began", time.Since(start).Round(time.Millisecond))
	for i, c := range stalled {
		c.Resume()
		got := 0
		for {
			f, err := c.Next(wait)
			if err != nil {
				break // closed
			}
			if f.Event == "client-big" {
				seq, err := seqOf(f)
				require.NoError(t, err)
				require.Equal(t, got, seq, "stalled socket %d: its events stay in order", i)
				got++
			}
		}
		_, _, closed := c.CloseStatus()
		require.True(t, closed, "stalled socket %d got %d of %d events and is still open", i, got, events)
		assert.Less(t, got, events, "stalled socket %d was cut off", i)
	}
}
