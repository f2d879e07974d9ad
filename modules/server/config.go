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
	// HeaderTimeout bounds a request's line and headers, from the
	// connection's first byte (or its accept); a body has as long again
	// plus a second for every BodyRate bytes it announces. 0: the default.
	HeaderTimeout time.Duration
	// MaxHandshakes caps the connections served over HTTP at once: API
	// requests and WebSockets still in their handshake. 0: no cap.
	MaxHandshakes int
	// MaxSockets, SlowConsumerGrace and MaxQueuedBytes are the sockets'
	// limits (connection.Config), set with the listener's.
	MaxSockets        int
	SlowConsumerGrace time.Duration
	MaxQueuedBytes    int
	// PortSetting names where Port came from ("FIZZ_SERVER_PORT",
	// "--port", "fizz.yaml:3: server.port"), for the error of a busy
	// port; empty for the default.
	PortSetting string
}

// Defaults of Config.
const (
	DefaultHeaderTimeout = 10 * time.Second
	// BodyRate is the slowest body a request may send, in bytes a second.
	BodyRate = 8 << 10
)

// bodyTimeout is how long a request with a body of size bytes (-1:
// chunked, counted as max) may take after its headers.
func (c Config) bodyTimeout(size int) time.Duration {
	if size < 0 || size > c.MaxRequestSize {
		size = c.MaxRequestSize
	}
	return c.HeaderTimeout + time.Duration(size)*time.Second/BodyRate
}
