package connection

import (
	"net"
	"syscall"
)

// TryWriter is a transport that can write without waiting: it takes what
// the peer's socket buffer holds room for now and reports how much.
type TryWriter interface {
	TryWrite(b []byte) (int, error)
}

// nonBlocking returns how to write to transport without waiting, or nil
// when it cannot (TLS, pipes): such sockets write on goroutines of their
// own rather than on the writer pool.
func nonBlocking(transport net.Conn) func([]byte) (int, error) {
	if t, ok := transport.(TryWriter); ok {
		return t.TryWrite
	}
	sc, ok := transport.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rawTryWrite(rc)
}
