package connection

// WebSocket opcodes with the FIN bit set: every frame Fizz sends is whole.
const (
	opText  = 0x81
	opClose = 0x88
	opPing  = 0x89
	opPong  = 0x8A
)

// TextFrame returns payload framed as one unmasked WebSocket text frame, the
// form a server sends. A broadcast frames an event once and hands the same
// bytes to every subscriber.
func TextFrame(payload []byte) []byte {
	return appendFrame(make([]byte, 0, len(payload)+10), opText, payload)
}

func appendFrame(b []byte, op byte, payload []byte) []byte {
	n := len(payload)
	switch {
	case n < 126:
		b = append(b, op, byte(n))
	case n <= 0xFFFF:
		b = append(b, op, 126, byte(n>>8), byte(n))
	default:
		u := uint64(n)
		b = append(b, op, 127, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
			byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
	return append(b, payload...)
}

// closeFrame returns a close frame carrying code and reason; the reason is
// cut to fit the 125-byte control frame limit.
func closeFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	payload := make([]byte, 0, 2+len(reason))
	payload = append(payload, byte(code>>8), byte(code))
	payload = append(payload, reason...)
	return appendFrame(nil, opClose, payload)
}

func controlFrame(op byte, payload []byte) []byte {
	if len(payload) > 125 {
		payload = payload[:125]
	}
	return appendFrame(nil, op, payload)
}
