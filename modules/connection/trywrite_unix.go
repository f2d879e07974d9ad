//go:build unix

package connection

import (
	"errors"
	"syscall"
)

// rawTryWrite makes one write(2) on the socket, which the runtime keeps
// non-blocking: a full socket buffer answers EAGAIN, reported as 0 bytes
// written, never waited for. It goes through Control, not Write: Control
// only holds the descriptor open, where Write also takes the write lock
// and resets the poller's state, which is wasted on a write that never
// waits (the outbox already lets one writer at a time write; a deadline
// has nothing to cut short).
func rawTryWrite(rc syscall.RawConn) func([]byte) (int, error) {
	return func(b []byte) (int, error) {
		var n int
		var err error
		cerr := rc.Control(func(fd uintptr) {
			for {
				n, err = syscall.Write(int(fd), b)
				if !errors.Is(err, syscall.EINTR) {
					return
				}
			}
		})
		switch {
		case cerr != nil:
			return 0, cerr // closed
		case errors.Is(err, syscall.EAGAIN):
			return 0, nil
		case err != nil:
			return 0, err
		}
		return n, nil
	}
}
