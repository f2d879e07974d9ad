package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// bigEvent is the data of the slow-consumer test's events. Its fields
// marshal in this order, so seq can be read off the front of the data.
type bigEvent struct {
	Seq int    `json:"seq"`
	Pad string `json:"pad"`
}

// seqOf reads seq from an event's data, `"{\"seq\":12,\"pad\":…`, without
// decoding the whole 8 KB.
func seqOf(f pusherclient.Frame) (int, error) {
	const prefix = `"{\"seq\":`
	s, ok := strings.CutPrefix(string(f.Data[:min(len(f.Data), 32)]), prefix)
	if i := strings.IndexByte(s, ','); ok && i > 0 {
		return strconv.Atoi(s[:i])
	}
	return 0, fmt.Errorf("no seq at the start of %s", f)
}

// TestSlowConsumer: a socket that stops reading is closed with 4100 once
// its queue is full, while 100 sockets on the same channel receive every
// event, in order.
//
// The non-reader's small receive buffer keeps its TCP window small, but the
// server's send buffer still grows to a few MB (about 350 frames of 8 KB
// here), more than the 300 shared events. So the non-reader also sits on
// 100 channels of its own, where each trigger on all of them queues 100
// frames to it alone: 13 such triggers, over 10 MB, are more than the
// kernel and the 256-frame queue hold together. They come 50 events before
// the end, so those 50 reach the readers after the cut, and the non-reader
// resumes reading well within connection.WriteTimeout of its writer
// blocking, so that the 4100 frames still reach it.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	const (
		readers = 100
		events  = 300
		size    = 8 << 10
		window  = 32 // how far the trigger may run ahead of the slowest reader
		channel = "firehose"
		floods  = 13          // triggers on the non-reader's 100 own channels
		floodAt = events - 50 // the last 50 events reach the readers after the cut
	)
	slow := harness.DialWith(t, n, pusherclient.Options{Paused: true, ReceiveBuffer: 4096})
	harness.Subscribe(t, slow, channel)
	floodChannels := make([]string, 100)
	for i := range floodChannels {
		floodChannels[i] = fmt.Sprintf("flood-%d", i)
		harness.Subscribe(t, slow, floodChannels[i])
	}

	clients := make([]*pusherclient.Client, readers)
	for i := range clients {
		clients[i] = harness.Dial(t, n)
		harness.Subscribe(t, clients[i], channel)
	}

	// Each reader checks its events, in order, on its own goroutine.
	progress := make([]atomic.Int64, readers)
	advanced := make(chan struct{}, 1)
	failures := make(chan error, readers)
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for want := range events {
				f, err := c.Expect("big", channel, 30*time.Second)
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
				progress[i].Store(int64(want + 1))
				select {
				case advanced <- struct{}{}:
				default:
				}
			}
		}()
	}
	slowest := func() int64 {
		low := int64(events)
		for i := range progress {
			low = min(low, progress[i].Load())
		}
		return low
	}

	start := time.Now()
	pad := strings.Repeat("x", size)
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	for seq := range events {
		// Keep the readers close behind, so that only the non-reader's
		// queue can fill up.
		for slowest() < int64(seq-window) {
			select {
			case <-advanced:
			case err := <-failures:
				require.NoError(t, err)
			case <-deadline.C:
				require.FailNow(t, "readers stalled", "slowest reader at %d of %d", slowest(), seq)
			}
		}
		require.NoError(t, n.Pusher.Trigger(channel, "big", bigEvent{Seq: seq, Pad: pad}))
		if seq == floodAt {
			// Fill whatever the non-reader's kernel buffers still take.
			for range floods {
				require.NoError(t, n.Pusher.TriggerMulti(floodChannels, "flood", bigEvent{Seq: -1, Pad: pad}))
			}
		}
	}
	t.Logf("triggered %d events in %s", events, time.Since(start))
	slow.Resume()
	wg.Wait()
	t.Logf("readers done after %s", time.Since(start))
	close(failures)
	for err := range failures {
		require.NoError(t, err)
	}
	for _, c := range clients {
		harness.RequireOpen(t, c)
	}

	// The non-reader got a prefix of the events, then 4100.
	got, flooded := 0, 0
	for {
		f, err := slow.Next(wait)
		if err != nil {
			break // closed
		}
		switch f.Event {
		case "flood":
			flooded++
		case "big":
			seq, err := seqOf(f)
			require.NoError(t, err)
			require.Equal(t, got, seq, "the non-reader's events stay in order")
			got++
		case pusher.EventError:
			e, err := f.PusherError()
			require.NoError(t, err)
			assert.Equal(t, pusher.CodeOverCapacity, e.Code, "%s", f)
		}
	}
	code, reason, closed := slow.CloseStatus()
	require.True(t, closed, "the non-reader got %d of %d events and is still open", got, events)
	assert.Equal(t, pusher.CodeOverCapacity, code, "close code (reason %q); the non-reader got %d of %d events", reason, got, events)
	assert.Less(t, flooded, floods*len(floodChannels), "the non-reader was cut off")
	t.Logf("the non-reader got %d of %d events and %d of %d floods before 4100", got, events, flooded, floods*len(floodChannels))
}
