package stats

// Config is the Prometheus listener.
type Config struct {
	// Host and Port are the /metrics listen address.
	Host string
	// Port 0 turns the listener off; the counters still count.
	Port int
}
