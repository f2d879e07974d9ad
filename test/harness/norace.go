//go:build !race

package harness

// Race reports whether the race detector is on: load tests scale down
// under it, as it slows every memory access several times.
const Race = false
