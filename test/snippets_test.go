package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/jsclient"
)

// snippetMarker precedes each client snippet of the README that
// TestReadmeSnippets runs: <!-- snippet: module --> or <!-- snippet: html -->,
// then a fenced block.
var snippetMarker = regexp.MustCompile("(?s)<!-- snippet: (module|html) -->\\s*```[a-z]*\\n(.*?)```")

// readmeSnippets is how many snippets the README has: both broadcasters
// of Laravel Echo with a bundler and with script tags, and pusher-js.
const readmeSnippets = 5

// TestReadmeSnippets runs the README's client snippets as they are, with
// the real pusher-js and Laravel Echo (test/jsclient/snippet.mjs loads
// them as a bundler or a page would), against a node: each must receive
// an event triggered through the HTTP API. Only the port and the key are
// the test node's.
func TestReadmeSnippets(t *testing.T) {
	t.Parallel()
	node := jsclient.Require(t)
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	require.NoError(t, err)
	found := snippetMarker.FindAllSubmatch(readme, -1)
	require.Len(t, found, readmeSnippets, "the README's marked client snippets")

	args := []string{}
	if nodeMajor(t, node) < 22 {
		args = append(args, "--experimental-websocket") // Node 20 has WebSocket behind a flag
	}
	for i, m := range found {
		kind, code := string(m[1]), string(m[2])
		client := "pusher-js"
		for _, b := range []string{"reverb", "pusher"} {
			if strings.Contains(code, "broadcaster: '"+b+"'") {
				client = "echo " + b
			}
		}
		t.Run(strconv.Itoa(i+1)+" "+kind+" "+client, func(t *testing.T) {
			t.Parallel()
			n := harness.Start(t, nil)
			port := portOf(t, n.Addr)
			require.Contains(t, code, "wsPort: 8080", "the snippet connects to the README's port")
			require.Contains(t, code, "'app-key'", "the snippet uses the README's key")
			code = strings.ReplaceAll(code, "wsPort: 8080", "wsPort: "+port)
			code = strings.ReplaceAll(code, "'app-key'", "'"+harness.AppKey+"'")

			cmd := exec.Command(node, append(args, filepath.Join(jsclient.Dir(), "snippet.mjs"), kind, "30000")...)
			cmd.Dir = jsclient.Dir()
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			cmd.Stdin = strings.NewReader(code)
			var out harness.SyncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			require.NoError(t, cmd.Start())
			exited := make(chan struct{})
			go func() {
				_ = cmd.Wait() // how it ended shows in its output
				close(exited)
			}()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})

			// The snippet subscribes when it has connected: trigger until
			// it has logged the event.
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(out.String(), "shipped") {
				select {
				case <-exited:
					t.Fatalf("the snippet ended before it received the event:\n%s", out.String())
				default:
				}
				require.True(t, time.Now().Before(deadline), "no event within 20 s; output:\n%s", out.String())
				err := n.Pusher.Trigger("orders", "order.shipped", map[string]int{"id": 7})
				require.NoError(t, err)
				time.Sleep(200 * time.Millisecond)
			}
			require.Contains(t, out.String(), "7", "the event's data: %s", out.String())
		})
	}
}

// nodeMajor returns the major version of node.
func nodeMajor(t *testing.T, node string) int {
	t.Helper()
	v, err := exec.Command(node, "--version").Output()
	require.NoError(t, err)
	major, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(v)), "v"), ".")
	n, err := strconv.Atoi(major)
	require.NoError(t, err, "node --version said %q", v)
	return n
}
