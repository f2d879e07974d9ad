package stats

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves the metrics listener (or
// any other goroutine) running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
