package connection

// Observer hears what sockets do, for metrics (stats implements it). Its
// methods are called on hot paths, the writer goroutine and broadcasters,
// so they must be cheap, must not block and must be safe for concurrent use.
type Observer interface {
	// MessagesSent reports one write to a socket: frames frames (data and
	// control) in bytes bytes, framing included.
	MessagesSent(frames, bytes int)
	// SlowConsumer reports a socket of appID closed with 4100 because its
	// queue was full.
	SlowConsumer(appID string)
}
