//go:build unix

package connection

import (
	"errors"
	"syscall"
)

// rawTryWrite makes one write(2) on the socket, which the runtime keeps
// non-blocking: a full socket buffer answers EAGAIN, reported as 0 bytes
// written, never waited for. The pool's writes go through RawConn.Write,
// which takes the descriptor's write lock and resets the poller. A lone
// frame written by its sender (alone) goes through Control, which only
// holds the descriptor open: the outbox lets one writer write at a time,
// and a write that never waits has no deadline to honour. (Control for
// the pool's writes too made them cheaper, but then fewer frames gathered
// between them: more writes in all; docs/decisions.md.)
func rawTryWrite(rc syscall.RawConn) tryWriter {
	return func(b []byte, alone bool) (int, error) {
		var n int
		var err error
		var cerr error
		if alone {
			cerr = rc.Control(func(fd uintptr) { n, err = writeFD(fd, b) })
		} else {
			cerr = rc.Write(func(fd uintptr) bool { n, err = writeFD(fd, b); return true })
		}
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

// writeFD makes one write(2), again when a signal interrupted it.
func writeFD(fd uintptr, b []byte) (int, error) {
	for {
		n, err := syscall.Write(int(fd), b)
		if !errors.Is(err, syscall.EINTR) {
			return n, err
		}
	}
}
