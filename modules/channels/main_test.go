package channels

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a socket's writer goroutine outlives a test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
