package membership_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when the counter, the shared state's upkeep
// or an fx app leaves a goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
