package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// runFizz runs the fizz binary with env (and a clean environment
// otherwise) until it exits, at most within, and returns its exit status
// and output.
func runFizz(t *testing.T, env map[string]string, within time.Duration) (int, string) {
	t.Helper()
	cmd := exec.Command(harness.Binary(t))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the status is read from ProcessState
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(within):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("fizz did not exit within %s; output:\n%s", within, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// TestTwoNodesOnOneHost runs the README's cluster setup: two nodes on one
// machine and one Redis that differ only by their port. Both serve, as
// one cluster (the second's metrics listener gives way), and a port set
// explicitly and busy stops a node with exit 2 and a line naming the
// setting.
func TestTwoNodesOnOneHost(t *testing.T) {
	t.Parallel()
	// The default metrics port may be taken by another test's node: that
	// is the case this test is about.
	r := harness.StartRedis(t)
	readme := map[string]string{"FIZZ_METRICS_PORT": "", "FIZZ_SCALING_ENABLED": "true", "REDIS_URL": r.URL,
		"FIZZ_SCALING_CHANNEL": "readme"}
	a := harness.StartProcess(t, readme)
	b := harness.StartProcess(t, readme)
	var clients []*pusherclient.Client
	for _, n := range []*harness.Process{a, b} {
		c, err := pusherclient.Dial(n.WSURL())
		require.NoError(t, err, "a node serves; output:\n%s", n.Output())
		t.Cleanup(func() { _ = c.Close() })
		_, err = c.Subscribe("orders", "", "")
		require.NoError(t, err)
		clients = append(clients, c)
	}
	require.NoError(t, a.Pusher.Trigger("orders", "order.shipped", map[string]int{"id": 7}))
	for i, c := range clients {
		_, err := c.Expect("order.shipped", "orders", 5*time.Second)
		require.NoError(t, err, "the event triggered on the first node reaches node %d", i+1)
	}
	gaveWay := "the default metrics port is in use"
	assert.Eventually(t, func() bool { return strings.Contains(a.Output(), gaveWay) || strings.Contains(b.Output(), gaveWay) },
		wait, 10*time.Millisecond, "one node's metrics listener gave way to the other's")

	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{name: "server port", env: map[string]string{"FIZZ_SERVER_PORT": portOf(t, a.Addr)},
			want: "fizz: FIZZ_SERVER_PORT: 127.0.0.1:" + portOf(t, a.Addr) + " is in use"},
		{name: "metrics port", env: map[string]string{"FIZZ_SERVER_PORT": "0", "FIZZ_METRICS_PORT": portOf(t, b.Addr)},
			want: "fizz: FIZZ_METRICS_PORT: 127.0.0.1:" + portOf(t, b.Addr) + " is in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"FIZZ_SERVER_HOST": "127.0.0.1", "FIZZ_METRICS_HOST": "127.0.0.1"}
			for k, v := range tt.env {
				env[k] = v
			}
			status, out := runFizz(t, env, 15*time.Second)
			assert.Equal(t, 2, status, "output:\n%s", out)
			assert.Contains(t, out, tt.want)
		})
	}
}

// portOf returns the port of a host:port address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	require.Positive(t, i, addr)
	return addr[i+1:]
}

// TestRestartOnTheSamePort: a new process takes the port while the old one
// drains (it stops accepting when the drain starts), so a restart on one
// host has no gap longer than the old one's grace period; the old one's
// sockets are served until the grace period ends.
func TestRestartOnTheSamePort(t *testing.T) {
	t.Parallel()
	const grace = 2 * time.Second
	old := harness.StartProcess(t, map[string]string{"FIZZ_SHUTDOWN_GRACE": grace.String()})
	held, err := pusherclient.Dial(old.WSURL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = held.Close() })

	stopped := time.Now()
	exited := make(chan int, 1)
	go func() { exited <- old.Terminate(20 * time.Second) }()
	require.Eventually(t, func() bool { return portFree(old.Addr) }, grace, 20*time.Millisecond, "the port is free within the grace period")
	next := harness.StartProcess(t, map[string]string{"FIZZ_SERVER_PORT": portOf(t, old.Addr)})
	took := time.Since(stopped)
	assert.Less(t, took, grace, "the new process serves before the old one's grace period is over")
	c, err := pusherclient.Dial(next.WSURL())
	require.NoError(t, err, "the new process serves")
	require.NoError(t, c.Close())
	harness.RequireOpen(t, held) // the old socket is still served meanwhile
	code, _, err := held.WaitClosed(10 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 4200, code, "the old one closes its sockets after the grace period")
	assert.Equal(t, 0, <-exited)
}

// portFree reports whether addr can be bound now.
func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = ln.Close() // only a probe
	return true
}

// TestRefusalsAreLogged: each refusal of a socket is logged once with its
// reason and the value that caused it (and not again for a while); a full
// URL in allowed_origins stands for its host.
func TestRefusalsAreLogged(t *testing.T) {
	t.Parallel()
	p := harness.StartProcess(t, map[string]string{
		"FIZZ_APP_ALLOWED_ORIGINS": "http://app.example.com:3000",
		"FIZZ_APP_MAX_CONNECTIONS": "1",
	})
	dialWS := func(url, origin string) *pusherclient.Client {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		c, err := pusherclient.Connect(url, pusherclient.Options{Header: h})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	base := "ws://" + p.Addr + "/app/"
	first := dialWS(base+harness.AppKey+"?protocol=7", "http://app.example.com:3000")
	_, err := first.Expect("pusher:connection_established", "", 5*time.Second)
	require.NoError(t, err, "a full URL in allowed_origins stands for its host")
	for range 2 {
		dialWS(base+"no-such-key?protocol=7", "")
		dialWS(base+harness.AppKey+"?protocol=3", "")
		dialWS(base+harness.AppKey+"?protocol=7", "http://evil.example.com")
		dialWS(base+harness.AppKey+"?protocol=7", "http://app.example.com:3000") // over quota
	}
	wants := [][2]string{
		{"socket refused: unknown app key (4001)", "value=no-such-key"},
		{"socket refused: unsupported protocol version (4007)", "value=3"},
		{"socket refused: origin not in allowed_origins (4009)", "value=http://evil.example.com"},
		{"socket refused: Application is over connection quota (4004)", "value=" + harness.AppID},
	}
	lines := func(w [2]string) int {
		n := 0
		for _, line := range strings.Split(p.Output(), "\n") {
			if strings.Contains(line, w[0]) && strings.Contains(line, w[1]) {
				n++
			}
		}
		return n
	}
	require.Eventually(t, func() bool {
		for _, w := range wants {
			if lines(w) == 0 {
				return false
			}
		}
		return true
	}, wait, 10*time.Millisecond, "output:\n%s", p.Output())
	for _, w := range wants {
		assert.Equal(t, 1, lines(w), "logged once: %s", w[0])
	}
}

// TestDebugIsFizzs: with FIZZ_DEBUG, the log holds Fizz's own lines, not
// fx's start-up events; without any app variable set, the default
// credentials are warned about, and set explicitly, even to the defaults,
// they are not.
func TestDebugIsFizzs(t *testing.T) {
	t.Parallel()
	debug := harness.StartProcess(t, map[string]string{"FIZZ_DEBUG": "true"})
	c, err := pusherclient.Dial(debug.WSURL())
	require.NoError(t, err)
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool { return strings.Contains(debug.Output(), "frame out") }, wait, 10*time.Millisecond,
		"Fizz's frames are in the debug log")
	assert.NotContains(t, debug.Output(), "component=fx", "fx's events stay out of the debug log")

	// The output reaches the test through a pipe: "listening" comes after
	// the warning, so once it is there the warning would be too.
	listening := func(p *harness.Process) string {
		require.Eventually(t, func() bool { return strings.Contains(p.Output(), "msg=listening") }, wait, 10*time.Millisecond)
		return p.Output()
	}
	explicit := harness.StartProcess(t, map[string]string{"FIZZ_APP_ID": "app-id", "FIZZ_APP_KEY": "app-key", "FIZZ_APP_SECRET": "app-secret"})
	assert.NotContains(t, listening(explicit), "DEFAULT CREDENTIALS", "set explicitly: the operator's choice")
	defaults := harness.StartProcess(t, map[string]string{"FIZZ_APP_ID": "", "FIZZ_APP_KEY": "", "FIZZ_APP_SECRET": ""})
	assert.Contains(t, listening(defaults), "DEFAULT CREDENTIALS")
}

// TestLibraryLogsAreStructured: with Redis down, go-redis's own complaints
// (a failed dial) come through Fizz's JSON log like every other line.
func TestLibraryLogsAreStructured(t *testing.T) {
	t.Parallel()
	down := "redis://127.0.0.1:" + strconv.Itoa(harness.FreePort(t)) + "/0"
	p := harness.StartProcess(t, map[string]string{"FIZZ_SCALING_ENABLED": "true", "REDIS_URL": down,
		"FIZZ_LOG_FORMAT": "json", "FIZZ_LOG_LEVEL": "debug"})
	require.Eventually(t, func() bool { return strings.Contains(p.Output(), `"msg":"redis client"`) }, 10*time.Second,
		20*time.Millisecond, "go-redis's dial failure in the log; output:\n%s", p.Output())
	for _, line := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
		var entry map[string]any
		assert.NoError(t, json.Unmarshal([]byte(line), &entry), "a line that is not JSON: %q", line)
	}
}
