package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
//	{p}:conns:{app}                         node -> open sockets
//	{p}:cache:{app}:{channel}               last event, expiring after CacheTTL
//
// Each change runs as one Lua script, so it is atomic. A node whose lease
// expired has its share removed by whichever survivor sees it first (the
// script removes a share once), and that survivor announces the members who
// left. A node that finds its own lease gone (Redis restarted empty, or it
// was reaped while paused) re-asserts its share from its own sockets.
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
	return []string{base + ":members", base + ":counts", base + ":node:" + s.node, s.prefix + ":node:" + s.node + ":presence"}
}

var joinScript = redis.NewScript(`
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
  return 1
end
return 0
`)

// JoinPresence implements State.
func (s *RedisState) JoinPresence(ctx context.Context, appID, channel, userID string, info json.RawMessage, maxMembers int) (bool, error) {
	if s.down(true) {
		return false, errLinkDown
	}
	n, err := joinScript.Run(ctx, s.client, s.presenceKeys(appID, channel),
		userID, string(infoOrNull(info)), maxMembers, stateKey(appID, channel)).Int()
	if err != nil {
		s.dirty.Store(true)
		return false, fmt.Errorf("join presence %s: %w", channel, err)
	}
	if n < 0 {
		return false, ErrMembersLimit
	}
	return n == 1, nil
}

var leaveScript = redis.NewScript(`
local mine = redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
if mine <= 0 then redis.call('HDEL', KEYS[3], ARGV[1]) end
if mine < 0 then return 0 end
local count = redis.call('HINCRBY', KEYS[2], ARGV[1], -1)
if count <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
`)

// LeavePresence implements State. A leave that finds no socket of the user
// in this node's share (Redis lost it) changes nothing.
func (s *RedisState) LeavePresence(ctx context.Context, appID, channel, userID string) (bool, error) {
	err := errLinkDown
	if !s.down(true) {
		var n int
		n, err = leaveScript.Run(ctx, s.client, s.presenceKeys(appID, channel), userID).Int()
		if err == nil {
			return n == 1, nil
		}
		s.dirty.Store(true)
	}
	s.mu.Lock()
	s.unannounced[memberKey{appID, channel, userID}] = struct{}{}
	s.mu.Unlock()
	return false, fmt.Errorf("leave presence %s: %w", channel, err)
}

// PresenceMembers implements State.
func (s *RedisState) PresenceMembers(ctx context.Context, appID, channel string) (map[string]json.RawMessage, error) {
	if s.down(false) {
		return nil, errLinkDown
	}
	m, err := s.client.HGetAll(ctx, s.presenceBase(appID, channel)+":members").Result()
	if err != nil {
		return nil, fmt.Errorf("presence members %s: %w", channel, err)
	}
	out := make(map[string]json.RawMessage, len(m))
	for id, info := range m {
		out[id] = json.RawMessage(info)
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
// It returns two flat lists of "app\nchannel\nuser" entries: members added
// to and removed from the cluster, and (for added) their user_info.
var replaceShareScript = redis.NewScript(`
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
local removed = {}
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
      removed[entry .. '\n' .. user] = true
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
  local count = redis.call('HINCRBY', base .. ':counts', m.u, m.n)
  redis.call('HINCRBY', base .. ':node:' .. node, m.u, m.n)
  redis.call('SADD', KEYS[3], entry)
  if count == m.n then
    redis.call('HSET', base .. ':members', m.u, m.i)
    local key = entry .. '\n' .. m.u
    if removed[key] then
      removed[key] = nil
    elseif announce_added then
      table.insert(added, key)
      table.insert(added, m.i)
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
for key in pairs(removed) do table.insert(gone, key) end
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
			truth.Presence = append(truth.Presence, presenceTruth{p.AppID, p.Channel, p.UserID, string(infoOrNull(p.Info)), p.Sockets})
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
	var changes []PresenceChange
	if len(res) != 2 {
		return nil, fmt.Errorf("%s share of node %s: unexpected reply", mode, node)
	}
	added, _ := res[0].([]any)
	for i := 0; i+1 < len(added); i += 2 {
		if ch, ok := parseChange(added[i], true); ok {
			info, _ := added[i+1].(string)
			ch.Info = json.RawMessage(info)
			changes = append(changes, ch)
		}
	}
	removed, _ := res[1].([]any)
	for _, r := range removed {
		if ch, ok := parseChange(r, false); ok {
			changes = append(changes, ch)
		}
	}
	return changes, nil
}

func parseChange(v any, added bool) (PresenceChange, bool) {
	s, ok := v.(string)
	if !ok {
		return PresenceChange{}, false
	}
	parts := strings.SplitN(s, "\n", 3)
	if len(parts) != 3 {
		return PresenceChange{}, false
	}
	return PresenceChange{AppID: parts[0], Channel: parts[1], UserID: parts[2], Added: added}, true
}

// Run implements State: it asserts this node's share at once, then every
// lease/3 renews the lease (re-asserting when it vanished or a write
// failed) and reaps nodes whose lease expired.
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
	if s.dirty.Load() {
		var changes []PresenceChange
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
			announce(ctx, changes)
		}
	}
	s.reap(ctx, announce)
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
		member, err := s.client.HExists(ctx, s.presenceBase(p.appID, p.channel)+":members", p.userID).Result()
		if err != nil {
			s.mu.Lock()
			s.unannounced[p] = struct{}{} // try again after the next re-assert
			s.mu.Unlock()
			s.dirty.Store(true)
			continue
		}
		if !member {
			out = append(out, PresenceChange{AppID: p.appID, Channel: p.channel, UserID: p.userID})
		}
	}
	return out
}

// reap removes the share of every listed node whose lease has expired.
func (s *RedisState) reap(ctx context.Context, announce func(context.Context, []PresenceChange)) {
	nodes, err := s.client.SMembers(ctx, s.prefix+":nodes").Result()
	if err != nil {
		return
	}
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
			announce(ctx, changes)
		}
	}
}

// leave drops this node's lease at shutdown, so survivors reap its share
// (its sockets were closed) without waiting for the lease to expire.
func (s *RedisState) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), redisIOTimeout)
	defer cancel()
	_ = s.client.Del(ctx, s.prefix+":lease:"+s.node).Err() // best effort: the lease expires anyway
}
