package scaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Envelope kinds of Recover: a node asks every node to re-assert its
// share and each answers on the asker's reply channel once it has.
const (
	KindRecover   = "state.recover"
	KindRecovered = "state.recovered"
)

// askAgain is how often a recovery asks again while peers have not
// answered.
const askAgain = 50 * time.Millisecond

// recoverRequest is the payload of both kinds.
type recoverRequest struct {
	ID string `json:"id"`
}

// Recover implements State: it asks every node, this one included, to
// re-assert its share (each does, if Redis lost it), waits until as many
// have answered as received the request, and the peers of the last reap
// too (asking again every askAgain: a peer that was still reconnecting
// when the request went out missed it, and would miss the announcements
// that follow), at most the cluster timeout; then it marks the state
// whole ({p}:intact) and announces the leaves that could not be written.
// One recovery runs at a time on a node; a caller that waited for one
// that finished meanwhile returns with it.
func (s *RedisState) Recover(ctx context.Context) error {
	seen := s.recovered.Load()
	s.recoverMu.Lock()
	defer s.recoverMu.Unlock()
	if s.recovered.Load() != seen {
		return nil
	}
	if _, _, ok := s.running(); !ok {
		return errors.New("the shared state is not running yet")
	}
	id := NewNodeID()
	arrived := make(chan string, 1024)
	s.mu.Lock()
	s.acks[id] = arrived
	missing := make(map[string]bool, len(s.peers))
	for _, p := range s.peers {
		missing[p] = true
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.acks, id)
		s.mu.Unlock()
	}()
	payload, _ := json.Marshal(recoverRequest{ID: id})
	request := Envelope{V: Version, Kind: KindRecover, Payload: payload}
	want, err := s.pubsub.publishAll(ctx, request)
	if err != nil {
		return fmt.Errorf("ask the cluster to re-assert: %w", err)
	}
	// PUBLISH counts every subscriber of the channel, a monitoring
	// client too; the nodes are those with a reply channel.
	if nodes, err := s.pubsub.replyChannels(ctx); err == nil {
		want = min(want, int64(nodes))
	}
	// The peers are waited for only as long as the caller's deadline
	// leaves room to mark the state whole after.
	wait := s.timeout
	if deadline, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(deadline)/2)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	again := time.NewTicker(askAgain)
	defer again.Stop()
	answered := map[string]bool{}
	for int64(len(answered)) < want || len(missing) > 0 {
		select {
		case node := <-arrived:
			answered[node] = true
			delete(missing, node)
		case <-again.C:
			if len(missing) > 0 {
				_, _ = s.pubsub.publishAll(ctx, request) // those who answered answer again, once more counted once
			}
		case <-timer.C:
			s.log.Warn("nodes did not confirm their re-assert in time; carrying on", "answers", len(answered), "nodes", want, "peers_missing", len(missing))
			want, missing = 0, nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := s.client.Set(ctx, s.intactKey(), "1", 0).Err(); err != nil {
		return fmt.Errorf("mark the shared state whole: %w", err)
	}
	s.recovered.Add(1)
	s.log.Info("the shared state is whole again", "nodes", want)
	s.gone(ctx)
	return nil
}

// globEscape escapes the characters of s that a Redis glob pattern reads.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^-`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// recoverHandler handles KindRecover: another node (or this one) asks
// for a re-assert; Run's answering goroutine does it.
type recoverHandler struct{ s *RedisState }

func (recoverHandler) Kind() string { return KindRecover }

func (h recoverHandler) Handle(_ context.Context, e Envelope) {
	s := h.s
	s.mu.Lock()
	if len(s.asks) < 1024 { // more cannot be pending: one per node's recovery
		s.asks = append(s.asks, e)
	}
	s.mu.Unlock()
	select {
	case s.ask <- struct{}{}:
	default:
	}
}

// recoveredHandler handles KindRecovered: a node re-asserted for one of
// this node's recoveries.
type recoveredHandler struct{ s *RedisState }

func (recoveredHandler) Kind() string { return KindRecovered }

func (h recoveredHandler) Handle(_ context.Context, e Envelope) {
	var r recoverRequest
	if json.Unmarshal(e.Payload, &r) != nil {
		return
	}
	h.s.mu.Lock()
	arrived := h.s.acks[r.ID]
	h.s.mu.Unlock()
	if arrived != nil {
		select {
		case arrived <- e.Origin:
		default:
		}
	}
}

// Handlers returns the handlers of the envelopes Recover exchanges.
func (s *RedisState) Handlers() []Handler {
	return []Handler{recoverHandler{s}, recoveredHandler{s}}
}

// answer re-asserts for the recoveries other nodes ask for, then answers
// each, until ctx ends. One re-assert answers every request that came
// before it started.
func (s *RedisState) answer(ctx context.Context) {
	for {
		select {
		case <-s.ask:
		case <-ctx.Done():
			return
		}
		s.mu.Lock()
		asks := s.asks
		s.asks = nil
		s.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		if err := s.reassert(actx); err != nil {
			s.log.Warn("re-assert asked by the cluster failed", "err", err)
			cancel()
			continue
		}
		for _, e := range asks {
			reply := Envelope{V: Version, Kind: KindRecovered, Payload: e.Payload}
			if err := s.pubsub.Reply(actx, e.Origin, reply); err != nil {
				s.log.Debug("answer to a recovery", "node", e.Origin, "err", err)
			}
		}
		cancel()
	}
}
