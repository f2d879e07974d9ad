package scaling_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/scaling"
	"github.com/fizz-server/fizz/test/harness"
)

// stateWait bounds every wait in the tests of the shared state.
const stateWait = 10 * time.Second

// stateTick is how often those waits poll.
const stateTick = 2 * time.Millisecond

// testLease is the lease of the RedisStates under test: short, so that a
// heartbeat comes every 200 ms.
const testLease = 600 * time.Millisecond

// testApp is the app of every channel in these tests.
const testApp = "app-1"

// fenceChannel is where fence joins: the tests leave it out of what they check.
const fenceChannel = "presence-fence"

// heard is a Handler that records the KindPresence envelopes a node receives.
type heard struct {
	mu  sync.Mutex
	got []scaling.Envelope
}

func (h *heard) Kind() string { return scaling.KindPresence }

func (h *heard) Handle(_ context.Context, e scaling.Envelope) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, e)
}

func (h *heard) all() []scaling.Envelope {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// memberNews is a published member transition, or a member transition
// as it should be published, in a form that compares.
type memberNews struct {
	Added    bool
	AppID    string
	Channel  string
	UserID   string
	UserInfo string // member_added: the user_info JSON text
	Seq      uint64
}

func (m memberNews) String() string {
	return fmt.Sprintf("%s %s/%s added=%v info=%s seq=%d", m.UserID, m.AppID, m.Channel, m.Added, m.UserInfo, m.Seq)
}

// decodeNews decodes a KindPresence envelope.
func decodeNews(t *testing.T, e scaling.Envelope) memberNews {
	t.Helper()
	// assert, not require: this runs in the conditions of Eventually.
	assert.Equal(t, scaling.KindPresence, e.Kind)
	assert.Equal(t, scaling.Version, e.V)
	var ev scaling.MemberEvent
	assert.NoError(t, json.Unmarshal(e.Payload, &ev), "payload %s", e.Payload)
	return memberNews{Added: ev.Added, AppID: e.AppID, Channel: ev.Channel, UserID: ev.UserID, UserInfo: ev.UserInfo, Seq: e.Seq}
}

// newsOf returns the member transitions among ts as they should be published.
func newsOf(ts []scaling.Transition) []memberNews {
	var out []memberNews
	for _, tr := range ts {
		switch tr.Kind {
		case scaling.MemberAdded:
			out = append(out, memberNews{Added: true, AppID: tr.AppID, Channel: tr.Channel, UserID: tr.UserID, UserInfo: string(tr.Info), Seq: tr.Seq})
		case scaling.MemberRemoved:
			out = append(out, memberNews{AppID: tr.AppID, Channel: tr.Channel, UserID: tr.UserID, Seq: tr.Seq})
		}
	}
	return out
}

// kinds returns the kinds of ts, in order.
func kinds(ts []scaling.Transition) []scaling.TransitionKind {
	out := []scaling.TransitionKind{}
	for _, tr := range ts {
		out = append(out, tr.Kind)
	}
	return out
}

// ids returns the user ids of a member list, sorted.
func ids(members map[string]json.RawMessage) []string {
	return append([]string{}, slices.Sorted(maps.Keys(members))...)
}

// chanKey and memberKey name a channel and a member of one in the share model.
type chanKey struct{ channel string }

type memberKey struct{ channel, user string }

// shareModel is the ShareSource of a node under test: the test's own
// record of the node's share, kept exact by the subject's helpers, which
// change it together with the state under the share lock, as the real
// source (membership) does. A re-assert of an exact share changes
// nothing, so the tests see only the transitions they cause.
type shareModel struct {
	lock sync.RWMutex // the share lock: changes share it, WithShare takes it whole

	mu       sync.Mutex
	channels map[chanKey]int // subscriptions, presence channels included
	seen     map[chanKey]uint64
	members  map[memberKey]int // sockets
	info     map[memberKey]json.RawMessage
	conns    int

	asserts atomic.Int64 // WithShare calls: re-asserts of the whole share
}

func newShareModel() *shareModel {
	return &shareModel{
		channels: make(map[chanKey]int),
		seen:     make(map[chanKey]uint64),
		members:  make(map[memberKey]int),
		info:     make(map[memberKey]json.RawMessage),
	}
}

// WithShare implements scaling.ShareSource.
func (m *shareModel) WithShare(f func(scaling.Share)) {
	m.lock.Lock()
	defer m.lock.Unlock()
	m.asserts.Add(1)
	f(m.share())
}

// share returns the share as it is now.
func (m *shareModel) share() scaling.Share {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := scaling.Share{Connections: map[string]int{testApp: m.conns}}
	for k, n := range m.channels {
		s.Channels = append(s.Channels, scaling.ChannelShare{AppID: testApp, Channel: k.channel, Subscriptions: n, Seq: m.seen[k]})
	}
	for k, n := range m.members {
		s.Presence = append(s.Presence, scaling.PresenceShare{AppID: testApp, Channel: k.channel, UserID: k.user, Info: m.info[k], Sockets: n})
	}
	return s
}

// change runs f, a change of the state and of the share, under the
// share lock's read side.
func (m *shareModel) change(f func()) {
	m.lock.RLock()
	defer m.lock.RUnlock()
	f()
}

func (m *shareModel) update(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f()
}

// saw records Seqs the node has seen on channel.
func (m *shareModel) saw(channel string, seqs ...uint64) {
	m.update(func() {
		for _, s := range seqs {
			m.seen[chanKey{channel}] = max(m.seen[chanKey{channel}], s)
		}
	})
}

// sawAll records the Seqs of ts.
func (m *shareModel) sawAll(ts []scaling.Transition) {
	for _, tr := range ts {
		m.saw(tr.Channel, tr.Seq)
	}
}

// subject is one node's State under test, with its share and what it heard.
type subject struct {
	node  string
	state scaling.State
	share *shareModel
	heard *heard
	fence atomic.Int64
}

// join joins user to channel and records it in the share when it succeeds.
func (s *subject) join(channel, user string, info json.RawMessage, maxMembers int) (scaling.Snapshot, []scaling.Transition, error) {
	var snap scaling.Snapshot
	var ts []scaling.Transition
	var err error
	s.share.change(func() {
		snap, ts, err = s.state.JoinPresence(context.Background(), testApp, channel, user, info, maxMembers)
		if err != nil {
			return
		}
		s.share.update(func() {
			k := memberKey{channel, user}
			s.share.channels[chanKey{channel}]++
			s.share.members[k]++
			if s.share.members[k] == 1 {
				s.share.info[k] = info
			}
		})
		s.share.saw(channel, snap.Seq)
		s.share.sawAll(ts)
	})
	return snap, ts, err
}

// mustJoin joins and requires success.
func (s *subject) mustJoin(t *testing.T, channel, user string) (scaling.Snapshot, []scaling.Transition) {
	t.Helper()
	snap, ts, err := s.join(channel, user, nil, 0)
	require.NoError(t, err, "%s joins %s", user, channel)
	return snap, ts
}

// leave counts one socket of user on channel less. The share forgets it
// whether or not the state could be written, as a closing socket does.
func (s *subject) leave(channel, user string) ([]scaling.Transition, error) {
	var ts []scaling.Transition
	var err error
	s.share.change(func() {
		ts, err = s.state.LeavePresence(context.Background(), testApp, channel, user)
		if errors.Is(err, scaling.ErrShareLost) {
			return // still subscribed: the caller tries again once the state is whole
		}
		s.share.update(func() {
			k := memberKey{channel, user}
			if s.share.members[k] == 0 {
				return
			}
			if s.share.channels[chanKey{channel}]--; s.share.channels[chanKey{channel}] <= 0 {
				delete(s.share.channels, chanKey{channel})
			}
			if s.share.members[k]--; s.share.members[k] <= 0 {
				delete(s.share.members, k)
				delete(s.share.info, k)
			}
		})
		s.share.sawAll(ts)
	})
	return ts, err
}

// mustLeave leaves and requires success.
func (s *subject) mustLeave(t *testing.T, channel, user string) []scaling.Transition {
	t.Helper()
	ts, err := s.leave(channel, user)
	require.NoError(t, err, "%s leaves %s", user, channel)
	return ts
}

// setSubs writes this node's counts and records them when it succeeds.
func (s *subject) setSubs(counts ...scaling.ChannelCount) ([]scaling.Transition, error) {
	var ts []scaling.Transition
	var err error
	s.share.change(func() {
		ts, err = s.state.SetSubscriptions(context.Background(), counts)
		if err != nil {
			return
		}
		s.share.update(func() {
			for _, c := range counts {
				if c.Subscriptions > 0 {
					s.share.channels[chanKey{c.Channel}] = c.Subscriptions
				} else {
					delete(s.share.channels, chanKey{c.Channel})
				}
			}
		})
		s.share.sawAll(ts)
	})
	return ts, err
}

// mustSetSubs writes one channel's count on this node and requires success.
func (s *subject) mustSetSubs(t *testing.T, channel string, n int) []scaling.Transition {
	t.Helper()
	ts, err := s.setSubs(scaling.ChannelCount{AppID: testApp, Channel: channel, Subscriptions: n})
	require.NoError(t, err, "%d subscriptions to %s", n, channel)
	return ts
}

// addConn counts one socket more and records it when it is admitted.
func (s *subject) addConn(limit int) (bool, error) {
	var ok bool
	var err error
	s.share.change(func() {
		ok, err = s.state.AddConnection(context.Background(), testApp, limit)
		if err == nil && ok {
			s.share.update(func() { s.share.conns++ })
		}
	})
	return ok, err
}

// members returns channel's member list, which must be readable.
func (s *subject) members(t *testing.T, channel string) scaling.Snapshot {
	t.Helper()
	snap, err := s.state.PresenceMembers(context.Background(), testApp, channel)
	require.NoError(t, err, "members of %s", channel)
	return snap
}

// heardUntilFence joins a fence user and waits until this node hears it;
// it returns, decoded, every member transition the node heard before the
// fence (fences left out). Every envelope published before the fence
// join is heard before it: the state publishes in the order of its
// changes, and pub/sub keeps that order.
func (s *subject) heardUntilFence(t *testing.T) []memberNews {
	t.Helper()
	user := fmt.Sprintf("fence-%s-%d", s.node, s.fence.Add(1))
	s.mustJoin(t, fenceChannel, user)
	var got []memberNews
	require.Eventually(t, func() bool {
		got = got[:0]
		for _, e := range s.heard.all() {
			n := decodeNews(t, e)
			if n.Channel == fenceChannel {
				if n.UserID == user {
					return true
				}
				continue
			}
			got = append(got, n)
		}
		return false
	}, stateWait, stateTick, "node %s hears the fence %s", s.node, user)
	return got
}

// stateCluster makes the nodes of one cluster of a State implementation.
type stateCluster interface {
	add(t *testing.T) *subject
}

// stateImpls are the State implementations every test of the contract
// runs on. On Redis every node hears every member transition; on Local
// each node hears those of its own changes only.
var stateImpls = []struct {
	name      string
	broadcast bool
	new       func(t *testing.T) stateCluster
}{
	{name: "local", broadcast: false, new: func(*testing.T) stateCluster { return &localCluster{} }},
	{name: "redis", broadcast: true, new: func(t *testing.T) stateCluster { return newRedisCluster(t) }},
}

// published returns every member transition the nodes published, heard
// up to a fence: with broadcast, all of them through the first node, in
// order; otherwise each node's own, node after node.
func published(t *testing.T, broadcast bool, nodes ...*subject) []memberNews {
	t.Helper()
	if broadcast {
		return nodes[0].heardUntilFence(t)
	}
	var out []memberNews
	for _, n := range nodes {
		out = append(out, n.heardUntilFence(t)...)
	}
	return out
}

// localCluster makes LocalState nodes: the first over its own Local
// provider, the others views of its data (ForNode) over theirs.
type localCluster struct {
	first *scaling.LocalState
}

func (c *localCluster) add(t *testing.T) *subject {
	t.Helper()
	h := &heard{}
	router, err := scaling.NewRouter([]scaling.Handler{h}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	p := scaling.NewLocal(nil)
	require.NoError(t, p.Subscribe(context.Background(), router.Deliver))
	t.Cleanup(func() { assert.NoError(t, p.Close()) })
	var s *scaling.LocalState
	if c.first == nil {
		s = scaling.NewLocalState(p, scaling.Config{})
		c.first = s
	} else {
		s = c.first.ForNode(p)
	}
	return &subject{node: p.Node(), state: s, share: newShareModel(), heard: h}
}

// redisCluster makes RedisState nodes over one private Redis.
type redisCluster struct {
	rd     *harness.Redis
	rc     *redis.Client // raw client, to look at or lose the keys
	prefix string
}

func newRedisCluster(t *testing.T) *redisCluster {
	t.Helper()
	rd := harness.StartRedis(t)
	return &redisCluster{rd: rd, rc: rd.Client(t), prefix: "fizz-state-test"}
}

// add implements stateCluster: a node that runs, once the state is whole.
func (c *redisCluster) add(t *testing.T) *subject {
	t.Helper()
	return c.running(t, nodeOptions{}).subject
}

// running starts a node and its Run and waits until its share is
// asserted and the state is whole. Started one after the other, each
// node but the first finds the state whole at its first heartbeat, so no
// Recover is still under way when running returns.
func (c *redisCluster) running(t *testing.T, o nodeOptions) *redisNode {
	t.Helper()
	n := c.start(t, o)
	n.run(t)
	c.waitListed(t, n.node, true)
	c.waitIntact(t)
	return n
}

// nodeOptions change a Redis node from the defaults.
type nodeOptions struct {
	url     string        // Redis URL; default: the cluster's Redis
	lease   time.Duration // default testLease
	timeout time.Duration // the cluster timeout; default stateWait/2
	// webhooks is scaling.Config.Webhooks (nil: none).
	webhooks map[string][]string
	// counted is scaling.Config.SubscriptionCounts (nil: none).
	counted map[string]bool
	// also hears envelopes of another kind (nil: none).
	also scaling.Handler
}

// redisNode is one node of a redisCluster.
type redisNode struct {
	*subject
	provider *scaling.Redis
	rs       *scaling.RedisState
	decided  *decisions

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// decisions records what Run hands to its decided callback.
type decisions struct {
	mu  sync.Mutex
	got []scaling.Transition
}

func (d *decisions) add(_ context.Context, ts []scaling.Transition) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, ts...)
}

func (d *decisions) all() []scaling.Transition {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// start makes a node whose link is up; its Run is not started.
func (c *redisCluster) start(t *testing.T, o nodeOptions) *redisNode {
	t.Helper()
	if o.url == "" {
		o.url = c.rd.URL
	}
	if o.lease == 0 {
		o.lease = testLease
	}
	if o.timeout == 0 {
		o.timeout = stateWait / 2
	}
	cfg := scaling.Config{Enabled: true, RedisURL: o.url, Channel: c.prefix, Lease: o.lease, Timeout: o.timeout,
		Webhooks: o.webhooks, SubscriptionCounts: o.counted}
	log := harness.Logger(t)
	r, err := scaling.NewRedis(cfg, log, nil)
	require.NoError(t, err)
	rs := scaling.NewRedisState(r, cfg, log)
	h := &heard{}
	handlers := append(rs.Handlers(), h)
	if o.also != nil {
		handlers = append(handlers, o.also)
	}
	router, err := scaling.NewRouter(handlers, log)
	require.NoError(t, err)
	require.NoError(t, r.Subscribe(context.Background(), router.Deliver))
	t.Cleanup(func() { _ = r.Close() })
	require.Eventually(t, r.Up, stateWait, stateTick, "the link of a new node comes up")
	return &redisNode{
		subject:  &subject{node: r.Node(), state: rs, share: newShareModel(), heard: h},
		provider: r,
		rs:       rs,
		decided:  &decisions{},
	}
}

// run starts the node's Run, until stop or the end of the test.
func (n *redisNode) run(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	require.Nil(t, n.cancel, "Run is running already")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	n.cancel, n.done = cancel, done
	go func() {
		defer close(done)
		n.rs.Run(ctx, n.share, n.decided.add)
	}()
	t.Cleanup(n.stop)
}

// stop ends Run (which drops the node's lease) and waits for it.
func (n *redisNode) stop() {
	n.mu.Lock()
	cancel, done := n.cancel, n.done
	n.cancel, n.done = nil, nil
	n.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// exists reports whether key exists; it runs in the conditions of Eventually.
func (c *redisCluster) exists(t *testing.T, key string) bool {
	t.Helper()
	n, err := c.rc.Exists(context.Background(), key).Result()
	assert.NoError(t, err)
	return n == 1
}

// waitIntact waits until the state is marked whole.
func (c *redisCluster) waitIntact(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return c.exists(t, c.prefix+":intact") }, stateWait, stateTick,
		"the shared state is marked whole")
}

// waitListed waits until node is on the node list (want) or off it.
func (c *redisCluster) waitListed(t *testing.T, node string, want bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		in, err := c.rc.SIsMember(context.Background(), c.prefix+":nodes", node).Result()
		return err == nil && in == want
	}, stateWait, stateTick, "node %s listed: %v", node, want)
}

// waitHeartbeats waits until node has renewed (or re-asserted) its lease
// times times. Each time it marks the lease with a time to live far
// longer than any node's lease and waits until the node sets it back.
// Two renewals mean a whole heartbeat ran between them. (Time to live,
// not a clock: miniredis does not count it down.)
func (c *redisCluster) waitHeartbeats(t *testing.T, node string, times int) {
	t.Helper()
	const mark = time.Hour
	key := c.prefix + ":lease:" + node
	for range times {
		require.Eventually(t, func() bool {
			marked, err := c.rc.PExpire(context.Background(), key, mark).Result()
			return err == nil && marked
		}, stateWait, stateTick, "node %s has a lease", node)
		require.Eventually(t, func() bool {
			ttl, err := c.rc.PTTL(context.Background(), key).Result()
			return err == nil && ttl > 0 && ttl < mark/2
		}, stateWait, stateTick, "node %s renews its lease", node)
	}
}

// keys returns how many keys Redis holds.
func (c *redisCluster) keys(t *testing.T) int64 {
	t.Helper()
	n, err := c.rc.DBSize(context.Background()).Result()
	require.NoError(t, err)
	return n
}

// linkProxy is a TCP proxy between one node and Redis. Blocking it cuts
// the node's connections and refuses new ones, so that the node's link
// goes down while Redis, and the other nodes' links, stay up.
type linkProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	blocked bool
	conns   map[net.Conn]struct{}
}

// startLinkProxy starts a proxy to target (host:port), closed at cleanup.
func startLinkProxy(t *testing.T, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &linkProxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// URL is the redis:// URL of Redis through the proxy.
func (p *linkProxy) URL() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *linkProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track adds c to the open connections, unless the proxy is blocked.
func (p *linkProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blocked {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *linkProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *linkProxy) serve(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		p.untrack(c)
		return
	}
	if !p.track(up) {
		_ = up.Close()
		p.untrack(c)
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, c)
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(c, up)
		done <- struct{}{}
	}()
	<-done
	p.untrack(c, up) // ends the other copy
	<-done
}

// block cuts every connection and refuses new ones until unblock.
func (p *linkProxy) block() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for c := range p.conns {
		_ = c.Close()
	}
}

func (p *linkProxy) unblock() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = false
}

func (p *linkProxy) close() {
	_ = p.ln.Close()
	p.block()
	p.wg.Wait()
}
