// Package cluster_test runs several Fizz nodes against one private Redis
// and checks, from the outside, that they behave as one server: fan-out,
// cluster-wide queries, terminate, exact presence, cache channels,
// connection quotas, Redis faults and node kills (docs/architecture.md, "Cluster protocol").
//
// Every test starts its own redis-server on a free loopback port (or
// miniredis when none is on PATH, a failure with CI=true) and its own
// nodes: in-process nodes through harness.Start, and fizz processes through
// harness.StartProcess where a test kills a node with SIGKILL.
package cluster_test

import (
	"testing"

	"github.com/fizz-server/fizz/test/harness"
)

func TestMain(m *testing.M) { harness.VerifyTestMain(m) }
