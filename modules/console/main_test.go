package console

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a feed or sampler goroutine outlives a
// test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
