package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// replaceShareScript replaces a node's whole share with the truth in
// ARGV[5] (JSON). In "reap" mode it first checks that the node's lease is
// gone and that the node is still listed, so one survivor reaps it once.
// Each channel whose count or member set it changes gets one new Seq for
// all its transitions (a member both removed and put back is unchanged);
// before that, each channel of the truth has its counter raised to the
// largest Seq the node has seen there. It returns the transitions and
// publishes the member transitions, as the other scripts do. After Redis
// lost the node's share, what the re-assert adds was never seen gone by
// anyone, so it is put back without being announced.
var replaceShareScript = newScript(prelude + `
local prefix, node, mode, lease = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local pubsub, origin = ARGV[6], ARGV[7]
hooked, outbox, to, from = cjson.decode(ARGV[8]), function(app) return prefix .. ':wh:' .. app end, ARGV[6], ARGV[7]
local announce_added = true
if mode == 'reap' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
  if redis.call('SISMEMBER', KEYS[1], node) == 0 then return {} end
  -- If the node was only paused, its members come back when it
  -- re-asserts; the marker says they were announced gone.
  redis.call('SET', KEYS[5], '1', 'EX', 3600)
else
  local reaped = redis.call('DEL', KEYS[5]) == 1
  announce_added = reaped or redis.call('EXISTS', KEYS[2]) == 1 or redis.call('EXISTS', KEYS[3]) == 1
end
local touched, order = {}, {}
local function touch(app, channel)
  local entry = app .. '\n' .. channel
  local t = touched[entry]
  if not t then
    local base = prefix .. ':ch:' .. app .. ':' .. channel
    t = {app = app, channel = channel, base = base, added = {}, removed = {},
      before = tonumber(redis.call('GET', base .. ':count') or '0')}
    touched[entry] = t
    table.insert(order, entry)
  end
  return t
end
for _, entry in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local sep = string.find(entry, '\n', 1, true)
  local t = touch(string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1))
  local mine = tonumber(redis.call('HGET', t.base .. ':subs', node) or '0')
  if mine ~= 0 then
    redis.call('HDEL', t.base .. ':subs', node)
    redis.call('INCRBY', t.base .. ':count', -mine)
  end
  local flat = redis.call('HGETALL', t.base .. ':node:' .. node)
  for i = 1, #flat, 2 do
    local user = flat[i]
    if redis.call('HINCRBY', t.base .. ':users', user, -tonumber(flat[i + 1])) <= 0 then
      redis.call('HDEL', t.base .. ':users', user)
      redis.call('HDEL', t.base .. ':members', user)
      t.removed[user] = true
    end
  end
  redis.call('DEL', t.base .. ':node:' .. node)
end
redis.call('DEL', KEYS[3])
for _, app in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  redis.call('HDEL', prefix .. ':conns:' .. app, node)
end
redis.call('DEL', KEYS[4])
local truth = cjson.decode(ARGV[5])
for _, c in ipairs(truth.channels) do
  local t = touch(c.a, c.c)
  raise(t.base .. ':seq', c.s)
  redis.call('HSET', t.base .. ':subs', node, c.n)
  redis.call('INCRBY', t.base .. ':count', c.n)
  redis.call('SADD', KEYS[3], c.a .. '\n' .. c.c)
end
for _, m in ipairs(truth.presence) do
  local t = touch(m.a, m.c)
  redis.call('HINCRBY', t.base .. ':node:' .. node, m.u, m.n)
  if redis.call('HINCRBY', t.base .. ':users', m.u, m.n) == m.n then
    redis.call('HSET', t.base .. ':members', m.u, m.i)
    if t.removed[m.u] then t.removed[m.u] = nil else t.added[m.u] = m.i end
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
for _, entry in ipairs(order) do
  local t = touched[entry]
  local after = tonumber(redis.call('GET', t.base .. ':count') or '0')
  if after <= 0 then redis.call('DEL', t.base .. ':count') end
  if after ~= t.before or next(t.added) or next(t.removed) then
    local seq = bump(t.base .. ':seq')
    local before = t.before
    -- After a data loss the counts before are unknown: the clients
    -- were told the numbers the re-asserts put back.
    if not announce_added then before = after end
    counted(t.app, t.channel, before, after, seq, function()
      for user, info in pairs(t.added) do
        redis.call('DEL', t.base .. ':gone:' .. user)
        if announce_added then
          add('member_added', t.app, t.channel, user, info, 0, seq)
          announce(pubsub, origin, t.app, t.channel, user, info, seq)
        end
      end
      for user in pairs(t.removed) do
        redis.call('SET', t.base .. ':gone:' .. user, '1', 'EX', gone_ttl)
        add('member_removed', t.app, t.channel, user, '', 0, seq)
        announce(pubsub, origin, t.app, t.channel, user, nil, seq)
      end
    end)
  end
end
return out
`)

type shareTruth struct {
	Channels []channelTruth  `json:"channels"`
	Presence []presenceTruth `json:"presence"`
	Conns    []connShare     `json:"conns"`
}

// channelTruth is ChannelShare as the script reads it.
type channelTruth struct {
	AppID   string `json:"a"`
	Channel string `json:"c"`
	N       int    `json:"n"`
	Seq     uint64 `json:"s"`
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

// replaceShare runs replaceShareScript for node and returns the transitions.
func (s *RedisState) replaceShare(ctx context.Context, node, mode string, share Share) ([]Transition, error) {
	truth := shareTruth{Channels: []channelTruth{}, Presence: []presenceTruth{}, Conns: []connShare{}}
	for _, c := range share.Channels {
		if c.Subscriptions > 0 {
			truth.Channels = append(truth.Channels, channelTruth{c.AppID, c.Channel, c.Subscriptions, c.Seq})
		}
	}
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
		s.leaseKey(node),
		s.channelsKey(node),
		s.prefix + ":node:" + node + ":apps",
		s.prefix + ":reaped:" + node,
	}
	res, err := s.script(replaceShareScript).Run(ctx, s.client, keys, s.prefix, node, mode, s.lease.Milliseconds(), body, s.prefix, s.node, s.hooksJSON).Slice()
	if err != nil {
		return nil, fmt.Errorf("%s share of node %s: %w", mode, node, err)
	}
	ts, err := parseTransitions(res)
	if err != nil {
		return nil, fmt.Errorf("%s share of node %s: %w", mode, node, err)
	}
	return ts, nil
}

// Run implements State: it asserts this node's share at once, then every
// lease/3 renews the lease (re-asserting when it vanished or a write
// failed), makes the state whole when it finds {p}:intact gone, and reaps
// nodes whose lease expired. It also answers other nodes' recoveries.
func (s *RedisState) Run(ctx context.Context, source ShareSource, decided func(context.Context, []Transition)) {
	s.mu.Lock()
	s.source, s.decided = source, decided
	s.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.answer(ctx)
	}()
	s.dirty.Store(true)
	tick := time.NewTicker(s.lease / 3)
	defer tick.Stop()
	for {
		s.heartbeat(ctx)
		select {
		case <-tick.C:
		case <-s.pubsub.Reconnected():
			// Redis may have lost part of this node's share (a new
			// master after a failover, a restart): re-assert it now, as
			// after a write that failed.
			s.dirty.Store(true)
		case <-ctx.Done():
			s.leave()
			return
		}
	}
}

// running returns Run's source and decided, or false before Run.
func (s *RedisState) running() (ShareSource, func(context.Context, []Transition), bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.source, s.decided, s.source != nil
}

func (s *RedisState) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.lease/3)
	defer cancel()
	if err := s.reassert(ctx); err != nil {
		s.log.Debug("heartbeat failed", "err", err)
		return
	}
	intact, err := s.client.Exists(ctx, s.intactKey()).Result()
	switch {
	case err != nil:
		s.dirty.Store(true)
		return
	case intact == 0:
		if err := s.Recover(ctx); err != nil {
			s.log.Debug("making the shared state whole failed", "err", err)
			return
		}
	default:
		s.gone(ctx)
	}
	s.reap(ctx)
}

// reassert renews this node's lease, or re-asserts its whole share when
// the lease vanished or a write failed since the last time, and hands the
// transitions on.
func (s *RedisState) reassert(ctx context.Context) error {
	source, decided, ok := s.running()
	if !ok {
		return errors.New("the shared state is not running yet")
	}
	s.assertMu.Lock()
	defer s.assertMu.Unlock()
	if !s.dirty.Load() {
		renewed, err := s.client.SetXX(ctx, s.leaseKey(s.node), "1", s.lease).Result()
		if err != nil {
			s.dirty.Store(true)
			return fmt.Errorf("renew lease: %w", err)
		}
		if renewed {
			return nil
		}
		s.log.Warn("lease lost (Redis lost its data or this node was reaped); re-asserting this node's share")
	}
	var ts []Transition
	var err error
	source.WithShare(func(share Share) {
		s.dirty.Store(false)
		ts, err = s.replaceShare(ctx, s.node, "assert", share)
	})
	if err != nil {
		s.dirty.Store(true)
		return err
	}
	s.log.Info("re-asserted this node's share", "transitions", len(ts))
	decided(ctx, ts)
	return nil
}

// gone announces the members whose leave could not be written and who
// are no longer members anywhere. It runs once the state is whole.
func (s *RedisState) gone(ctx context.Context) {
	_, decided, _ := s.running()
	s.mu.Lock()
	pending := s.unannounced
	s.unannounced = make(map[memberKey]struct{})
	s.mu.Unlock()
	var out []Transition
	for p := range pending {
		base := s.base(p.appID, p.channel)
		text, err := s.script(goneScript).Run(ctx, s.client, []string{base + ":members", base + ":seq", base + ":gone:" + p.userID, s.outboxKey(p.appID)},
			p.userID, s.prefix, s.node, p.appID, p.channel, s.hooks[p.appID]).Text()
		if err != nil {
			s.mu.Lock()
			s.unannounced[p] = struct{}{} // try again after the next heartbeat
			s.mu.Unlock()
			s.dirty.Store(true)
			continue
		}
		if seq, _ := strconv.ParseUint(text, 10, 64); seq > 0 {
			out = append(out, Transition{Kind: MemberRemoved, AppID: p.appID, Channel: p.channel, UserID: p.userID, Seq: seq})
		}
	}
	if len(out) > 0 && decided != nil {
		decided(ctx, out)
	}
}

// goneScript announces that ARGV[1] left a presence channel, unless the
// user is a member, or their removal was announced already (by a leave, a
// reap or a re-assert, or by another node that could not write its leave
// either): every announced removal leaves the gone marker KEYS[3], and
// every announced arrival deletes it. It replies the change's Seq, or 0.
var goneScript = newScript(prelude + `
local user, pubsub, origin, app, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
hooked[app], outbox, to, from = ARGV[6], function() return KEYS[4] end, ARGV[2], ARGV[3]
if redis.call('HEXISTS', KEYS[1], user) == 1 or redis.call('EXISTS', KEYS[3]) == 1 then return '0' end
redis.call('SET', KEYS[3], '1', 'EX', gone_ttl)
local seq = bump(KEYS[2])
add('member_removed', app, channel, user, '', 0, seq)
announce(pubsub, origin, app, channel, user, nil, seq)
return string.format('%.0f', seq)
`)

// reap removes the share of every listed node whose lease has expired
// and hands on the transitions that follow.
func (s *RedisState) reap(ctx context.Context) {
	_, decided, _ := s.running()
	nodes, err := s.client.SMembers(ctx, s.prefix+":nodes").Result()
	if err != nil {
		return
	}
	peers := slices.DeleteFunc(slices.Clone(nodes), func(n string) bool { return n == s.node })
	s.mu.Lock()
	s.peers = peers
	s.mu.Unlock()
	for _, node := range nodes {
		if node == s.node {
			continue
		}
		ts, err := s.replaceShare(ctx, node, "reap", Share{})
		if err != nil {
			s.log.Warn("reaping a dead node failed", "node", node, "err", err)
			continue
		}
		if len(ts) > 0 {
			s.log.Info("removed the share of a dead node", "node", node, "transitions", len(ts))
			decided(ctx, ts)
		}
	}
}

// leave drops this node's lease at shutdown, so survivors reap its share
// (its sockets were closed) without waiting for the lease to expire.
func (s *RedisState) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), redisIOTimeout)
	defer cancel()
	_ = s.client.Del(ctx, s.leaseKey(s.node)).Err() // best effort: the lease expires anyway
}
