package scalingtest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a node's delivery goroutine outlives a test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
