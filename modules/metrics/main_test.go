package metrics

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a provider's goroutine outlives a test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
