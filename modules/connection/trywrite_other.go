//go:build !unix

package connection

import "syscall"

// rawTryWrite is unavailable here: sockets write on goroutines of their own.
func rawTryWrite(syscall.RawConn) func([]byte) (int, error) { return nil }
