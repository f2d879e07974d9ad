package e2e

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/fizz-server/fizz/test/harness"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool cleaner notices a stopped server only after
		// its idle sleep (10 s), and its Date-header updater runs for the
		// life of the process. Neither belongs to Fizz.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.Cleanup(func(code int) {
			harness.RemoveBinary()
			os.Exit(code)
		}),
	)
}
