package stats

// Config is the Prometheus listener.
type Config struct {
	// Host and Port are the /metrics listen address.
	Host string
	// Port 0 turns the listener off; the counters still count.
	Port int
	// PortSetting names where Port came from (see server.Config); empty
	// for the default, which gives way: when the default port is busy
	// (another node on this host), a free port is used instead, with a
	// warning.
	PortSetting string
}
