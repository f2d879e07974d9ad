package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis outbox: one stream per app, {p}:wh:{app}, read through one
// consumer group by the leader, the node holding {p}:wh:leader. The
// scripts that decide transitions XADD the hooked ones (see prelude's
// add); Add XADDs the rest. An entry leaves the stream (XACK and XDEL)
// once the leader is done with it; entries a leader read and did not
// finish stay pending in the group, and the next leader claims them
// (XAUTOCLAIM) before it reads anything new.

// outboxGroup is the consumer group of every outbox stream.
const outboxGroup = "fizz"

func (s *RedisState) outboxKey(appID string) string { return s.prefix + ":wh:" + appID }
func (s *RedisState) leaderKey() string             { return s.prefix + ":wh:leader" }

// outboxApp is the leader's reading position in one app's stream.
type outboxApp struct {
	id      string
	key     string
	pending bool   // reading what is pending for this node, from after
	after   string // the last pending entry read
}

// leadScript makes ARGV[1] the leader or keeps it so: 2 when it became
// leader now, 1 when it already was, 0 when another node is.
var leadScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 2
`)

// Lead implements Outbox. A node that becomes leader claims every entry
// other consumers left pending, so its first reads return them.
func (s *RedisState) Lead(ctx context.Context) (bool, error) {
	if len(s.outboxes) == 0 {
		return false, nil // nothing to send
	}
	if s.down(false) {
		s.setLeading(false)
		return false, errLinkDown
	}
	n, err := leadScript.Run(ctx, s.client, []string{s.leaderKey()}, s.node, s.lease.Milliseconds()).Int()
	if err != nil {
		s.setLeading(false)
		return false, fmt.Errorf("lead the outbox: %w", err)
	}
	switch {
	case n == 0:
		s.setLeading(false)
		return false, nil
	case n == 2 || !s.isLeading():
		if err := s.claim(ctx); err != nil {
			s.setLeading(false)
			return false, err
		}
		s.setLeading(true)
	}
	return true, nil
}

// resignScript deletes the leader key if it holds ARGV[1].
var resignScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)

// Resign implements Outbox. What this node read and did not finish stays
// pending, for the next leader.
func (s *RedisState) Resign(ctx context.Context) error {
	if !s.isLeading() {
		return nil
	}
	s.setLeading(false)
	if err := resignScript.Run(ctx, s.client, []string{s.leaderKey()}, s.node).Err(); err != nil {
		return fmt.Errorf("resign the outbox: %w", err)
	}
	return nil
}

func (s *RedisState) setLeading(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leading = v
}

func (s *RedisState) isLeading() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leading
}

// claim makes every app's stream and group exist, takes over what other
// consumers left pending, and starts each app's reading from its pending
// entries.
func (s *RedisState) claim(ctx context.Context) error {
	apps := make([]*outboxApp, 0, len(s.outboxes))
	for _, id := range s.outboxes {
		a := &outboxApp{id: id, key: s.outboxKey(id), pending: true, after: "0"}
		if err := s.ensureGroup(ctx, a.key); err != nil {
			return err
		}
		for start := "0-0"; ; {
			// XAUTOCLAIM also forgets the pending ids whose entries were
			// trimmed away (its third answer, which go-redis leaves out).
			res, err := s.client.Do(ctx, "XAUTOCLAIM", a.key, outboxGroup, s.node, 0, start, "COUNT", 1000, "JUSTID").Slice()
			if err != nil {
				return fmt.Errorf("claim the outbox of %s: %w", id, err)
			}
			next, _ := firstString(res)
			if len(res) > 2 {
				if gone, ok := res[2].([]any); ok {
					s.dropped.Add(int64(len(gone)))
				}
			}
			if next == "" || next == "0-0" || next == start {
				break
			}
			start = next
		}
		apps = append(apps, a)
	}
	s.mu.Lock()
	s.outboxApps = apps
	s.mu.Unlock()
	return nil
}

// ensureGroup creates the stream's consumer group, reading from the start.
func (s *RedisState) ensureGroup(ctx context.Context, key string) error {
	err := s.client.XGroupCreateMkStream(ctx, key, outboxGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create the outbox group of %s: %w", key, err)
	}
	return nil
}

// Read implements Outbox.
func (s *RedisState) Read(ctx context.Context, max int) ([]OutboxEntry, error) {
	s.mu.Lock()
	apps, leading := s.outboxApps, s.leading
	s.mu.Unlock()
	if !leading {
		return nil, ErrNotLeader
	}
	if max <= 0 || len(apps) == 0 {
		return nil, nil
	}
	// A short wait, so that the leader renews its lead in time.
	args := &redis.XReadGroupArgs{Group: outboxGroup, Consumer: s.node, Count: int64(max), Block: min(time.Second, s.lease/6)}
	byKey := make(map[string]*outboxApp, len(apps))
	ids := make([]string, 0, len(apps))
	for _, a := range apps {
		byKey[a.key] = a
		args.Streams = append(args.Streams, a.key)
		if a.pending {
			ids = append(ids, a.after)
			args.Block = -1 // pending entries are there or not: no wait
		} else {
			ids = append(ids, ">")
		}
	}
	args.Streams = append(args.Streams, ids...)
	streams, err := s.client.XReadGroup(ctx, args).Result()
	switch {
	case errors.Is(err, redis.Nil):
		streams = nil
	case err != nil && strings.HasPrefix(err.Error(), "NOGROUP"):
		// Redis lost the streams: start again from what it has now.
		return nil, s.claim(ctx)
	case err != nil:
		return nil, fmt.Errorf("read the outbox: %w", err)
	}
	read := make(map[string]bool, len(streams))
	var out []OutboxEntry
	var gone []OutboxEntry
	for _, st := range streams {
		a := byKey[st.Stream]
		if a == nil {
			continue
		}
		read[a.key] = len(st.Messages) > 0
		for _, m := range st.Messages {
			if a.pending {
				a.after = m.ID
			}
			e := OutboxEntry{AppID: a.id, ID: m.ID, At: idTime(m.ID)}
			text, ok := m.Values["e"].(string)
			if !ok || !json.Valid([]byte(text)) {
				gone = append(gone, e) // trimmed while pending, or not ours
				continue
			}
			e.Event = json.RawMessage(text)
			out = append(out, e)
		}
	}
	for _, a := range apps {
		if a.pending && !read[a.key] {
			a.pending = false // every pending entry is read: on to new ones
		}
	}
	if len(gone) > 0 {
		s.dropped.Add(int64(len(gone)))
		if err := s.Done(ctx, gone...); err != nil {
			return out, err
		}
	}
	return out, nil
}

// idTime returns the time of a stream id ("1712345678901-0").
func idTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// Done implements Outbox: XACK and XDEL, in one round trip.
func (s *RedisState) Done(ctx context.Context, entries ...OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, e := range entries {
			key := s.outboxKey(e.AppID)
			p.XAck(ctx, key, outboxGroup, e.ID)
			p.XDel(ctx, key, e.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish outbox entries: %w", err)
	}
	return nil
}

// Add implements Outbox.
func (s *RedisState) Add(ctx context.Context, appID string, events ...json.RawMessage) error {
	if len(events) == 0 {
		return nil
	}
	if s.down(false) {
		return errLinkDown
	}
	key := s.outboxKey(appID)
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ev := range events {
			p.XAdd(ctx, &redis.XAddArgs{Stream: key, MaxLen: OutboxLimit, Approx: true, Values: []any{"e", string(ev)}})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue webhook events of %s: %w", appID, err)
	}
	return nil
}

// Dropped implements Outbox.
func (s *RedisState) Dropped() int64 { return s.dropped.Load() }
