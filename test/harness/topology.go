package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// The Redis topologies beside the single server of StartRedis: a master,
// a replica and three sentinels (StartSentinel), and a Redis Cluster of
// three masters (StartRedisCluster). They need the redis-server binary
// (and redis-cli for the cluster): without it a test skips, or fails with
// CI=true. Every process runs on free loopback ports in a temp dir and is
// killed when the test ends.

// needRedisBinaries skips t (fails it with CI=true) when a binary is missing.
func needRedisBinaries(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			require.NotEqual(t, "true", os.Getenv("CI"), "CI must run the Redis topology tests, and %s is not on PATH", name)
			t.Skipf("%s is not on PATH", name)
		}
	}
}

// redisServer is one redis-server process of a topology.
type redisServer struct {
	Addr string
	port int
	dir  string
	cmd  *exec.Cmd
}

// Pid is the process id, for CPU readings.
func (s *redisServer) Pid() int { return s.cmd.Process.Pid }

func newServer(t testing.TB, dir string) *redisServer {
	return &redisServer{port: FreePort(t), dir: dir}
}

func (s *redisServer) start(t testing.TB, args ...string) {
	t.Helper()
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.cmd = startServer(t, s.dir, s.port, args...)
}

// Sentinel is a master, one replica and three sentinels watching the
// master under the name Master.
type Sentinel struct {
	// Master is the name the sentinels know the master by; Addrs are the
	// sentinels' host:port.
	Master string
	Addrs  []string

	t         testing.TB
	data      []*redisServer // the master at start, then the replica
	sentinels []*redisServer
}

// sentinelDownAfter is how long the sentinels wait before they judge a
// silent master down: short, so a test's failover takes a few seconds.
const sentinelDownAfter = time.Second

// StartSentinel starts the Sentinel topology and waits until the
// sentinels see the replica and each other, so that a failover can start
// once the master dies.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	needRedisBinaries(t, "redis-server")
	s := &Sentinel{Master: "fizzmaster", t: t}
	t.Cleanup(s.Stop)
	master := newServer(t, t.TempDir())
	master.start(t, "--save", "", "--appendonly", "no")
	replica := newServer(t, t.TempDir())
	replica.start(t, "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", strconv.Itoa(master.port))
	s.data = []*redisServer{master, replica}
	for range 3 {
		sn := newServer(t, t.TempDir())
		conf := filepath.Join(sn.dir, "sentinel.conf")
		text := fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s %d\n"+
			"sentinel failover-timeout %s 10000\n"+
			"sentinel parallel-syncs %s 1\n",
			s.Master, master.port, s.Master, sentinelDownAfter.Milliseconds(), s.Master, s.Master)
		require.NoError(t, os.WriteFile(conf, []byte(text), 0o600))
		sn.start(t, conf, "--sentinel")
		s.sentinels = append(s.sentinels, sn)
		s.Addrs = append(s.Addrs, sn.Addr)
	}
	ctx := context.Background()
	waitFor(t, 30*time.Second, "the replica in sync and known to every sentinel, the sentinels to each other", func() (bool, string) {
		text, err := info(replica.Addr, "replication")
		if err != nil || !strings.Contains(text, "master_link_status:up") {
			return false, fmt.Sprint("replica: ", err)
		}
		for _, sn := range s.sentinels {
			c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr})
			replicas, err := c.Replicas(ctx, s.Master).Result()
			peers, err2 := c.Sentinels(ctx, s.Master).Result()
			_ = c.Close()
			if err != nil || err2 != nil || len(replicas) < 1 || len(peers) < 2 {
				return false, fmt.Sprintf("sentinel %s: %d replicas, %d peers, %v %v", sn.Addr, len(replicas), len(peers), err, err2)
			}
		}
		return true, ""
	})
	return s
}

// MasterAddr is the master's host:port as the first sentinel that answers
// names it.
func (s *Sentinel) MasterAddr() (string, error) {
	var last error
	for _, sn := range s.sentinels {
		if sn.cmd == nil {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		hp, err := c.GetMasterAddrByName(ctx, s.Master).Result()
		cancel()
		_ = c.Close()
		if err == nil && len(hp) == 2 {
			return net.JoinHostPort(hp[0], hp[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names the master: %v", last)
}

// KillMaster kills the current master (SIGKILL) and returns its address.
func (s *Sentinel) KillMaster() string {
	s.t.Helper()
	addr, err := s.MasterAddr()
	require.NoError(s.t, err)
	return killServer(s.t, s.data, addr)
}

// killServer kills the live server of servers at addr and returns addr.
func killServer(t testing.TB, servers []*redisServer, addr string) string {
	t.Helper()
	for _, sv := range servers {
		if sv.Addr == addr && sv.cmd != nil {
			kill(sv.cmd)
			sv.cmd = nil
			return addr
		}
	}
	require.FailNow(t, "no live server of the topology is at "+addr)
	return ""
}

// WaitFailover waits until the sentinels name a master other than old
// and that master answers as a master.
func (s *Sentinel) WaitFailover(old string, within time.Duration) string {
	s.t.Helper()
	var now string
	waitFor(s.t, within, "the sentinels promote the replica", func() (bool, string) {
		addr, err := s.MasterAddr()
		if err != nil || addr == old {
			return false, fmt.Sprint(addr, err)
		}
		text, err := info(addr, "replication")
		if err != nil || !strings.Contains(text, "role:master") {
			return false, fmt.Sprint("role of ", addr, ": ", err)
		}
		now = addr
		return true, ""
	})
	return now
}

// Stop kills every process of the topology; twice is fine.
func (s *Sentinel) Stop() {
	for _, sv := range append(append([]*redisServer{}, s.data...), s.sentinels...) {
		kill(sv.cmd)
		sv.cmd = nil
	}
}

// RedisCluster is a Redis Cluster of three masters, their slots split
// evenly as redis-cli --cluster create splits them, with or without one
// replica each.
type RedisCluster struct {
	// Addrs are the servers' host:port, the seeds a client needs.
	Addrs []string

	t       testing.TB
	servers []*redisServer
}

// StartRedisCluster starts a Redis Cluster of three masters and waits
// until every node reports the cluster ok.
func StartRedisCluster(t testing.TB) *RedisCluster { return startRedisCluster(t, 0) }

// StartRedisClusterWithReplicas starts three masters with one replica
// each, and waits until every master has its replica.
func StartRedisClusterWithReplicas(t testing.TB) *RedisCluster { return startRedisCluster(t, 1) }

func startRedisCluster(t testing.TB, replicas int) *RedisCluster {
	t.Helper()
	needRedisBinaries(t, "redis-server", "redis-cli")
	c := &RedisCluster{t: t}
	t.Cleanup(c.Stop)
	for range 3 * (1 + replicas) {
		m := newServer(t, t.TempDir())
		bus := FreePort(t)
		m.start(t, "--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(m.dir, "nodes.conf"), "--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "2000", "--cluster-replica-validity-factor", "0")
		c.servers = append(c.servers, m)
		c.Addrs = append(c.Addrs, m.Addr)
	}
	args := append(append([]string{"--cluster", "create"}, c.Addrs...), "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create: %s", out)
	waitFor(t, 30*time.Second, "every node of the Redis Cluster reports cluster_state:ok, every master its replicas", func() (bool, string) {
		for _, m := range c.servers {
			c := client(m.Addr)
			text, err := c.ClusterInfo(context.Background()).Result()
			_ = c.Close()
			if err != nil || !strings.Contains(text, "cluster_state:ok") {
				return false, fmt.Sprint(m.Addr, ": ", err)
			}
			repl, err := info(m.Addr, "replication")
			if err != nil || strings.Contains(repl, "role:master") && !strings.Contains(repl, fmt.Sprintf("connected_slaves:%d", replicas)) {
				return false, fmt.Sprint(m.Addr, ": replicas not connected yet ", err)
			}
		}
		return true, ""
	})
	return c
}

// SlotOwner is the address of the master serving slot, as the first live
// server answering CLUSTER SLOTS tells it.
func (c *RedisCluster) SlotOwner(slot int) (string, error) {
	last := fmt.Errorf("no live server")
	for _, m := range c.servers {
		if m.cmd == nil {
			continue
		}
		cl := client(m.Addr)
		slots, err := cl.ClusterSlots(context.Background()).Result()
		_ = cl.Close()
		if err != nil {
			last = err
			continue
		}
		for _, r := range slots {
			if slot >= r.Start && slot <= r.End {
				return r.Nodes[0].Addr, nil
			}
		}
		last = fmt.Errorf("%s: no owner of slot %d", m.Addr, slot)
	}
	return "", last
}

// KillSlotOwner kills (SIGKILL) the master serving slot and returns its
// address; with replicas, the cluster then promotes the master's replica.
func (c *RedisCluster) KillSlotOwner(slot int) string {
	c.t.Helper()
	owner, err := c.SlotOwner(slot)
	require.NoError(c.t, err)
	return killServer(c.t, c.servers, owner)
}

// WaitSlotFailover waits until a master other than old serves slot and
// every live server reports the cluster ok, and returns the new owner.
func (c *RedisCluster) WaitSlotFailover(slot int, old string, within time.Duration) string {
	c.t.Helper()
	var now string
	waitFor(c.t, within, "a replica takes over the slot", func() (bool, string) {
		owner, err := c.SlotOwner(slot)
		if err != nil || owner == old {
			return false, fmt.Sprint(owner, err)
		}
		for _, m := range c.servers {
			if m.cmd == nil {
				continue
			}
			cl := client(m.Addr)
			text, err := cl.ClusterInfo(context.Background()).Result()
			_ = cl.Close()
			if err != nil || !strings.Contains(text, "cluster_state:ok") {
				return false, fmt.Sprint(m.Addr, ": not ok ", err)
			}
		}
		now = owner
		return true, ""
	})
	return now
}

// Client returns a go-redis cluster client, closed when t ends.
func (c *RedisCluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// Stop kills every server; twice is fine.
func (c *RedisCluster) Stop() {
	for _, m := range c.servers {
		kill(m.cmd)
		m.cmd = nil
	}
}

// client returns a client of one server for the topology's checks (no
// retries, short timeouts), closed by the caller.
func client(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
}

// info reads one section of a server's INFO.
func info(addr, section string) (string, error) {
	c := client(addr)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Info(ctx, section).Result()
}

// waitFor polls ok every 50 ms until it holds, failing t after within
// with what's last message.
func waitFor(t testing.TB, within time.Duration, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done, last := ok()
		if done {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s: not within %s (last: %s)", what, within, last)
		time.Sleep(50 * time.Millisecond) // polling another process's state
	}
}

// MoveSlot moves a hash slot that holds no keys (a shard channel's) to
// another master of a cluster without replicas, as resharding does, and
// returns the new owner's address: the old owner then drops the slot's
// shard channel subscribers (SUNSUBSCRIBE) and redirects them with MOVED.
func (c *RedisCluster) MoveSlot(slot int) string {
	c.t.Helper()
	ctx := context.Background()
	ids := map[string]string{} // address -> node id
	for _, m := range c.servers {
		cl := client(m.Addr)
		id, err := cl.Do(ctx, "CLUSTER", "MYID").Text()
		require.NoError(c.t, err)
		ids[m.Addr] = id
		n, err := cl.Do(ctx, "CLUSTER", "COUNTKEYSINSLOT", slot).Int()
		_ = cl.Close()
		require.NoError(c.t, err)
		require.Zero(c.t, n, "slot %d holds keys; MoveSlot moves only empty slots", slot)
	}
	from, err := c.SlotOwner(slot)
	require.NoError(c.t, err)
	var to string
	for _, m := range c.servers {
		if m.Addr != from {
			to = m.Addr
			break
		}
	}
	set := func(addr string, args ...any) {
		cl := client(addr)
		defer cl.Close()
		require.NoError(c.t, cl.Do(ctx, append([]any{"CLUSTER", "SETSLOT", slot}, args...)...).Err(), "CLUSTER SETSLOT %d %v on %s", slot, args, addr)
	}
	set(to, "IMPORTING", ids[from])
	set(from, "MIGRATING", ids[to])
	set(to, "NODE", ids[to])
	set(from, "NODE", ids[to])
	for _, m := range c.servers {
		if m.Addr != from && m.Addr != to {
			set(m.Addr, "NODE", ids[to])
		}
	}
	return to
}
