package membership

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fizz-server/fizz/scaling"
)

// countTimeout bounds one write of subscription counts.
const countTimeout = 5 * time.Second

// channelKey names one channel of one app.
type channelKey struct{ appID, channel string }

// counter writes the subscription counts of this node's non-presence
// channels to the shared state. A subscription or unsubscription only
// marks its channel touched; the counter's goroutine then writes the
// node's count of every touched channel, read at that moment, in one
// call. It runs while something is touched, so a lone change is written
// at once and a burst shares one round trip. Counts are absolute and one
// goroutine writes them, so the last write of a channel always carries
// its latest count.
//
// touch returns a channel that is closed once a write that read the
// touched count has ended (written, or failed and left to the next
// re-assert), or nil when the cluster counts this node's sockets on the
// channel already. Membership waits for it before it answers a
// subscription, so the cluster counts a channel as occupied by this node
// before any of the node's subscribers to it (or anyone they tell) can act
// on it; subscriptions to a channel the node is known to hold go at once.
type counter struct {
	m *Membership

	mu      sync.Mutex
	touched map[channelKey]struct{}
	known   map[channelKey]int      // counts written, while above 0
	writing map[channelKey]struct{} // the channels of the write under way: known may be about to drop
	written chan struct{}           // closed when the next write ends; nil: none asked
	stopped bool                    // the last write is done: touch waits for nothing
	wake    chan struct{}           // cap 1: touched has something
}

func newCounter(m *Membership) *counter {
	return &counter{m: m, touched: make(map[channelKey]struct{}), known: make(map[channelKey]int), wake: make(chan struct{}, 1)}
}

// touch marks a channel whose count on this node changed and returns a
// channel closed once that count has been written, or nil when there is
// nothing to wait for (see counter).
func (c *counter) touch(appID, channel string) <-chan struct{} {
	key := channelKey{appID, channel}
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return nil
	}
	c.touched[key] = struct{}{}
	var written chan struct{}
	// A write under way of this channel may be writing 0 (its count was
	// read before this subscription): what the cluster knows then is the
	// next write's.
	if _, stale := c.writing[key]; c.known[key] == 0 || stale {
		if c.written == nil {
			c.written = make(chan struct{})
		}
		written = c.written
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return written
}

// run writes touched channels until ctx ends, then once more.
func (c *counter) run(ctx context.Context) {
	for {
		select {
		case <-c.wake:
			c.write(ctx)
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), countTimeout)
			defer cancel()
			c.mu.Lock()
			c.stopped = true
			c.mu.Unlock()
			c.write(final)
			return
		}
	}
}

// write writes the counts of the channels touched so far.
func (c *counter) write(ctx context.Context) {
	c.mu.Lock()
	touched, written := c.touched, c.written
	c.touched, c.written, c.writing = make(map[channelKey]struct{}), nil, touched
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.writing = nil
		c.mu.Unlock()
	}()
	if written != nil {
		defer close(written)
	}
	if len(touched) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, countTimeout)
	defer cancel()
	m := c.m
	for attempt := 0; ; attempt++ {
		var ts []scaling.Transition
		var err error
		// Read and written under the share lock, so that a re-assert
		// never falls between reading a count and writing it.
		counts := make([]scaling.ChannelCount, 0, len(touched))
		m.change(func() {
			for k := range touched {
				counts = append(counts, scaling.ChannelCount{AppID: k.appID, Channel: k.channel, Subscriptions: m.channels.Subscriptions(k.appID, k.channel)})
			}
			ts, err = m.state.SetSubscriptions(ctx, counts)
		})
		m.decided(ctx, ts)
		c.learn(counts, err)
		if m.recover(ctx, err, attempt) {
			continue
		}
		if err != nil && !errors.Is(err, scaling.ErrShareLost) {
			// The shared state re-asserts the whole share at its next
			// heartbeat, these counts with it.
			m.log.Debug("writing subscription counts failed", "channels", len(touched), "err", err)
		}
		return
	}
}

// learn records the counts a write wrote; a failed write forgets them,
// so that the next subscriptions wait for a write again.
func (c *counter) learn(counts []scaling.ChannelCount, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range counts {
		key := channelKey{n.AppID, n.Channel}
		if err != nil || n.Subscriptions == 0 {
			delete(c.known, key)
		} else {
			c.known[key] = n.Subscriptions
		}
	}
}

// wait waits for a touch's write (nil: none), or for ctx.
func wait(ctx context.Context, written <-chan struct{}) {
	if written == nil {
		return
	}
	select {
	case <-written:
	case <-ctx.Done():
	}
}
