package pusher

import "fmt"

// Codes carried by pusher:error frames and by WebSocket close frames.
// pusher-js reads the close code to decide whether to reconnect: 4000-4099
// never, 4100-4199 after a back-off, 4200-4299 at once.
const (
	CodeAppNotFound        = 4001 // fatal: no app has this key
	CodeAppDisabled        = 4003 // fatal: the app is switched off
	CodeOverQuota          = 4004 // fatal: the app's connection cap is reached
	CodeProtocol           = 4007 // fatal: unsupported protocol version
	CodeUnauthorized       = 4009 // fatal for a forbidden origin, otherwise a plain error
	CodeOverCapacity       = 4100 // fatal: the client does not read fast enough
	CodeGeneric            = 4200 // invalid message, or fatal as "server restarting"
	CodePongTimeout        = 4201 // fatal: no answer to the server's ping
	CodeClientEventBlocked = 4301 // client event rejected (rate or rules)
)

// Error is a protocol failure with the code and message a client receives in
// a pusher:error frame. Fatal errors also close the socket with Code.
type Error struct {
	Code    int
	Message string
	Fatal   bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("pusher error %d: %s", e.Code, e.Message)
}

// Errorf returns a non-fatal protocol error.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Fatalf returns a protocol error after which the socket is closed.
func Fatalf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Fatal: true}
}
