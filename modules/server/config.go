package server

import "time"

// Config is the listener part of Fizz's configuration.
type Config struct {
	// Host and Port are the listen address; port 0 picks a free port.
	Host string
	Port int
	// Path is a prefix before every route ("/ws" gives /ws/app/{key}).
	Path string
	// MaxRequestSize is the largest HTTP API body in bytes.
	MaxRequestSize int
	// TLSCert and TLSKey are PEM files; both set serves TLS.
	TLSCert string
	TLSKey  string
	// ShutdownGrace is the time between turning unready and closing sockets.
	ShutdownGrace time.Duration
	// PortSetting names where Port came from ("FIZZ_SERVER_PORT",
	// "--port", "fizz.yaml:3: server.port"), for the error of a busy
	// port; empty for the default.
	PortSetting string
}
