package connection

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a writer goroutine (or any
// other) running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
