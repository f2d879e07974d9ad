//go:build !unix

package pusherclient

import (
	"errors"
	"syscall"
)

func setReceiveBuffer(syscall.RawConn, int) error {
	return errors.New("pusherclient: Options.ReceiveBuffer needs a unix system")
}
