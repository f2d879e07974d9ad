//go:build unix

package pusherclient

import "syscall"

// setReceiveBuffer sets SO_RCVBUF on a socket before it connects, so that
// the TCP window it advertises stays small.
func setReceiveBuffer(c syscall.RawConn, size int) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
	})
	if err != nil {
		return err
	}
	return serr
}
