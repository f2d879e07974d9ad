package dispatcher_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a socket writer, a provider or an fx app
// leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
