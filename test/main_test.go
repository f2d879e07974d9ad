package e2e

import (
	"testing"

	"github.com/fizz-server/fizz/test/harness"
)

func TestMain(m *testing.M) { harness.VerifyTestMain(m) }
