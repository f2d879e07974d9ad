package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Redis is a private Redis for one test: a redis-server on a free loopback
// port when the binary is on PATH, an in-process miniredis otherwise. With
// CI=true a missing redis-server fails the test instead (docs/architecture.md,
// "Tests and benchmarks").
type Redis struct {
	// Addr is host:port; URL is the redis:// URL of db 0.
	Addr string
	URL  string

	t    testing.TB
	skip string // NoRedisServer's reason to skip what acts on the server
	port int
	dir  string
	cmd  *exec.Cmd
	mini *miniredis.Miniredis
}

// StartRedis starts a private Redis and stops it when t ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{t: t}
	if _, err := exec.LookPath("redis-server"); err != nil {
		require.NotEqual(t, "true", os.Getenv("CI"), "CI must run the scaling tests against a real redis-server, and none is on PATH")
		r.mini = miniredis.NewMiniRedis()
		require.NoError(t, r.mini.Start())
		r.Addr = r.mini.Addr()
		r.URL = "redis://" + r.Addr + "/0"
		stop := tick(r.mini)
		t.Cleanup(func() {
			stop()
			r.mini.Close()
		})
		return r
	}
	r.dir = t.TempDir()
	r.port = FreePort(t)
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	r.URL = "redis://" + r.Addr + "/0"
	r.start()
	t.Cleanup(r.Stop)
	return r
}

// NoRedisServer stands for the one redis-server where a test runs against
// another shape of Redis: Real is false (there is no server process to
// restart or pause), and Stop, Restart, Pause and Client skip the test
// with why.
func NoRedisServer(t testing.TB, why string) *Redis {
	return &Redis{t: t, skip: why}
}

// skipped skips the test when r stands for no server.
func (r *Redis) skipped() {
	if r.skip != "" {
		r.t.Skip(r.skip)
	}
}

// Real reports whether this is a redis-server process (not miniredis).
func (r *Redis) Real() bool { return r.mini == nil && r.skip == "" }

func (r *Redis) start() {
	r.t.Helper()
	if r.mini != nil {
		require.NoError(r.t, r.mini.Restart())
		return
	}
	r.cmd = startServer(r.t, r.dir, r.port, "--save", "", "--appendonly", "no")
}

// startServer starts a redis-server on port of 127.0.0.1 in dir, with
// args added (a config file first, as --sentinel needs), and waits until
// it answers a PING.
func startServer(t testing.TB, dir string, port int, args ...string) *exec.Cmd {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command("redis-server", append(args, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--logfile", "")...)
	// redis-server dies with the test binary, even when that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start(), "start redis-server")
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return cmd
		}
		require.True(t, time.Now().Before(deadline), "redis-server on %s did not answer: %v", addr, err)
		time.Sleep(20 * time.Millisecond) // polling a child process's start-up
	}
}

// kill kills a process started by startServer and reaps it; nil is fine.
func kill(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Kill() // already gone is fine
	_ = cmd.Wait()         // reports the kill
}

// Stop stops Redis; its data is lost (no persistence). Stop twice is fine.
func (r *Redis) Stop() {
	r.skipped()
	if r.mini != nil {
		r.mini.Close()
		return
	}
	kill(r.cmd)
	r.cmd = nil
}

// Restart stops Redis and starts an empty one on the same port, as a Redis
// without persistence comes back after a crash.
func (r *Redis) Restart() {
	r.t.Helper()
	r.skipped()
	r.Stop()
	if r.mini != nil {
		r.mini.FlushAll()
	}
	r.start()
}

// Client returns a go-redis client for this Redis, closed when t ends.
func (r *Redis) Client(t testing.TB) *redis.Client {
	r.skipped()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// String names the Redis in test logs.
func (r *Redis) String() string {
	if r.mini != nil {
		return fmt.Sprintf("miniredis at %s", r.Addr)
	}
	return fmt.Sprintf("redis-server at %s", r.Addr)
}

// tick moves m's clock with the wall clock, so that keys expire as they
// would in a redis-server (miniredis counts time to live down only when
// told), until the returned stop is called.
func tick(m *miniredis.Miniredis) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// Pause stops a real redis-server for d (SIGSTOP, then SIGCONT), as a
// stalled host or a long fork does: connections stay open and nothing is
// answered. It fails the test on miniredis, which cannot be paused.
func (r *Redis) Pause(d time.Duration) {
	r.t.Helper()
	r.skipped()
	require.NotNil(r.t, r.cmd, "Pause needs a running redis-server")
	require.NoError(r.t, r.cmd.Process.Signal(syscall.SIGSTOP))
	time.Sleep(d)
	require.NoError(r.t, r.cmd.Process.Signal(syscall.SIGCONT))
}
