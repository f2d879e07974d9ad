package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis link budgets. A command that cannot reach Redis fails within
// redisIOTimeout, so publishing during an outage fails fast.
const (
	redisIOTimeout = time.Second
	receivePoll    = 2 * time.Second // idle time after which the link is pinged
	minBackoff     = 100 * time.Millisecond
	maxBackoff     = 5 * time.Second
	// movingMaxBackoff bounds the wait where the master moves (Sentinel, a
	// Redis Cluster): a promoted replica is found within a second of the
	// sentinels or the slot map naming it.
	movingMaxBackoff = time.Second
	loopbackBacklog  = 4096
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
// One code path serves the three shapes of Redis (redisClient): one
// server, a master found through Sentinel, or a Redis Cluster. On a
// Redis Cluster the channels are shard channels (SSUBSCRIBE, SPUBLISH)
// and keys carry the hash tag {channel} (Prefix): the shared channel and
// the reply channels live in that tag's slot with the state, and events
// go over ClusterShards more shard channels, spread over the slots, a
// Pusher channel always on the same one (Shard), so per-channel order
// holds while the event traffic spreads over the masters. Presence
// channels stay on the shared channel, with their member transitions.
//
// The subscription loop connects, reconnects with back-off forever and
// resubscribes; it never ends the process. While the link is down, Publish
// delivers through a local loopback (so this node's sockets keep working)
// and returns ErrLocalOnly at once.
type Redis struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // set on a Redis Cluster
	prefix  string               // of every key: channel, or {channel} on a Redis Cluster
	channel string               // the shared channel: prefix
	reply   string
	shards  []string // a Redis Cluster's event shard channels
	node    string
	// maxBackoff bounds the wait between two tries to subscribe.
	maxBackoff time.Duration
	log        *slog.Logger

	up      atomic.Bool
	lastErr atomic.Pointer[string]
	// wasUp is set once the link was up; reconnected (cap 1) then hears
	// each time it comes back (Reconnected).
	wasUp       atomic.Bool
	reconnected chan struct{}

	loopback chan Envelope
	received chan Envelope // from the subscription loop to the delivery goroutine
	mu       sync.Mutex
	started  bool
	closed   bool
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	obs      Observer // may be nil
}

var (
	_ PubSubProvider = (*Redis)(nil)
	_ Sharder        = (*Redis)(nil)
)

// NewRedis returns a Redis provider for cfg; obs (may be nil) hears every
// Publish. It performs no I/O.
func NewRedis(cfg Config, log *slog.Logger, obs Observer) (*Redis, error) {
	client, err := redisClient(cfg)
	if err != nil {
		return nil, err
	}
	// go-redis logs on its own (dial failures while Redis is down): into
	// the structured log with the rest, at debug level, since the link's
	// state is logged by the loop below.
	redis.SetLogger(redisLog{log})
	node := NewNodeID()
	prefix := cfg.Channel
	cluster, _ := client.(*redis.ClusterClient)
	var shards []string
	if cluster != nil {
		prefix = "{" + cfg.Channel + "}"
		shards = ShardChannels(cfg.Channel, ClusterShards)
	}
	wait := maxBackoff
	if len(cfg.RedisSentinels) > 0 || cluster != nil {
		wait = movingMaxBackoff
	}
	r := &Redis{
		client:      client,
		cluster:     cluster,
		prefix:      prefix,
		channel:     prefix,
		reply:       prefix + ":node:" + node,
		shards:      shards,
		node:        node,
		maxBackoff:  wait,
		log:         log,
		obs:         obs,
		loopback:    make(chan Envelope, loopbackBacklog),
		received:    make(chan Envelope, receivedBacklog),
		reconnected: make(chan struct{}, 1),
	}
	r.setDown(errors.New("not connected yet"))
	return r, nil
}

// redisClient returns the client of the shape cfg selects: a Redis
// Cluster (RedisCluster), a master through Sentinel (RedisSentinels), or
// the one server of RedisURL. RedisURL gives the credentials, the TLS
// choice and (but on a cluster) the db in every shape.
func redisClient(cfg Config) (redis.UniversalClient, error) {
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("scaling: REDIS_URL: %w", err)
	}
	switch {
	case len(cfg.RedisCluster) > 0 && len(cfg.RedisSentinels) > 0:
		return nil, errors.New("scaling: Sentinel and Redis Cluster are both set")
	case len(cfg.RedisCluster) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.RedisCluster, Username: opts.Username, Password: opts.Password, TLSConfig: opts.TLSConfig,
			DialTimeout: redisIOTimeout, ReadTimeout: redisIOTimeout, WriteTimeout: redisIOTimeout,
			// A redirect (MOVED, ASK) is safe to follow: the command did
			// not run. (go-redis also retries a command after a network
			// error within these attempts; see docs/architecture.md.)
			MaxRedirects: 3, DialerRetries: 1,
		}), nil
	case len(cfg.RedisSentinels) > 0:
		if cfg.RedisMaster == "" {
			return nil, errors.New("scaling: Sentinel needs the master's name")
		}
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.RedisMaster, SentinelAddrs: cfg.RedisSentinels,
			Username: opts.Username, Password: opts.Password, DB: opts.DB, TLSConfig: opts.TLSConfig,
			DialTimeout: redisIOTimeout, ReadTimeout: redisIOTimeout, WriteTimeout: redisIOTimeout,
			MaxRetries: -1, DialerRetries: 1,
		}), nil
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
	return redis.NewClient(opts), nil
}

// Node returns this node's id.
func (r *Redis) Node() string { return r.node }

// Client returns the Redis client, for the cluster state kept in Redis.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Prefix is the start of every key of the cluster state, and the name of
// the shared channel: Config.Channel, within braces on a Redis Cluster so
// that every key hashes to one slot.
func (r *Redis) Prefix() string { return r.prefix }

// Sharded reports whether the link is a Redis Cluster's sharded pub/sub.
func (r *Redis) Sharded() bool { return r.cluster != nil }

// Reconnected hears each time the link comes back after it was up: the
// shared state then re-asserts this node's share, since Redis (a new
// master after a failover, a restarted server) may miss part of it.
func (r *Redis) Reconnected() <-chan struct{} { return r.reconnected }

// Shard implements Sharder: the shard channel that carries the events of
// an app's channel, by index into the event shard channels, or -1 for
// the shared channel. Always -1 but on a Redis Cluster, and -1 there too
// for a presence channel: its member transitions are published by the
// state's scripts on the shared channel (in the slot of the state's keys),
// and its events must keep their order with them.
func (r *Redis) Shard(appID, channel string) int {
	if len(r.shards) == 0 || strings.HasPrefix(channel, "presence-") || strings.HasPrefix(channel, ":") {
		return -1
	}
	return ShardOf(appID, channel, len(r.shards))
}

// route is the channel e goes over: its Pusher channel's shard channel
// on a Redis Cluster (Shard), else the shared channel.
func (r *Redis) route(e Envelope) string {
	if e.Route == "" {
		return r.channel
	}
	if k := r.Shard(e.AppID, e.Route); k >= 0 {
		return r.shards[k]
	}
	return r.channel
}

// replyChannels counts the nodes' reply channels: on a Redis Cluster,
// the shard channels of the master of the prefix's slot, where they all
// are.
func (r *Redis) replyChannels(ctx context.Context) (int, error) {
	pattern := globEscape(r.prefix) + ":node:*"
	if r.cluster == nil {
		nodes, err := r.client.PubSubChannels(ctx, pattern).Result()
		return len(nodes), err
	}
	master, err := r.cluster.MasterForKey(ctx, r.prefix)
	if err != nil {
		return 0, err
	}
	nodes, err := master.PubSubShardChannels(ctx, pattern).Result()
	return len(nodes), err
}

// publishTo sends b over channel: SPUBLISH on a Redis Cluster.
func (r *Redis) publishTo(ctx context.Context, channel string, b []byte) *redis.IntCmd {
	if r.cluster != nil {
		return r.cluster.SPublish(ctx, channel, b)
	}
	return r.client.Publish(ctx, channel, b)
}

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
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			// PUBLISH was sent and no answer came (a stalled Redis):
			// Redis may still deliver it to every node, this one
			// included, so a local copy could be a second one.
			r.log.Warn("publish timed out; Redis may still deliver it", "err", err)
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
	n, err := r.publishTo(ctx, r.route(e), b).Result()
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
	return r.publishTo(ctx, r.prefix+":node:"+node, b).Err()
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
	received := r.received
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

// Waiting reports the envelopes received or looped back and not yet
// handed to deliver (the subscription reads ahead of a busy delivery by
// up to receivedBacklog).
func (r *Redis) Waiting() int { return len(r.received) + len(r.loopback) }

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
		if r.cluster != nil {
			// A shard may have failed over or its slots moved: read the
			// cluster's map again (in the background) before
			// resubscribing.
			r.cluster.ReloadState(ctx)
		}
		select {
		case <-time.After(min(backoff, r.maxBackoff)):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// subscription is one subscribed connection and the number of channels
// it confirms.
type subscription struct {
	ps       *redis.PubSub
	channels int
}

// subscribe opens the subscriptions of one session: one connection for
// the shared and the reply channel, and on a Redis Cluster one more per
// event shard channel (each shard channel lives on the master of its
// slot).
func (r *Redis) subscribe(ctx context.Context) []subscription {
	if r.cluster == nil {
		return []subscription{{r.client.Subscribe(ctx, r.channel, r.reply), 2}}
	}
	subs := []subscription{{r.cluster.SSubscribe(ctx, r.channel, r.reply), 2}}
	for _, ch := range r.shards {
		subs = append(subs, subscription{r.cluster.SSubscribe(ctx, ch), 1})
	}
	return subs
}

// session subscribes once and delivers until the link fails: until any
// of its subscriptions fails, on a Redis Cluster.
func (r *Redis) session(ctx context.Context, deliver func(context.Context, Envelope), connected func()) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	subs := r.subscribe(ctx)
	// A read in progress does not watch ctx: closing the subscriptions
	// when ctx ends is what interrupts them, so that Close does not hang.
	closeAll := func() {
		for _, s := range subs {
			_ = s.ps.Close()
		}
	}
	defer closeAll()
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	for _, s := range subs {
		for confirmed := 0; confirmed < s.channels; {
			msg, err := s.ps.ReceiveTimeout(ctx, redisIOTimeout*2)
			if err != nil {
				return fmt.Errorf("subscribe %s: %w", r.channel, err)
			}
			if _, ok := msg.(*redis.Subscription); ok {
				confirmed++
			}
		}
	}
	r.up.Store(true)
	connected()
	if r.wasUp.Swap(true) {
		select {
		case r.reconnected <- struct{}{}:
		default:
		}
	}
	r.log.Info("redis link up", "channel", r.channel, "node", r.node, "subscriptions", len(subs))
	if len(subs) == 1 {
		return r.listen(ctx, subs[0].ps, deliver)
	}
	// Each subscription delivers in its own order; the first to fail
	// ends the session (cancel closes the others).
	errs := make(chan error, len(subs))
	for _, s := range subs {
		go func() {
			errs <- r.listen(ctx, s.ps, deliver)
			cancel()
		}()
	}
	first := <-errs
	for range len(subs) - 1 {
		<-errs
	}
	return first
}

// listen delivers what ps receives until it fails or ctx ends.
func (r *Redis) listen(ctx context.Context, ps *redis.PubSub, deliver func(context.Context, Envelope)) error {
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
		switch m := msg.(type) {
		case *redis.Message:
			e, err := DecodeEnvelope([]byte(m.Payload))
			if err != nil {
				r.log.Warn("dropped envelope", "err", err)
				continue
			}
			deliver(ctx, e)
		case *redis.Subscription:
			if m.Kind == "sunsubscribe" {
				// Redis Cluster moved the shard channel's slot to another
				// master: subscribe again where it is now.
				return fmt.Errorf("shard channel %s moved", m.Channel)
			}
		}
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
