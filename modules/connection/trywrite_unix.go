//go:build unix

package connection

import (
	"errors"
	"syscall"
)

// rawTryWrite makes one write(2) on the socket, which the runtime keeps
// non-blocking: a full socket buffer answers EAGAIN, reported as 0 bytes
// written, never waited for.
func rawTryWrite(rc syscall.RawConn) func([]byte) (int, error) {
	return func(b []byte) (int, error) {
		var n int
		var err error
		cerr := rc.Write(func(fd uintptr) bool {
			for {
				n, err = syscall.Write(int(fd), b)
				if !errors.Is(err, syscall.EINTR) {
					return true
				}
			}
		})
		switch {
		case cerr != nil:
			return 0, cerr // closed, or past a write deadline
		case errors.Is(err, syscall.EAGAIN):
			return 0, nil
		case err != nil:
			return 0, err
		}
		return n, nil
	}
}
