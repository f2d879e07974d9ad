package cluster_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// requireRefused requires that a new socket on n is refused with 4004.
func requireRefused(t testing.TB, n *node) {
	t.Helper()
	harness.RequireFatal(t, harness.Connect(t, n.wsURL, nil), pusher.CodeOverQuota)
}

// admitEventually dials n until a socket is admitted: a closed socket is
// uncounted a moment after its close frame is answered.
func admitEventually(t testing.TB, n *node) *pusherclient.Client {
	t.Helper()
	var c *pusherclient.Client
	eventually(t, wait, fmt.Sprintf("a socket is admitted on %s", n), func() (bool, string) {
		var err error
		c, err = pusherclient.Dial(n.wsURL)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// runQuota: max_connections 3 holds for all nodes together.
func runQuota(t *testing.T, nodes []*node) {
	a, b := nodes[0], nodes[1]
	a1, _, _ := harness.Dial(t, a), harness.Dial(t, a), harness.Dial(t, b)
	requireRefused(t, a)
	requireRefused(t, b)

	require.NoError(t, a1.Close())
	admitEventually(t, b)
	requireRefused(t, a)
	requireRefused(t, b)
	waitConnections(t, a, 3)
}

func withQuota(c *app.Config) { c.Apps[0].MaxConnections = 3 }

// TestMaxConnectionsAcrossNodes: the connection cap counts every node's sockets.
func TestMaxConnectionsAcrossNodes(t *testing.T) {
	t.Parallel()
	runQuota(t, startNodes(t, true, 2, withQuota))
}

// TestMaxConnectionsSingleNode is the same scenario on one node.
func TestMaxConnectionsSingleNode(t *testing.T) {
	t.Parallel()
	n := startSingle(t, "A", withQuota)
	runQuota(t, []*node{n, n})
}
