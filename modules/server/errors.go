package server

import (
	"errors"
	"fmt"
	"syscall"
)

// ListenError is a listener that could not bind its address. Setting
// names the setting the address came from; main answers a busy port with
// exit status 2 and this error's one line.
type ListenError struct {
	Setting string // "FIZZ_SERVER_PORT", "--port", ...; the default's name when unset
	Addr    string
	Err     error
}

func (e *ListenError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return fmt.Sprintf("%s: %s is in use (another Fizz, or another program, listens there)", e.Setting, e.Addr)
	}
	return fmt.Sprintf("%s: listen on %s: %v", e.Setting, e.Addr, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// InUse reports whether the address was busy.
func (e *ListenError) InUse() bool { return errors.Is(e.Err, syscall.EADDRINUSE) }
