package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis link budgets. A command that cannot reach Redis fails within
// redisIOTimeout, so publishing during an outage fails fast.
const (
	redisIOTimeout  = time.Second
	receivePoll     = 2 * time.Second // idle time after which the link is pinged
	minBackoff      = 100 * time.Millisecond
	maxBackoff      = 5 * time.Second
	loopbackBacklog = 4096
	// receivedBacklog lets the subscription loop read ahead of a busy
	// delivery goroutine, so that Redis's output buffer does not fill.
	receivedBacklog = 256
)

// ErrLocalOnly is returned by Publish while the Redis link is down: the
// envelope was delivered to this node only, not to the cluster.
var ErrLocalOnly = errors.New("scaling: redis link is down; delivered to this node only")

// Redis is the cluster PubSubProvider over Redis pub/sub. Every node
// subscribes to the shared channel and to its own reply channel
// "{channel}:node:{id}". It mirrors Reverb's RedisPubSubProvider.
//
// The subscription loop connects, reconnects with back-off forever and
// resubscribes; it never ends the process. While the link is down, Publish
// delivers through a local loopback (so this node's sockets keep working)
// and returns ErrLocalOnly at once.
type Redis struct {
	client  *redis.Client
	channel string
	reply   string
	node    string
	log     *slog.Logger

	up      atomic.Bool
	lastErr atomic.Pointer[string]

	loopback chan Envelope
	mu       sync.Mutex
	started  bool
	closed   bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	obs      Observer // may be nil
}

var _ PubSubProvider = (*Redis)(nil)

// NewRedis returns a Redis provider for cfg; obs (may be nil) hears every
// Publish. It performs no I/O.
func NewRedis(cfg Config, log *slog.Logger, obs Observer) (*Redis, error) {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("scaling: REDIS_URL: %w", err)
	}
	opts.DialTimeout = redisIOTimeout
	opts.ReadTimeout = redisIOTimeout
	opts.WriteTimeout = redisIOTimeout
	// A retried PUBLISH could deliver an event twice: never retry.
	opts.MaxRetries = -1
	// One dial per command: go-redis would otherwise try five times, 100 ms
	// apart, before failing a command while Redis is down; the
	// subscription loop has its own back-off.
	opts.DialerRetries = 1
	// go-redis logs on its own (dial failures while Redis is down): into
	// the structured log with the rest, at debug level, since the link's
	// state is logged by the loop below.
	redis.SetLogger(redisLog{log})
	node := NewNodeID()
	r := &Redis{
		client:   redis.NewClient(opts),
		channel:  cfg.Channel,
		reply:    cfg.Channel + ":node:" + node,
		node:     node,
		log:      log,
		obs:      obs,
		loopback: make(chan Envelope, loopbackBacklog),
	}
	r.setDown(errors.New("not connected yet"))
	return r, nil
}

// Node returns this node's id.
func (r *Redis) Node() string { return r.node }

// Client returns the Redis client, for the cluster state kept in Redis.
func (r *Redis) Client() *redis.Client { return r.client }

// Up reports whether the subscription to Redis is live.
func (r *Redis) Up() bool { return r.up.Load() }

// Ping implements Link without a round trip: nil while subscribed.
func (r *Redis) Ping(context.Context) error {
	if r.up.Load() {
		return nil
	}
	return fmt.Errorf("redis link down: %s", *r.lastErr.Load())
}

func (r *Redis) setDown(err error) {
	msg := err.Error()
	r.lastErr.Store(&msg)
	r.up.Store(false)
}

// Publish sends e to every node and reports how many received it. While
// the link is down it delivers e to this node only and returns ErrLocalOnly.
func (r *Redis) Publish(ctx context.Context, e Envelope) (_ int64, err error) {
	if r.obs != nil {
		defer observePublish(r.obs, time.Now(), &err)
	}
	e.V, e.Origin = Version, r.node
	n, err := r.publish(ctx, e)
	switch {
	case err == nil || errors.Is(err, errEncode):
		return n, err
	case err != ErrNotPublished: // bare: the link was down; wrapped: PUBLISH itself failed
		if ctx.Err() != nil {
			return 0, err
		}
		r.log.Warn("publish failed; delivering locally", "err", err)
	}
	return 1, errors.Join(ErrLocalOnly, r.deliverLocally(ctx, e))
}

// ErrNotPublished is returned by publishAll when the envelope reached no
// node, this one included.
var ErrNotPublished = errors.New("scaling: redis link is down; not published")

// errEncode marks an envelope that cannot be encoded: no retry helps.
var errEncode = errors.New("encode envelope")

// publishAll sends e to every node, this one included, through Redis and
// reports how many received it. Unlike Publish it never falls back to
// this node alone: while the link is down, or when PUBLISH fails, nothing
// is delivered and the error wraps ErrNotPublished.
func (r *Redis) publishAll(ctx context.Context, e Envelope) (_ int64, err error) {
	if r.obs != nil {
		defer observePublish(r.obs, time.Now(), &err)
	}
	e.V, e.Origin = Version, r.node
	return r.publish(ctx, e)
}

// publish sends e, stamped with this node as its origin, through Redis only.
func (r *Redis) publish(ctx context.Context, e Envelope) (int64, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", errEncode, err)
	}
	if !r.up.Load() {
		return 0, ErrNotPublished
	}
	n, err := r.client.Publish(ctx, r.channel, b).Result()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNotPublished, err)
	}
	return n, nil
}

// deliverLocally queues e on the loopback, waiting while it is full.
func (r *Redis) deliverLocally(ctx context.Context, e Envelope) error {
	select {
	case r.loopback <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reply sends e to one node's reply channel.
func (r *Redis) Reply(ctx context.Context, node string, e Envelope) error {
	e.V, e.Origin = Version, r.node
	if node == r.node && !r.up.Load() {
		select {
		case r.loopback <- e:
			return nil
		default:
			return ErrReplyDropped
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode envelope: %w", err)
	}
	return r.client.Publish(ctx, r.channel+":node:"+node, b).Err()
}

// Subscribe starts the subscription loop and the delivery goroutine; it
// does not wait for Redis. One goroutine delivers both what Redis sends
// and the loopback (what was published while the link was down), one
// envelope at a time.
func (r *Redis) Subscribe(_ context.Context, deliver func(context.Context, Envelope)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if r.started {
		return errors.New("scaling: already subscribed")
	}
	r.started = true
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	received := make(chan Envelope, receivedBacklog)
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.receiveLoop(ctx, func(ctx context.Context, e Envelope) {
			select {
			case received <- e:
			case <-ctx.Done():
			}
		})
	}()
	go func() {
		defer r.wg.Done()
		for {
			select {
			case e := <-received:
				deliver(ctx, e)
			case e := <-r.loopback:
				deliver(ctx, e)
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// receiveLoop keeps a subscription alive until ctx ends.
func (r *Redis) receiveLoop(ctx context.Context, deliver func(context.Context, Envelope)) {
	backoff := minBackoff
	for ctx.Err() == nil {
		err := r.session(ctx, deliver, func() { backoff = minBackoff })
		if ctx.Err() != nil {
			return
		}
		wasUp := r.up.Load()
		r.setDown(err)
		if wasUp {
			r.log.Error("redis link lost; reconnecting", "err", err)
		} else {
			r.log.Debug("redis still unreachable", "err", err, "retry_in", backoff.String())
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// session subscribes once and delivers until the link fails.
func (r *Redis) session(ctx context.Context, deliver func(context.Context, Envelope), connected func()) error {
	ps := r.client.Subscribe(ctx, r.channel, r.reply)
	defer ps.Close()
	// A read in progress does not watch ctx: closing the subscription when
	// ctx ends is what interrupts it, so that Close does not hang.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer stop()
	for confirmed := 0; confirmed < 2; {
		msg, err := ps.ReceiveTimeout(ctx, redisIOTimeout*2)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", r.channel, err)
		}
		if _, ok := msg.(*redis.Subscription); ok {
			confirmed++
		}
	}
	r.up.Store(true)
	connected()
	r.log.Info("redis link up", "channel", r.channel, "node", r.node)
	for {
		msg, err := ps.ReceiveTimeout(ctx, receivePoll)
		var ne net.Error
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && errors.As(err, &ne) && ne.Timeout():
			// Quiet link: check it is still alive.
			if err := ps.Ping(ctx); err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			continue
		case err != nil:
			return err
		}
		m, ok := msg.(*redis.Message)
		if !ok {
			continue // a pong or a subscription change
		}
		e, err := DecodeEnvelope([]byte(m.Payload))
		if err != nil {
			r.log.Warn("dropped envelope", "err", err)
			continue
		}
		deliver(ctx, e)
	}
}

// Close stops the loops, waits for them and closes the client.
func (r *Redis) Close() error {
	r.mu.Lock()
	r.closed = true
	cancel := r.cancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	r.wg.Wait()
	r.up.Store(false)
	return r.client.Close()
}

// redisLog hands go-redis's own log lines to a structured logger. The
// logger is go-redis's one global: the last Redis provider made sets it.
type redisLog struct{ log *slog.Logger }

// Printf logs one go-redis line at debug level.
func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	if l.log.Enabled(ctx, slog.LevelDebug) {
		l.log.Debug("redis client", "detail", fmt.Sprintf(format, v...))
	}
}
