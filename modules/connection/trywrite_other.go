//go:build !unix

package connection

import "syscall"

// rawTryWrite is unavailable here: sockets write on goroutines of their own.
func rawTryWrite(syscall.RawConn) tryWriter { return nil }
