package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultLease is how long a node's share outlives its last heartbeat.
const DefaultLease = 15 * time.Second

// RedisState is the cluster's shared State in Redis. Every key starts with
// the scaling channel name {p}, so clusters can share one Redis:
//
//	{p}:nodes                           set of live node ids
//	{p}:intact                          set while Redis holds every node's share
//	{p}:lease:{node}                    a node's lease, renewed every lease/3
//	{p}:reaped:{node}                   a reaped node's members were announced gone
//	{p}:node:{node}:channels            "app\nchannel" entries the node subscribes to
//	{p}:node:{node}:apps                apps the node counts sockets of
//	{p}:ch:{app}:{channel}:subs         node -> subscriptions on that node
//	{p}:ch:{app}:{channel}:count        subscriptions across the cluster
//	{p}:ch:{app}:{channel}:seq          Seq of the channel's last change
//	{p}:ch:{app}:{channel}:members      presence: user -> user_info
//	{p}:ch:{app}:{channel}:users        presence: user -> sockets across the cluster
//	{p}:ch:{app}:{channel}:node:{n}     presence: user -> sockets on node n
//	{p}:ch:{app}:{channel}:gone:{user}  presence: the user's removal was announced (an hour)
//	{p}:conns:{app}                     node -> open sockets
//	{p}:cache:{app}:{channel}           last event, expiring after CacheTTL
//
// On a Redis Cluster {p} is the scaling channel within braces, a hash
// tag: every key is in one slot, so each script (and the re-assert, which
// spans every channel of a node) runs on one shard, and the scripts
// publish to the shared channel, a shard channel of that same slot, with
// SPUBLISH. The events themselves go over the other shard channels
// (Redis.Shard), which is where the traffic is.
//
// Each change runs as one Lua script, so it is atomic, and the script
// decides the transitions it causes: it numbers them with the channel's
// next Seq, publishes the member transitions on the scaling channel itself
// (so every node hears them once, in the order of the changes, even if
// this node dies a moment later) and returns them all to the caller.
//
// Every script that changes or reads a channel first checks that the
// state is whole: that {p}:intact and this node's lease exist. When Redis
// lost its data, or reaped this node while it was paused, the script
// changes nothing and the call fails with ErrShareLost; Recover then has
// every node re-assert its share and sets {p}:intact again. So a data loss
// is noticed at the next change, not at the next heartbeat.
//
// A node whose lease expired has its share removed by whichever survivor
// sees it first (the script removes a share once), and that script
// announces what follows (members removed, channels vacated).
//
// The Seq of a channel is a hybrid clock kept in its seq key: each change
// sets it, in the script that makes the change, to one more than before
// but never less than Redis's clock in microseconds. Numbers therefore
// grow for as long as the key lives, and a key that is gone (expired after
// seqTTL without a change, or lost with the rest of Redis's data) starts
// again above every number handed out before it, so no socket waits for
// numbers it has already seen. Should Redis's clock step back (a failover
// to a host whose clock is behind), the re-assert raises each counter to
// the largest number the node's sockets have seen.
type RedisState struct {
	client  redis.UniversalClient
	pubsub  *Redis
	sharded bool // a Redis Cluster: the scripts publish with SPUBLISH
	prefix  string
	node    string
	lease   time.Duration
	timeout time.Duration
	log     *slog.Logger

	// hooks are Config.Webhooks and Config.SubscriptionCounts as the
	// scripts read them (hookedKinds), and as one JSON object for the
	// re-assert; outboxes are the apps with webhooks.
	hooks     map[string]string
	hooksJSON string
	outboxes  []string

	// dirty is set when a write failed, so the next heartbeat re-asserts.
	dirty atomic.Bool
	// dropped counts outbox entries found trimmed (Outbox.Dropped).
	dropped atomic.Int64

	// assertMu orders re-asserts, which the heartbeat, Recover and the
	// answers to other nodes' recoveries all run.
	assertMu sync.Mutex

	// recoverMu lets one Recover run at a time; recovered counts the
	// recoveries done, so a caller that waited for one does not start
	// another.
	recoverMu sync.Mutex
	recovered atomic.Uint64

	mu sync.Mutex
	// unannounced holds the presence leaves that could not be written:
	// once the state is whole again, those users that are no longer
	// members are announced gone (Redis may have lost the share they
	// were in).
	unannounced map[memberKey]struct{}
	// source and decided are Run's, for Recover.
	source  ShareSource
	decided func(context.Context, []Transition)
	// leading is set while this node leads the outbox; outboxApps are
	// its reading positions.
	leading    bool
	outboxApps []*outboxApp
	// acks are the recoveries in progress on this node, by id (each
	// hears the nodes that answer); asks are other nodes' recoveries this
	// node has yet to answer.
	acks map[string]chan string
	asks []Envelope
	ask  chan struct{} // cap 1: asks has something
	// peers are the other nodes listed in the state at the last reap: a
	// recovery waits for their answers too.
	peers []string
}

// memberKey names one member of one presence channel.
type memberKey struct{ appID, channel, userID string }

var (
	_ State  = (*RedisState)(nil)
	_ Outbox = (*RedisState)(nil)
)

// errLinkDown is returned at once while the Redis link is down.
var errLinkDown = errors.New("the Redis link is down")

// NewRedisState returns the State of the node of provider r, in the Redis
// r uses, keys prefixed by r.Prefix(). It performs no I/O.
func NewRedisState(r *Redis, cfg Config, log *slog.Logger) *RedisState {
	lease := cfg.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	hooks := hookedKinds(cfg)
	hooksJSON, _ := json.Marshal(hooks) // strings only: never fails
	return &RedisState{
		client: r.Client(), pubsub: r, sharded: r.Sharded(), prefix: r.Prefix(), node: r.Node(),
		lease: lease, timeout: timeout, log: log,
		hooks: hooks, hooksJSON: string(hooksJSON), outboxes: webhookApps(cfg),
		unannounced: make(map[memberKey]struct{}),
		acks:        make(map[string]chan string),
		ask:         make(chan struct{}, 1),
	}
}

// down reports whether the link is down; a write that is refused for it
// leaves the node to re-assert its share.
func (s *RedisState) down(write bool) bool {
	if s.pubsub.Up() {
		return false
	}
	if write {
		s.dirty.Store(true)
	}
	return true
}

func (s *RedisState) intactKey() string           { return s.prefix + ":intact" }
func (s *RedisState) leaseKey(node string) string { return s.prefix + ":lease:" + node }
func (s *RedisState) channelsKey(node string) string {
	return s.prefix + ":node:" + node + ":channels"
}
func (s *RedisState) base(appID, channel string) string {
	return s.prefix + ":ch:" + appID + ":" + channel
}

// seqTTL is how long a channel's seq key outlives the channel's last
// change. Any member event still in flight is far younger; once the key
// is gone the clock restarts the numbers above the old ones.
const seqTTL = time.Hour

// goneTTL is how long the state remembers that a member's removal was
// announced: far longer than a leave that could not be written waits for
// the state to be whole again (see gone).
const goneTTL = time.Hour

// prelude defines what every script shares. KEYS[1] and KEYS[2] of the
// scripts that use whole() are {p}:intact and this node's lease.
//
// bump(key) returns the Seq of a new change: one more than the last, and
// at least Redis's clock in microseconds (below 2^53 until the year 2255,
// so exact in a Lua number). raise(key, floor) lifts the counter to floor.
// Numbers are written with %.0f: Lua would write large ones as 1.7e+15.
// add records a transition for the reply, seven strings each; announce
// publishes a member transition as a KindPresence envelope; counted adds
// the transitions of a channel's count going from before to after around
// the member transitions that members() adds.
var prelude = fmt.Sprintf(`
local seq_ttl, gone_ttl, version, outbox_max = %d, %d, %d, %d
local function bump(key)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local seq = math.max(tonumber(redis.call('GET', key) or '0') + 1, now)
  redis.call('SET', key, string.format('%%.0f', seq), 'PX', seq_ttl)
  return seq
end
local function raise(key, floor)
  if floor > tonumber(redis.call('GET', key) or '0') then
    redis.call('SET', key, string.format('%%.0f', floor), 'PX', seq_ttl)
  end
end
local function whole()
  return redis.call('EXISTS', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 1
end
local out = {}
local hooked, outbox, to, from = {}, nil, '', ''
local function add(kind, app, channel, user, info, count, seq)
  for _, v in ipairs({kind, app, channel, user, info, tostring(count), string.format('%%.0f', seq)}) do
    table.insert(out, v)
  end
  local kinds = hooked[app]
  if not kinds or string.sub(channel, 1, 1) == ':' then return end
  if kind == 'subscription_count' and string.find(kinds, ',announce_count,', 1, true) and string.sub(channel, 1, 9) ~= 'presence-' then
    redis.call('PUBLISH', to, '{"v":' .. version .. ',"kind":"count","app_id":' .. cjson.encode(app) ..
      ',"origin":' .. cjson.encode(from) .. ',"seq":' .. string.format('%%.0f', seq) ..
      ',"payload":' .. cjson.encode({channel = channel, subscription_count = count}) .. '}')
  end
  if string.find(kinds, ',' .. kind .. ',', 1, true) then
    local event = {name = kind, channel = channel}
    if user ~= '' then event.user_id = user end
    if kind == 'subscription_count' then event.subscription_count = count end
    redis.call('XADD', outbox(app), 'MAXLEN', '~', outbox_max, '*', 'e', cjson.encode(event))
  end
end
local function announce(pubsub, origin, app, channel, user, info, seq)
  local payload
  if info then
    payload = cjson.encode({added = true, channel = channel, user_id = user, user_info = info})
  else
    payload = cjson.encode({channel = channel, user_id = user})
  end
  redis.call('PUBLISH', pubsub, '{"v":' .. version .. ',"kind":"presence","app_id":' .. cjson.encode(app) ..
    ',"origin":' .. cjson.encode(origin) .. ',"seq":' .. string.format('%%.0f', seq) .. ',"payload":' .. payload .. '}')
end
local function counted(app, channel, before, after, seq, members)
  if before <= 0 and after > 0 then add('channel_occupied', app, channel, '', '', 0, seq) end
  if members then members() end
  if before > 0 and after <= 0 then add('channel_vacated', app, channel, '', '', 0, seq) end
  if before ~= after then add('subscription_count', app, channel, '', '', math.max(after, 0), seq) end
end
`, seqTTL.Milliseconds(), int(goneTTL.Seconds()), Version, OutboxLimit)

// script is a script of the shared state in its two forms: publishing
// with PUBLISH, or with SPUBLISH on a Redis Cluster, where the shared
// channel is a shard channel in the slot of the keys.
type script struct{ plain, sharded *redis.Script }

func newScript(src string) script {
	return script{redis.NewScript(src), redis.NewScript(strings.ReplaceAll(src, "redis.call('PUBLISH',", "redis.call('SPUBLISH',"))}
}

// script returns the form of sc for this node's Redis.
func (s *RedisState) script(sc script) *redis.Script {
	if s.sharded {
		return sc.sharded
	}
	return sc.plain
}

// channelKeys are the keys of a presence join or leave of userID:
// KEYS[1..2] for whole(), then the channel's keys and this node's index
// of channels.
func (s *RedisState) channelKeys(appID, channel, userID string) []string {
	base := s.base(appID, channel)
	return []string{
		s.intactKey(), s.leaseKey(s.node),
		base + ":subs", base + ":count", base + ":seq", base + ":members",
		base + ":users", base + ":node:" + s.node, base + ":gone:" + userID,
		s.channelsKey(s.node), s.outboxKey(appID),
	}
}

// joinScript counts a subscription of this node's to a presence channel
// as user ARGV[5]. It replies {'lost'}, {'full'}, or {'ok', seq,
// transitions, members}: the member list after the change.
var joinScript = newScript(prelude + `
if not whole() then return {'lost'} end
local pubsub, node, app, channel, user, info = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
hooked[app], outbox, to, from = ARGV[9], function() return KEYS[11] end, pubsub, node
local sockets = tonumber(redis.call('HGET', KEYS[7], user) or '0')
if sockets == 0 then
  local max = tonumber(ARGV[7])
  if max > 0 and redis.call('HLEN', KEYS[7]) >= max then return {'full'} end
end
redis.call('HINCRBY', KEYS[7], user, 1)
redis.call('HINCRBY', KEYS[8], user, 1)
redis.call('HINCRBY', KEYS[3], node, 1)
redis.call('SADD', KEYS[10], ARGV[8])
local after = redis.call('INCR', KEYS[4])
local seq = bump(KEYS[5])
counted(app, channel, after - 1, after, seq, function()
  if sockets == 0 then
    redis.call('HSET', KEYS[6], user, info)
    redis.call('DEL', KEYS[9])
    add('member_added', app, channel, user, info, 0, seq)
    announce(pubsub, node, app, channel, user, info, seq)
  end
end)
if ARGV[10] ~= '1' then return {'ok', string.format('%.0f', seq), out} end
return {'ok', string.format('%.0f', seq), out, redis.call('HGETALL', KEYS[6])}
`)

// JoinPresence implements State.
func (s *RedisState) JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (Snapshot, []Transition, error) {
	return s.join(ctx, appID, channel, userID, info, maxMembers, true)
}

// SignIn implements State: a join of UsersChannel without a member list.
func (s *RedisState) SignIn(ctx context.Context, appID, userID string) ([]Transition, error) {
	_, ts, err := s.join(ctx, appID, UsersChannel, userID, nil, 0, false)
	return ts, err
}

// SignOut implements State.
func (s *RedisState) SignOut(ctx context.Context, appID, userID string) ([]Transition, error) {
	return s.LeavePresence(ctx, appID, UsersChannel, userID)
}

// join runs joinScript, with the member list in the reply when list is set.
func (s *RedisState) join(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int, list bool) (Snapshot, []Transition, error) {
	if s.down(true) {
		return Snapshot{}, nil, errLinkDown
	}
	flag := "0"
	if list {
		flag = "1"
	}
	res, err := s.script(joinScript).Run(ctx, s.client, s.channelKeys(appID, channel, userID),
		s.prefix, s.node, appID, channel, userID, string(infoOrNull(info)), maxMembers, stateKey(appID, channel), s.hooks[appID], flag).Slice()
	if err != nil {
		s.dirty.Store(true)
		return Snapshot{}, nil, fmt.Errorf("join presence %s: %w", channel, err)
	}
	r, err := parseReply(res)
	switch {
	case errors.Is(err, ErrMembersLimit) || errors.Is(err, ErrShareLost):
		return Snapshot{}, nil, err // nothing was written
	case err != nil:
		s.dirty.Store(true) // the change may have been made
		return Snapshot{}, nil, fmt.Errorf("join presence %s: %w", channel, err)
	}
	return r.snapshot, r.transitions, nil
}

// leaveScript counts one subscription of this node's to a presence
// channel as user ARGV[5] less. It replies {'lost'} or {'ok', seq,
// transitions}; a user with no socket here in the state changes nothing.
var leaveScript = newScript(prelude + `
if not whole() then return {'lost'} end
local pubsub, node, app, channel, user = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
hooked[app], outbox, to, from = ARGV[7], function() return KEYS[11] end, pubsub, node
local mine = redis.call('HINCRBY', KEYS[8], user, -1)
if mine <= 0 then redis.call('HDEL', KEYS[8], user) end
if mine < 0 then return {'ok', '0', {}} end
if redis.call('HINCRBY', KEYS[3], node, -1) <= 0 then
  redis.call('HDEL', KEYS[3], node)
  redis.call('SREM', KEYS[10], ARGV[6])
end
local after = redis.call('DECR', KEYS[4])
if after <= 0 then redis.call('DEL', KEYS[4]) end
local seq = bump(KEYS[5])
counted(app, channel, after + 1, after, seq, function()
  if redis.call('HINCRBY', KEYS[7], user, -1) <= 0 then
    redis.call('HDEL', KEYS[7], user)
    redis.call('HDEL', KEYS[6], user)
    redis.call('SET', KEYS[9], '1', 'EX', gone_ttl)
    add('member_removed', app, channel, user, '', 0, seq)
    announce(pubsub, node, app, channel, user, nil, seq)
  end
end)
return {'ok', string.format('%.0f', seq), out}
`)

// LeavePresence implements State. A leave that cannot be written is
// remembered: once the state is whole again, the user is announced gone
// if no socket of theirs is left anywhere.
func (s *RedisState) LeavePresence(ctx context.Context, appID, channel, userID string) ([]Transition, error) {
	key := memberKey{appID, channel, userID}
	err := errLinkDown
	if !s.down(true) {
		var res []any
		res, err = s.script(leaveScript).Run(ctx, s.client, s.channelKeys(appID, channel, userID),
			s.prefix, s.node, appID, channel, userID, stateKey(appID, channel), s.hooks[appID]).Slice()
		var r reply
		if err == nil {
			r, err = parseReply(res)
		}
		if err == nil {
			if len(r.transitions) > 0 {
				// Written: a leave remembered before is done with.
				// (A leave that found no socket here changes nothing,
				// and leaves what is remembered to gone.)
				s.mu.Lock()
				delete(s.unannounced, key)
				s.mu.Unlock()
			}
			return r.transitions, nil
		}
		if !errors.Is(err, ErrShareLost) {
			s.dirty.Store(true)
		}
	}
	s.mu.Lock()
	s.unannounced[key] = struct{}{}
	s.mu.Unlock()
	return nil, fmt.Errorf("leave presence %s: %w", channel, err)
}

// membersScript reads a presence channel's members and its Seq at once:
// {'lost'} or {'ok', seq, {}, members}.
var membersScript = newScript(prelude + `
if not whole() then return {'lost'} end
return {'ok', redis.call('GET', KEYS[3]) or '0', {}, redis.call('HGETALL', KEYS[4])}
`)

// PresenceMembers implements State.
func (s *RedisState) PresenceMembers(ctx context.Context, appID, channel string) (Snapshot, error) {
	if s.down(false) {
		return Snapshot{}, errLinkDown
	}
	base := s.base(appID, channel)
	res, err := s.script(membersScript).Run(ctx, s.client, []string{s.intactKey(), s.leaseKey(s.node), base + ":seq", base + ":members"}).Slice()
	if err != nil {
		return Snapshot{}, fmt.Errorf("presence members %s: %w", channel, err)
	}
	r, err := parseReply(res)
	if err != nil {
		return Snapshot{}, fmt.Errorf("presence members %s: %w", channel, err)
	}
	return r.snapshot, nil
}

// onlineScript reads which of the users ARGV are members of a presence
// channel (UsersChannel: signed in), with the channel's Seq, at once:
// {'lost'} or {'ok', seq, {}, members}.
var onlineScript = newScript(prelude + `
if not whole() then return {'lost'} end
local out, flat = {}, redis.call('HMGET', KEYS[4], unpack(ARGV))
for i, info in ipairs(flat) do
  if info then
    table.insert(out, ARGV[i])
    table.insert(out, info)
  end
end
return {'ok', redis.call('GET', KEYS[3]) or '0', {}, out}
`)

// Online implements State.
func (s *RedisState) Online(ctx context.Context, appID string, users []string) ([]string, uint64, error) {
	if s.down(false) {
		return nil, 0, errLinkDown
	}
	base := s.base(appID, UsersChannel)
	keys := []string{s.intactKey(), s.leaseKey(s.node), base + ":seq", base + ":members"}
	if len(users) == 0 {
		snap, err := s.PresenceMembers(ctx, appID, UsersChannel) // for the Seq; the list is not wanted
		return nil, snap.Seq, err
	}
	args := make([]any, len(users))
	for i, u := range users {
		args[i] = u
	}
	res, err := s.script(onlineScript).Run(ctx, s.client, keys, args...).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("online users: %w", err)
	}
	r, err := parseReply(res)
	if err != nil {
		return nil, 0, fmt.Errorf("online users: %w", err)
	}
	online := make([]string, 0, len(r.snapshot.Members))
	for _, u := range users {
		if _, ok := r.snapshot.Members[u]; ok {
			online = append(online, u)
		}
	}
	return online, r.snapshot.Seq, nil
}

// countScript sets this node's subscriptions to one channel to ARGV[4]:
// {'lost'} or {'ok', seq, transitions}.
var countScript = newScript(prelude + `
if not whole() then return {'lost'} end
local node, app, channel, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
hooked[app], outbox, to, from = ARGV[6], function() return KEYS[7] end, ARGV[7], ARGV[1]
local mine = tonumber(redis.call('HGET', KEYS[3], node) or '0')
if n == mine then return {'ok', '0', {}} end
if n > 0 then
  redis.call('HSET', KEYS[3], node, n)
  redis.call('SADD', KEYS[6], ARGV[5])
else
  redis.call('HDEL', KEYS[3], node)
  redis.call('SREM', KEYS[6], ARGV[5])
end
local after = redis.call('INCRBY', KEYS[4], n - mine)
if after <= 0 then redis.call('DEL', KEYS[4]) end
local seq = bump(KEYS[5])
counted(app, channel, after - n + mine, after, seq)
return {'ok', string.format('%.0f', seq), out}
`)

// SetSubscriptions implements State: one script per channel, all sent in
// one round trip.
func (s *RedisState) SetSubscriptions(ctx context.Context, counts []ChannelCount) ([]Transition, error) {
	if len(counts) == 0 {
		return nil, nil
	}
	if s.down(true) {
		return nil, errLinkDown
	}
	run := func() ([]redis.Cmder, error) {
		return s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range counts {
				base := s.base(c.AppID, c.Channel)
				keys := []string{s.intactKey(), s.leaseKey(s.node), base + ":subs", base + ":count", base + ":seq", s.channelsKey(s.node), s.outboxKey(c.AppID)}
				s.script(countScript).EvalSha(ctx, p, keys, s.node, c.AppID, c.Channel, c.Subscriptions, stateKey(c.AppID, c.Channel), s.hooks[c.AppID], s.prefix)
			}
			return nil
		})
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// Redis restarted and forgot the script; counts are absolute,
		// so the channels written already take the same numbers again.
		if err = s.script(countScript).Load(ctx, s.client).Err(); err == nil {
			cmds, err = run()
		}
	}
	if err != nil {
		s.dirty.Store(true)
		return nil, fmt.Errorf("count subscriptions: %w", err)
	}
	var out []Transition
	var lost bool
	for _, cmd := range cmds {
		res, err := cmd.(*redis.Cmd).Slice()
		var r reply
		if err == nil {
			r, err = parseReply(res)
		}
		switch {
		case errors.Is(err, ErrShareLost):
			lost = true
		case err != nil:
			s.dirty.Store(true)
			return out, fmt.Errorf("count subscriptions: %w", err)
		}
		out = append(out, r.transitions...)
	}
	if lost {
		return out, ErrShareLost
	}
	return out, nil
}

// reply is a script's reply decoded.
type reply struct {
	snapshot    Snapshot
	transitions []Transition
}

// parseReply decodes the reply of joinScript, leaveScript, membersScript
// or countScript: a status, then the Seq, the transitions and the member
// list, as far as the script sends them.
func parseReply(res []any) (reply, error) {
	var r reply
	status, _ := firstString(res)
	switch status {
	case "lost":
		return r, ErrShareLost
	case "full":
		return r, ErrMembersLimit
	case "ok":
	default:
		return r, errors.New("unexpected reply")
	}
	if len(res) < 3 {
		return r, errors.New("unexpected reply")
	}
	text, _ := res[1].(string)
	seq, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return r, fmt.Errorf("seq %q: %w", text, err)
	}
	flat, _ := res[2].([]any)
	if r.transitions, err = parseTransitions(flat); err != nil {
		return r, err
	}
	if len(res) > 3 {
		flat, ok := res[3].([]any)
		if !ok || len(flat)%2 != 0 {
			return r, errors.New("unexpected member list")
		}
		r.snapshot = Snapshot{Members: make(map[string]json.RawMessage, len(flat)/2), Seq: seq}
		for i := 0; i < len(flat); i += 2 {
			id, ok := flat[i].(string)
			info, ok2 := flat[i+1].(string)
			if !ok || !ok2 {
				return r, errors.New("unexpected member list")
			}
			r.snapshot.Members[id] = json.RawMessage(info)
		}
	}
	return r, nil
}

func firstString(res []any) (string, bool) {
	if len(res) == 0 {
		return "", false
	}
	s, ok := res[0].(string)
	return s, ok
}

// parseTransitions decodes the transitions a script added: seven strings
// each (kind, app, channel, user, info, count, seq).
func parseTransitions(flat []any) ([]Transition, error) {
	if len(flat)%7 != 0 {
		return nil, errors.New("unexpected transitions")
	}
	out := make([]Transition, 0, len(flat)/7)
	for i := 0; i < len(flat); i += 7 {
		var f [7]string
		for j := range f {
			v, ok := flat[i+j].(string)
			if !ok {
				return nil, errors.New("unexpected transitions")
			}
			f[j] = v
		}
		count, err := strconv.Atoi(f[5])
		if err != nil {
			return nil, fmt.Errorf("count %q: %w", f[5], err)
		}
		seq, err := strconv.ParseUint(f[6], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("seq %q: %w", f[6], err)
		}
		t := Transition{Kind: TransitionKind(f[0]), AppID: f[1], Channel: f[2], UserID: f[3], Count: count, Seq: seq}
		if t.Kind == MemberAdded {
			t.Info = json.RawMessage(f[4])
		}
		out = append(out, t)
	}
	return out, nil
}

func (s *RedisState) cacheKey(appID, channel string) string {
	return s.prefix + ":cache:" + appID + ":" + channel
}

// RememberEvent implements State.
func (s *RedisState) RememberEvent(ctx context.Context, appID, channel string, payload []byte) error {
	if s.down(false) {
		return errLinkDown
	}
	if err := s.client.Set(ctx, s.cacheKey(appID, channel), payload, CacheTTL).Err(); err != nil {
		return fmt.Errorf("remember event on %s: %w", channel, err)
	}
	return nil
}

// LastEvent implements State.
func (s *RedisState) LastEvent(ctx context.Context, appID, channel string) ([]byte, bool, error) {
	if s.down(false) {
		return nil, false, errLinkDown
	}
	b, err := s.client.Get(ctx, s.cacheKey(appID, channel)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("last event on %s: %w", channel, err)
	}
	return b, true, nil
}

// addConnScript replies 'lost', 'ok' or 'full'.
var addConnScript = newScript(prelude + `
if not whole() then return 'lost' end
local limit = tonumber(ARGV[2])
if limit > 0 then
  local total = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[3])) do total = total + tonumber(v) end
  if total >= limit then return 'full' end
end
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('SADD', KEYS[4], ARGV[3])
return 'ok'
`)

var removeConnScript = newScript(prelude + `
if not whole() then return 'lost' end
if redis.call('HINCRBY', KEYS[3], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[3], ARGV[1]) end
return 'ok'
`)

func (s *RedisState) connKeys(appID string) []string {
	return []string{s.intactKey(), s.leaseKey(s.node), s.prefix + ":conns:" + appID, s.prefix + ":node:" + s.node + ":apps"}
}

// AddConnection implements State.
func (s *RedisState) AddConnection(ctx context.Context, appID string, limit int) (bool, error) {
	if s.down(true) {
		return false, errLinkDown
	}
	status, err := s.script(addConnScript).Run(ctx, s.client, s.connKeys(appID), s.node, limit, appID).Text()
	switch {
	case err != nil:
		s.dirty.Store(true)
		return false, fmt.Errorf("count connection: %w", err)
	case status == "lost":
		return false, ErrShareLost
	}
	return status == "ok", nil
}

// RemoveConnection implements State.
func (s *RedisState) RemoveConnection(ctx context.Context, appID string) error {
	if s.down(true) {
		return errLinkDown
	}
	status, err := s.script(removeConnScript).Run(ctx, s.client, s.connKeys(appID), s.node).Text()
	switch {
	case err != nil:
		s.dirty.Store(true)
		return fmt.Errorf("uncount connection: %w", err)
	case status == "lost":
		return ErrShareLost
	}
	return nil
}
