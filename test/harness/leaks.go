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
		// go-redis probes an address that refused a dial once a second
		// until it answers or its pool is closed: after a Redis server was
		// killed for good (a cluster shard's failover), the probe of a
		// closed client ends at its next second. Not Fizz's.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).tryDial"),
		goleak.Cleanup(func(code int) {
			RemoveBinary()
			os.Exit(code)
		}),
	)
}
