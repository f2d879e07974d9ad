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
// the scaling channel name, so clusters can share one Redis:
//
//	{p}:nodes                               set of live node ids
//	{p}:lease:{node}                        a node's lease, renewed every lease/3
//	{p}:node:{node}:presence                "app\nchannel" entries the node holds
//	{p}:node:{node}:apps                    apps the node counts sockets of
//	{p}:presence:{app}:{channel}:members    user -> user_info
//	{p}:presence:{app}:{channel}:counts     user -> sockets across the cluster
//	{p}:presence:{app}:{channel}:node:{n}   user -> sockets on node n
//	{p}:presence:{app}:{channel}:seq        Seq of the channel's last change
//	{p}:conns:{app}                         node -> open sockets
//	{p}:cache:{app}:{channel}               last event, expiring after CacheTTL
//
// Each change runs as one Lua script, so it is atomic. A node whose lease
// expired has its share removed by whichever survivor sees it first (the
// script removes a share once), and that survivor announces the members who
// left. A node that finds its own lease gone (Redis restarted empty, or it
// was reaped while paused) re-asserts its share from its own sockets.
//
// The Seq of a presence channel is a hybrid clock kept in its seq key:
// each change of the member set (a join, a leave, a reap, a re-assert)
// sets it, in the script that makes the change, to one more than before
// but never less than Redis's clock in microseconds. Numbers therefore
// grow for as long as the key lives, and a key that is gone (expired after
// presenceSeqTTL without a change, or lost with the rest of Redis's data)
// starts again above every number handed out before it, so no socket
// waits for numbers it has already seen. Should Redis's clock step back
// (a failover to a host whose clock is behind), the re-assert raises each
// counter to the largest number the node's sockets have seen.
type RedisState struct {
	client *redis.Client
	prefix string
	node   string
	lease  time.Duration
	log    *slog.Logger

	// link reports whether the node's Redis link is up; calls fail at
	// once while it is down instead of waiting for Redis timeouts.
	link func() bool

	// dirty is set when a write failed, so the next heartbeat re-asserts.
	dirty atomic.Bool

	// unannounced holds the presence leaves that could not be written:
	// after the next re-assert, those users that are no longer members
	// are announced as gone (Redis may have lost the share they were in).
	mu          sync.Mutex
	unannounced map[memberKey]struct{}
}

// memberKey names one member of one presence channel.
type memberKey struct{ appID, channel, userID string }

var _ State = (*RedisState)(nil)

// errLinkDown is returned at once while the Redis link is down.
var errLinkDown = errors.New("the Redis link is down")

// NewRedisState returns the State for node over client, keys prefixed by
// prefix. link (nil: always up) reports the node's Redis link.
func NewRedisState(client *redis.Client, prefix, node string, lease time.Duration, link func() bool, log *slog.Logger) *RedisState {
	if lease <= 0 {
		lease = DefaultLease
	}
	if link == nil {
		link = func() bool { return true }
	}
	return &RedisState{client: client, prefix: prefix, node: node, lease: lease, link: link, log: log,
		unannounced: make(map[memberKey]struct{})}
}

// down reports whether the link is down; a write that is refused for it
// leaves the node to re-assert its share.
func (s *RedisState) down(write bool) bool {
	if s.link() {
		return false
	}
	if write {
		s.dirty.Store(true)
	}
	return true
}

func (s *RedisState) presenceBase(appID, channel string) string {
	return s.prefix + ":presence:" + appID + ":" + channel
}

func (s *RedisState) presenceKeys(appID, channel string) []string {
	base := s.presenceBase(appID, channel)
	return []string{base + ":members", base + ":counts", base + ":node:" + s.node, s.prefix + ":node:" + s.node + ":presence", base + ":seq"}
}

// presenceSeqTTL is how long a presence channel's seq key outlives the
// channel's last change. Any member event still in flight is far younger;
// once the key is gone the clock restarts the numbers above the old ones.
const presenceSeqTTL = time.Hour

// seqLua defines the Lua functions that number a presence channel's
// changes; it is the start of every script that changes a member set.
//
// bump(key) returns the Seq of a new change: one more than the last, and
// at least Redis's clock in microseconds (below 2^53 until the year 2255,
// so exact in a Lua number). raise(key, floor) lifts the counter to floor.
// Numbers are written with %.0f: Lua would write large ones as 1.7e+15.
var seqLua = fmt.Sprintf(`
local seq_ttl = %d
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
`, presenceSeqTTL.Milliseconds())

// joinScript returns -1 when the channel is full, 0 when the user was a
// member already, and the Seq of the change when the user is new.
var joinScript = redis.NewScript(seqLua + `
local count = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if count == 0 then
  local max = tonumber(ARGV[3])
  if max > 0 and redis.call('HLEN', KEYS[2]) >= max then return -1 end
end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
redis.call('SADD', KEYS[4], ARGV[4])
if count == 0 then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return bump(KEYS[5])
end
return 0
`)

// JoinPresence implements State.
func (s *RedisState) JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (bool, uint64, error) {
	if s.down(true) {
		return false, 0, errLinkDown
	}
	n, err := joinScript.Run(ctx, s.client, s.presenceKeys(appID, channel),
		userID, string(infoOrNull(info)), maxMembers, stateKey(appID, channel)).Int64()
	if err != nil {
		s.dirty.Store(true)
		return false, 0, fmt.Errorf("join presence %s: %w", channel, err)
	}
	if n < 0 {
		return false, 0, ErrMembersLimit
	}
	return n > 0, uint64(n), nil
}

// leaveScript returns 0 when the user keeps a socket somewhere, and the
// Seq of the change when the user is no longer a member.
var leaveScript = redis.NewScript(seqLua + `
local mine = redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
if mine <= 0 then redis.call('HDEL', KEYS[3], ARGV[1]) end
if mine < 0 then return 0 end
local count = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if count <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[1], ARGV[1])
  return bump(KEYS[5])
end
return 0
`)

// LeavePresence implements State. A leave that finds no socket of the user
// in this node's share (Redis lost it) changes nothing.
func (s *RedisState) LeavePresence(ctx context.Context, appID, channel, userID string) (bool, uint64, error) {
	err := errLinkDown
	if !s.down(true) {
		var n int64
		n, err = leaveScript.Run(ctx, s.client, s.presenceKeys(appID, channel), userID).Int64()
		if err == nil {
			return n > 0, uint64(max(n, 0)), nil
		}
		s.dirty.Store(true)
	}
	s.mu.Lock()
	s.unannounced[memberKey{appID, channel, userID}] = struct{}{}
	s.mu.Unlock()
	return false, 0, fmt.Errorf("leave presence %s: %w", channel, err)
}

// membersScript reads a presence channel's members and its Seq at once.
var membersScript = redis.NewScript(`
return {redis.call('HGETALL', KEYS[1]), redis.call('GET', KEYS[2]) or '0'}
`)

// PresenceMembers implements State.
func (s *RedisState) PresenceMembers(ctx context.Context, appID, channel string) (map[string]json.RawMessage, uint64, error) {
	if s.down(false) {
		return nil, 0, errLinkDown
	}
	base := s.presenceBase(appID, channel)
	res, err := membersScript.Run(ctx, s.client, []string{base + ":members", base + ":seq"}).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("presence members %s: %w", channel, err)
	}
	members, seq, err := parseMembers(res)
	if err != nil {
		return nil, 0, fmt.Errorf("presence members %s: %w", channel, err)
	}
	return members, seq, nil
}

// parseMembers decodes membersScript's reply.
func parseMembers(res []any) (map[string]json.RawMessage, uint64, error) {
	if len(res) != 2 {
		return nil, 0, errors.New("unexpected reply")
	}
	flat, ok := res[0].([]any)
	text, ok2 := res[1].(string)
	if !ok || !ok2 || len(flat)%2 != 0 {
		return nil, 0, errors.New("unexpected reply")
	}
	seq, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("seq %q: %w", text, err)
	}
	out := make(map[string]json.RawMessage, len(flat)/2)
	for i := 0; i < len(flat); i += 2 {
		id, ok := flat[i].(string)
		info, ok2 := flat[i+1].(string)
		if !ok || !ok2 {
			return nil, 0, errors.New("unexpected reply")
		}
		out[id] = json.RawMessage(info)
	}
	return out, seq, nil
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

var addConnScript = redis.NewScript(`
local limit = tonumber(ARGV[2])
if limit > 0 then
  local total = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do total = total + tonumber(v) end
  if total >= limit then return 0 end
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[3])
return 1
`)

var removeConnScript = redis.NewScript(`
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
`)

// AddConnection implements State.
func (s *RedisState) AddConnection(ctx context.Context, appID string, limit int) (bool, error) {
	if s.down(true) {
		return false, errLinkDown
	}
	ok, err := addConnScript.Run(ctx, s.client,
		[]string{s.prefix + ":conns:" + appID, s.prefix + ":node:" + s.node + ":apps"},
		s.node, limit, appID).Int()
	if err != nil {
		s.dirty.Store(true)
		return false, fmt.Errorf("count connection: %w", err)
	}
	return ok == 1, nil
}

// RemoveConnection implements State.
func (s *RedisState) RemoveConnection(ctx context.Context, appID string) error {
	if s.down(true) {
		return errLinkDown
	}
	if err := removeConnScript.Run(ctx, s.client, []string{s.prefix + ":conns:" + appID}, s.node).Err(); err != nil {
		s.dirty.Store(true)
		return fmt.Errorf("uncount connection: %w", err)
	}
	return nil
}

// replaceShareScript replaces a node's whole share with the truth in
// ARGV[5] (JSON). In "reap" mode it first checks that the node's lease is
// gone and that the node is still listed, so one survivor reaps it once.
// Each member the script adds to or removes from a channel (a member both
// removed and put back is unchanged) is a change with its own Seq; before
// numbering, each channel of the truth has its counter raised to the
// largest Seq the node has seen there. It returns two flat lists: members
// added to the cluster that are to be announced ("app\nchannel\nuser",
// user_info, Seq) and members removed from it ("app\nchannel\nuser", Seq).
var replaceShareScript = redis.NewScript(seqLua + `
local prefix, node, mode, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if mode == 'reap' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {{}, {}} end
  if redis.call('SISMEMBER', KEYS[1], node) == 0 then return {{}, {}} end
  -- If the node was only paused, its members come back when it
  -- re-asserts; the marker says they were announced gone.
  redis.call('SET', KEYS[5], '1', 'EX', 3600)
end
-- Members a re-assert adds are announced only after a reap announced them
-- gone; after Redis lost its data the clients never saw them leave.
local announce_added = mode == 'assert' and redis.call('DEL', KEYS[5]) == 1
local removed = {} -- "app\nchannel\nuser" -> the channel's key base
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local sep = string.find(entry, '\n', 1, true)
  local base = prefix .. ':presence:' .. string.sub(entry, 1, sep - 1) .. ':' .. string.sub(entry, sep + 1)
  local mine = base .. ':node:' .. node
  local flat = redis.call('HGETALL', mine)
  for i = 1, #flat, 2 do
    local user, n = flat[i], tonumber(flat[i + 1])
    if redis.call('HINCRBY', base .. ':counts', user, -n) <= 0 then
      redis.call('HDEL', base .. ':counts', user)
      redis.call('HDEL', base .. ':members', user)
      removed[entry .. '\n' .. user] = base
    end
  end
  redis.call('DEL', mine)
end
redis.call('DEL', KEYS[3])
for _, app in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  redis.call('HDEL', prefix .. ':conns:' .. app, node)
end
redis.call('DEL', KEYS[4])
local added = {}
local truth = cjson.decode(ARGV[5])
for _, m in ipairs(truth.presence) do
  local entry = m.a .. '\n' .. m.c
  local base = prefix .. ':presence:' .. m.a .. ':' .. m.c
  raise(base .. ':seq', m.s)
  local count = redis.call('HINCRBY', base .. ':counts', m.u, m.n)
  redis.call('HINCRBY', base .. ':node:' .. node, m.u, m.n)
  redis.call('SADD', KEYS[3], entry)
  if count == m.n then
    redis.call('HSET', base .. ':members', m.u, m.i)
    local key = entry .. '\n' .. m.u
    if removed[key] then
      removed[key] = nil
    else
      local seq = bump(base .. ':seq')
      if announce_added then
        table.insert(added, key)
        table.insert(added, m.i)
        table.insert(added, seq)
      end
    end
  end
end
for _, c in ipairs(truth.conns) do
  redis.call('HSET', prefix .. ':conns:' .. c.a, node, c.n)
  redis.call('SADD', KEYS[4], c.a)
end
if mode == 'reap' then
  redis.call('SREM', KEYS[1], node)
else
  redis.call('SADD', KEYS[1], node)
  redis.call('SET', KEYS[2], '1', 'PX', lease)
end
local gone = {}
for key, base in pairs(removed) do
  table.insert(gone, key)
  table.insert(gone, bump(base .. ':seq'))
end
return {added, gone}
`)

type shareTruth struct {
	Presence []presenceTruth `json:"presence"`
	Conns    []connShare     `json:"conns"`
}

// presenceTruth is PresenceShare as the script reads it: user_info as text.
type presenceTruth struct {
	AppID   string `json:"a"`
	Channel string `json:"c"`
	UserID  string `json:"u"`
	Info    string `json:"i"`
	Sockets int    `json:"n"`
	Seq     uint64 `json:"s"`
}

type connShare struct {
	AppID string `json:"a"`
	N     int    `json:"n"`
}

// replaceShare runs replaceShareScript for node and returns the changes.
func (s *RedisState) replaceShare(ctx context.Context, node, mode string, share Share) ([]PresenceChange, error) {
	truth := shareTruth{Presence: make([]presenceTruth, 0, len(share.Presence)), Conns: []connShare{}}
	for _, p := range share.Presence {
		if p.Sockets > 0 {
			truth.Presence = append(truth.Presence, presenceTruth{p.AppID, p.Channel, p.UserID, string(infoOrNull(p.Info)), p.Sockets, p.Seq})
		}
	}
	for app, n := range share.Connections {
		if n > 0 {
			truth.Conns = append(truth.Conns, connShare{AppID: app, N: n})
		}
	}
	body, err := json.Marshal(truth)
	if err != nil {
		return nil, fmt.Errorf("encode share: %w", err)
	}
	keys := []string{
		s.prefix + ":nodes",
		s.prefix + ":lease:" + node,
		s.prefix + ":node:" + node + ":presence",
		s.prefix + ":node:" + node + ":apps",
		s.prefix + ":reaped:" + node,
	}
	res, err := replaceShareScript.Run(ctx, s.client, keys, s.prefix, node, mode, s.lease.Milliseconds(), body).Slice()
	if err != nil {
		return nil, fmt.Errorf("%s share of node %s: %w", mode, node, err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("%s share of node %s: unexpected reply", mode, node)
	}
	var changes []PresenceChange
	added, _ := res[0].([]any)
	for i := 0; i+2 < len(added); i += 3 {
		if ch, ok := parseChange(added[i], added[i+2], true); ok {
			info, _ := added[i+1].(string)
			ch.Info = json.RawMessage(info)
			changes = append(changes, ch)
		}
	}
	removed, _ := res[1].([]any)
	for i := 0; i+1 < len(removed); i += 2 {
		if ch, ok := parseChange(removed[i], removed[i+1], false); ok {
			changes = append(changes, ch)
		}
	}
	return changes, nil
}

// parseChange decodes one change of replaceShareScript's reply: an
// "app\nchannel\nuser" entry and its Seq.
func parseChange(entry, seq any, added bool) (PresenceChange, bool) {
	s, ok := entry.(string)
	if !ok {
		return PresenceChange{}, false
	}
	parts := strings.SplitN(s, "\n", 3)
	if len(parts) != 3 {
		return PresenceChange{}, false
	}
	n, _ := seq.(int64) // a missing number leaves Seq 0: delivered as before Seqs
	return PresenceChange{AppID: parts[0], Channel: parts[1], UserID: parts[2], Added: added, Seq: uint64(max(n, 0))}, true
}

// Run implements State: it asserts this node's share at once, then every
// lease/3 renews the lease (re-asserting when it vanished or a write
// failed) and reaps nodes whose lease expired. It calls announce after
// each heartbeat that reached Redis, with no changes at times: Redis may
// answer before the node's pub/sub link is back, and the announcer then
// keeps the changes until a later call finds the link up.
func (s *RedisState) Run(ctx context.Context, source ShareSource, announce func(context.Context, []PresenceChange)) {
	s.dirty.Store(true)
	tick := time.NewTicker(s.lease / 3)
	defer tick.Stop()
	for {
		s.heartbeat(ctx, source, announce)
		select {
		case <-tick.C:
		case <-ctx.Done():
			s.leave()
			return
		}
	}
}

func (s *RedisState) heartbeat(ctx context.Context, source ShareSource, announce func(context.Context, []PresenceChange)) {
	ctx, cancel := context.WithTimeout(ctx, s.lease/3)
	defer cancel()
	if !s.dirty.Load() {
		renewed, err := s.client.SetXX(ctx, s.prefix+":lease:"+s.node, "1", s.lease).Result()
		if err != nil {
			s.dirty.Store(true)
			s.log.Debug("lease renewal failed", "err", err)
			return
		}
		if !renewed {
			s.log.Warn("lease lost (Redis restarted or this node was reaped); re-asserting this node's share")
			s.dirty.Store(true)
		}
	}
	var changes []PresenceChange
	if s.dirty.Load() {
		var err error
		source.WithShare(func(share Share) {
			s.dirty.Store(false)
			changes, err = s.replaceShare(ctx, s.node, "assert", share)
		})
		if err != nil {
			s.dirty.Store(true)
			s.log.Debug("re-assert failed", "err", err)
			return
		}
		changes = append(changes, s.gone(ctx, changes)...)
		if len(changes) > 0 {
			s.log.Info("re-asserted this node's share", "changes", len(changes))
		}
	}
	changes = append(changes, s.reap(ctx)...)
	announce(ctx, changes)
}

// gone returns, after a re-assert, the members whose leave could not be
// written and who are no longer members, unless changes announce them.
func (s *RedisState) gone(ctx context.Context, changes []PresenceChange) []PresenceChange {
	s.mu.Lock()
	pending := s.unannounced
	s.unannounced = make(map[memberKey]struct{})
	s.mu.Unlock()
	for _, ch := range changes {
		delete(pending, memberKey{ch.AppID, ch.Channel, ch.UserID})
	}
	var out []PresenceChange
	for p := range pending {
		base := s.presenceBase(p.appID, p.channel)
		seq, err := goneScript.Run(ctx, s.client, []string{base + ":members", base + ":seq"}, p.userID).Int64()
		if err != nil {
			s.mu.Lock()
			s.unannounced[p] = struct{}{} // try again after the next re-assert
			s.mu.Unlock()
			s.dirty.Store(true)
			continue
		}
		if seq > 0 {
			out = append(out, PresenceChange{AppID: p.appID, Channel: p.channel, UserID: p.userID, Seq: uint64(seq)})
		}
	}
	return out
}

// goneScript returns 0 when ARGV[1] is a member of the channel, else a new
// Seq for announcing that the member is gone: a fresh number, so every
// socket whose list is older than now hears it.
var goneScript = redis.NewScript(seqLua + `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
return bump(KEYS[2])
`)

// reap removes the share of every listed node whose lease has expired
// and returns the presence changes that follow.
func (s *RedisState) reap(ctx context.Context) []PresenceChange {
	nodes, err := s.client.SMembers(ctx, s.prefix+":nodes").Result()
	if err != nil {
		return nil
	}
	var all []PresenceChange
	for _, node := range nodes {
		if node == s.node {
			continue
		}
		changes, err := s.replaceShare(ctx, node, "reap", Share{})
		if err != nil {
			s.log.Warn("reaping a dead node failed", "node", node, "err", err)
			continue
		}
		if len(changes) > 0 {
			s.log.Info("removed the share of a dead node", "node", node, "members_removed", len(changes))
			all = append(all, changes...)
		}
	}
	return all
}

// leave drops this node's lease at shutdown, so survivors reap its share
// (its sockets were closed) without waiting for the lease to expire.
func (s *RedisState) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), redisIOTimeout)
	defer cancel()
	_ = s.client.Del(ctx, s.prefix+":lease:"+s.node).Err() // best effort: the lease expires anyway
}
