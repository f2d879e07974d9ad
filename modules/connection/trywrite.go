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

// tryWriter writes b without waiting and reports how much the peer's
// socket buffer took. alone is set for a lone frame written by its sender
// (SendNow), which may skip what only the pool's writes need (see
// rawTryWrite).
type tryWriter func(b []byte, alone bool) (int, error)

// nonBlocking returns how to write to transport without waiting, or nil
// when it cannot (TLS, pipes): such sockets write on goroutines of their
// own rather than on the writer pool.
func nonBlocking(transport net.Conn) tryWriter {
	if t, ok := transport.(TryWriter); ok {
		return func(b []byte, _ bool) (int, error) { return t.TryWrite(b) }
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
