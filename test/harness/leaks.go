package harness

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// VerifyTestMain runs a test package's tests, fails it if goroutines leak,
// and removes the fizz binary built for it. Call it from TestMain.
func VerifyTestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's worker-pool cleaner notices a stopped server only after
		// its idle sleep (10 s), and its Date-header updater runs for the
		// life of the process. Neither belongs to Fizz.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.Cleanup(func(code int) {
			RemoveBinary()
			os.Exit(code)
		}),
	)
}
