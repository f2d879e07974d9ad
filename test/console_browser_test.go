package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/jsclient"
)

// browserLifetime bounds the browser driver's process.
const browserLifetime = 90 * time.Second

// requireBrowser returns node and chromium, skipping t (failing it with
// CI=true) when node, playwright-core or chromium is missing.
func requireBrowser(t *testing.T) (node, chromium string) {
	t.Helper()
	node = jsclient.RequireModules(t, "playwright-core")
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		jsclient.Unavailable(t, "chromium is not on PATH")
	}
	return node, chromium
}

// lockedBuffer is a bytes.Buffer written by one goroutine and read by
// another.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// browser is test/jsclient/console.mjs: the console page in chromium.
type browser struct {
	t     *testing.T
	stdin *json.Encoder
	lines chan map[string]any
	next  int
	mu    sync.Mutex
}

// openConsole starts chromium on url and waits until the page's feed is
// live.
func openConsole(t *testing.T, url string) *browser {
	t.Helper()
	node, chromium := requireBrowser(t)
	cmd := exec.Command(node, filepath.Join(jsclient.Dir(), "console.mjs"), url, chromium, t.TempDir(),
		strconv.FormatInt(browserLifetime.Milliseconds(), 10))
	cmd.Dir = jsclient.Dir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	b := &browser{t: t, stdin: json.NewEncoder(stdin), lines: make(chan map[string]any, 64)}
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(b.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				t.Logf("console.mjs: %s", sc.Text())
				continue
			}
			if e, ok := m["pageerror"]; ok {
				t.Errorf("the page threw: %v", e)
				continue
			}
			b.lines <- m
		}
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() {
			for range b.lines { // drain, so the reader ends
			}
			<-read
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("console.mjs stderr:\n%s", stderr.String())
		}
	})
	b.expect(0, "ready", 30*time.Second)
	return b
}

// expect waits for the line of command id that has key.
func (b *browser) expect(id int, key string, within time.Duration) map[string]any {
	b.t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case m, ok := <-b.lines:
			if !ok {
				b.t.Fatalf("console.mjs ended while waiting for %q of command %d", key, id)
			}
			if int(m["id"].(float64)) != id {
				continue
			}
			if m["ok"] == false || m["fatal"] != nil {
				b.t.Fatalf("console.mjs: command %d failed: %v", id, m)
			}
			if _, has := m[key]; has {
				return m
			}
		case <-timer.C:
			b.t.Fatalf("console.mjs: no %q for command %d within %s", key, id, within)
		}
	}
}

// send sends cmd and returns its id.
func (b *browser) send(cmd map[string]any) int {
	b.t.Helper()
	b.mu.Lock()
	b.next++
	id := b.next
	b.mu.Unlock()
	cmd["id"] = id
	require.NoError(b.t, b.stdin.Encode(cmd))
	return id
}

// do runs cmd and waits (generously) for its answer.
func (b *browser) do(cmd map[string]any) map[string]any {
	b.t.Helper()
	return b.expect(b.send(cmd), "ok", 30*time.Second)
}

// TestConsoleBrowser: the console page, in a real headless chromium,
// shows a socket opened by a test client and an API event within a second
// of its trigger, and its event creator refuses a bad channel name with
// the API's message and sends a good event. A screenshot is written to the
// test's temporary directory.
func TestConsoleBrowser(t *testing.T) {
	n := consoleNode(t)
	b := openConsole(t, n.MetricsURL+"/console?app="+harness.AppID)

	c := harness.Dial(t, n)
	harness.Subscribe(t, c, "orders")
	b.do(map[string]any{"op": "wait", "selector": "#log", "text": c.SocketID, "timeout": 10000})
	b.do(map[string]any{"op": "wait", "selector": "#connections", "text": "1", "timeout": 10000})
	b.do(map[string]any{"op": "wait", "selector": "#channels", "text": "orders", "timeout": 10000})

	// The page waits first; then the event is triggered through the API.
	id := b.send(map[string]any{"op": "wait", "selector": "#log", "text": "order.shipped", "timeout": 10000})
	b.expect(id, "started", 10*time.Second)
	start := time.Now()
	require.NoError(t, n.Pusher.Trigger("orders", "order.shipped", map[string]any{"id": 7}))
	b.expect(id, "ok", 15*time.Second)
	took := time.Since(start)
	t.Logf("the API event showed on the page %s after its trigger began", took)
	assert.LessOrEqual(t, took, time.Second, "the API event shows on the page within a second")
	harness.Expect(t, c, "order.shipped", "orders")

	// The event creator: the API's validation, the API's path.
	b.do(map[string]any{"op": "fill", "selector": "#ev-channel", "value": "bad channel!"})
	b.do(map[string]any{"op": "click", "selector": "#creator button[type=submit]"})
	b.do(map[string]any{"op": "wait", "selector": "#creator-result", "text": "invalid channel name", "timeout": 10000})
	b.do(map[string]any{"op": "fill", "selector": "#ev-channel", "value": "orders"})
	b.do(map[string]any{"op": "fill", "selector": "#ev-name", "value": "from-console"})
	b.do(map[string]any{"op": "click", "selector": "#creator button[type=submit]"})
	b.do(map[string]any{"op": "wait", "selector": "#creator-result", "text": "sent", "timeout": 10000})
	harness.Expect(t, c, "from-console", "orders")
	b.do(map[string]any{"op": "wait", "selector": "#log", "text": "from-console", "timeout": 10000})

	shot := filepath.Join(t.TempDir(), "console.png")
	b.do(map[string]any{"op": "screenshot", "path": shot})
	info, err := os.Stat(shot)
	require.NoError(t, err)
	assert.Positive(t, info.Size())
	t.Logf("screenshot: %s (%d bytes)", shot, info.Size())
}
