package connection

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Client frame opcodes (RFC 6455 section 5.2), without the FIN bit.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// Close codes the reader answers a broken peer with (RFC 6455 section 7.4.1).
const (
	CloseNormal        = 1000
	CloseProtocolError = 1002
	CloseNoStatus      = 1005 // never sent: a close frame without a code
	CloseInvalidData   = 1007
	CloseTooBig        = 1009
)

// readBufferSize is the buffer an idle socket holds: a client's usual
// frames (pings, subscriptions, small client events) fit whole; a larger
// frame is read into a pooled buffer that is let go once it is consumed.
const readBufferSize = 512

// maxHeaderSize is the longest frame header a client sends (with a 64-bit
// length and a mask key).
const maxHeaderSize = 14

// ErrMessageTooLarge is returned by Reader.Next for a message above the
// soft limit; the message was read and dropped, and the socket may go on.
var ErrMessageTooLarge = errors.New("connection: message too large")

// ProtocolError is a frame the reader cannot accept. The socket must be
// closed with Code.
type ProtocolError struct {
	Code   int
	Reason string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("websocket protocol error %d: %s", e.Code, e.Reason)
}

func protocolErrorf(code int, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

// Message is one whole message from the client: a data message put
// together from its fragments, or a control frame. Payload is unmasked and
// valid until the next call to Next or Buffer.
type Message struct {
	Op      byte
	Payload []byte
}

// Reader parses a client's WebSocket frames (RFC 6455 section 5). It does
// no I/O: the caller reads into Buffer, reports the count with Advance and
// takes messages with Next until it reports that more bytes are needed.
// Waiting for the network thus happens in the caller's own frame, so an
// idle socket's goroutine stack is shallow. An idle Reader holds a 512-byte
// buffer; a frame that does not fit is read into a pooled buffer. A Reader
// is used by one goroutine.
type Reader struct {
	soft  int // a longer message is dropped: ErrMessageTooLarge
	hard  int // a longer message closes the socket: 1009
	small []byte
	buf   []byte // small, or a pooled buffer while a large frame is read
	large *[]byte
	start int // buf[start:end] is read and not yet parsed
	end   int
	want  int // bytes from start the frame being read needs in buf

	// The data message being put together from fragments.
	op      byte    // OpContinuation: none
	size    int     // its length so far
	dropped bool    // it is above the soft limit and is being dropped
	msg     *[]byte // pooled; its fragments so far
	skip    int     // payload bytes of the current frame still to drop
	skipFin bool    // the frame being dropped ends the message
}

// NewReader returns a Reader. A data message above soft bytes is dropped
// with ErrMessageTooLarge; one above hard bytes is a ProtocolError with
// code 1009.
func NewReader(soft, hard int) *Reader {
	small := make([]byte, readBufferSize)
	return &Reader{soft: soft, hard: max(hard, soft), small: small, buf: small}
}

// Buffer returns where to read the next bytes into; it is never empty.
// Messages returned by Next before are no longer valid.
func (r *Reader) Buffer() []byte {
	if r.op == OpContinuation {
		r.releaseMessage()
	}
	if r.start == r.end {
		r.start, r.end = 0, 0
		if r.want <= len(r.small) {
			r.releaseLarge()
		}
	}
	if need := max(r.want, maxHeaderSize); len(r.buf)-r.start < need {
		r.makeRoom(need)
	}
	return r.buf[r.end:]
}

// makeRoom moves the unparsed bytes to the front of a buffer that holds
// need bytes: the small one when it fits, a pooled one otherwise.
func (r *Reader) makeRoom(need int) {
	dst := r.small
	if need > len(r.small) {
		if r.large == nil {
			r.large = getBuffer()
		}
		if cap(*r.large) < need {
			*r.large = make([]byte, 0, need)
		}
		dst = (*r.large)[:cap(*r.large)]
	}
	// dst and r.buf may be the same array: copy handles the overlap.
	r.end = copy(dst, r.buf[r.start:r.end])
	r.start = 0
	r.buf = dst
	if need <= len(r.small) {
		r.releaseLarge()
	}
}

// releaseLarge goes back to the small buffer, giving the pooled one back.
// Caller has nothing unparsed in it.
func (r *Reader) releaseLarge() {
	r.buf = r.small
	if r.large != nil {
		putBuffer(r.large)
		r.large = nil
	}
}

// Advance records that n bytes were read into the slice Buffer returned.
func (r *Reader) Advance(n int) { r.end += n }

// Next returns the next whole message in the bytes read so far: a text or
// binary message, a ping, a pong or a close. It returns ok false when it
// needs more bytes. Errors are a *ProtocolError (the socket must close)
// or ErrMessageTooLarge with the dropped message's opcode.
func (r *Reader) Next() (m Message, ok bool, err error) {
	for {
		if r.skip > 0 {
			n := min(r.skip, r.end-r.start)
			r.start += n
			if r.skip -= n; r.skip > 0 {
				return Message{}, false, nil
			}
			if r.skipFin {
				op := r.endMessage()
				return Message{Op: op}, true, ErrMessageTooLarge
			}
		}
		h, n, err := r.parseHeader()
		if err != nil || n == 0 {
			return Message{}, false, err
		}
		if h.op >= OpClose {
			// A control frame may come between fragments (section 5.4).
			if r.end-r.start < n+h.length {
				r.want = n + h.length
				return Message{}, false, nil
			}
			payload := r.take(n, h)
			if h.op == OpClose {
				if err := checkClose(payload); err != nil {
					return Message{}, false, err
				}
			}
			return Message{Op: h.op, Payload: payload}, true, nil
		}
		switch {
		case h.op == OpContinuation && r.op == OpContinuation:
			return Message{}, false, protocolErrorf(CloseProtocolError, "continuation frame without a message")
		case h.op != OpContinuation && r.op != OpContinuation:
			return Message{}, false, protocolErrorf(CloseProtocolError, "new message before the last one ended")
		case h.length > r.hard-r.size:
			return Message{}, false, protocolErrorf(CloseTooBig, "message larger than %d bytes", r.hard)
		}
		if r.dropped || r.size+h.length > r.soft {
			// Dropped bytes are counted, never kept.
			r.begin(h.op)
			r.start += n
			r.size += h.length
			r.dropped = true
			r.skip, r.skipFin, r.want = h.length, h.fin, 0
			r.releaseMessage()
			if r.skip == 0 && h.fin {
				return Message{Op: r.endMessage()}, true, ErrMessageTooLarge
			}
			continue
		}
		if r.end-r.start < n+h.length {
			r.want = n + h.length
			return Message{}, false, nil
		}
		r.begin(h.op)
		payload := r.take(n, h)
		r.size += h.length
		if h.fin && r.msg == nil {
			return Message{Op: r.endMessage(), Payload: payload}, true, nil
		}
		if r.msg == nil {
			r.msg = getBuffer()
		}
		*r.msg = append(*r.msg, payload...)
		if h.fin {
			whole := *r.msg
			return Message{Op: r.endMessage(), Payload: whole}, true, nil
		}
	}
}

// begin starts a data message when op is not a continuation.
func (r *Reader) begin(op byte) {
	if op == OpContinuation {
		return
	}
	r.op = op
	if r.msg != nil {
		*r.msg = (*r.msg)[:0]
	}
}

// take consumes a whole frame (header of n bytes and payload) and returns
// its unmasked payload.
func (r *Reader) take(n int, h header) []byte {
	payload := r.buf[r.start+n : r.start+n+h.length]
	unmask(payload, h.mask)
	r.start += n + h.length
	r.want = 0
	return payload
}

// endMessage ends the data message being read and returns its opcode. A
// fragments buffer is kept for the caller until the next call to Buffer.
func (r *Reader) endMessage() byte {
	op := r.op
	r.op, r.size, r.dropped, r.skip, r.want = OpContinuation, 0, false, 0, 0
	return op
}

// releaseMessage lets the fragments buffer go.
func (r *Reader) releaseMessage() {
	if r.msg != nil {
		putBuffer(r.msg)
		r.msg = nil
	}
}

// header is one frame's header.
type header struct {
	fin    bool
	op     byte
	length int
	mask   [4]byte
}

// parseHeader parses the frame header at r.start; n is its length, 0 when
// more bytes are needed. It consumes nothing.
func (r *Reader) parseHeader() (h header, n int, err error) {
	b := r.buf[r.start:r.end]
	if len(b) < 2 {
		r.want = 2
		return h, 0, nil
	}
	h.fin, h.op = b[0]&0x80 != 0, b[0]&0x0F
	switch {
	case b[0]&0x70 != 0:
		return h, 0, protocolErrorf(CloseProtocolError, "reserved bits set without an extension")
	case h.op > OpBinary && h.op < OpClose, h.op > OpPong:
		return h, 0, protocolErrorf(CloseProtocolError, "unknown opcode %d", h.op)
	case b[1]&0x80 == 0:
		return h, 0, protocolErrorf(CloseProtocolError, "client frame is not masked")
	}
	n = 2
	switch l := b[1] & 0x7F; l {
	case 126:
		n += 2
	case 127:
		n += 8
	default:
		h.length = int(l)
	}
	if len(b) < n+4 {
		r.want = n + 4
		return h, 0, nil
	}
	switch n {
	case 4:
		h.length = int(binary.BigEndian.Uint16(b[2:]))
	case 10:
		l := binary.BigEndian.Uint64(b[2:])
		if l > 1<<40 {
			return h, 0, protocolErrorf(CloseTooBig, "frame of %d bytes", l)
		}
		h.length = int(l)
	}
	copy(h.mask[:], b[n:])
	if h.op >= OpClose && (!h.fin || h.length > 125) {
		return h, 0, protocolErrorf(CloseProtocolError, "control frames must be whole and at most 125 bytes")
	}
	return h, n + 4, nil
}

// checkClose checks a close frame's code and reason.
func checkClose(payload []byte) error {
	switch {
	case len(payload) == 1:
		return protocolErrorf(CloseProtocolError, "close frame with a one-byte payload")
	case len(payload) >= 2 && !validCloseCode(CloseCode(payload)):
		return protocolErrorf(CloseProtocolError, "invalid close code %d", CloseCode(payload))
	case len(payload) > 2 && !utf8.Valid(payload[2:]):
		return protocolErrorf(CloseInvalidData, "close reason is not UTF-8")
	}
	return nil
}

// CloseCode returns the code of a close frame's payload, CloseNoStatus
// when it has none.
func CloseCode(payload []byte) int {
	if len(payload) < 2 {
		return CloseNoStatus
	}
	return int(binary.BigEndian.Uint16(payload))
}

// validCloseCode reports whether a peer may send code (RFC 6455 section
// 7.4 and the IANA registry).
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	default:
		return code >= 3000 && code <= 4999
	}
}

// Release gives back the pooled buffers; the Reader is not used afterwards.
func (r *Reader) Release() {
	r.releaseMessage()
	r.releaseLarge()
	r.start, r.end = 0, 0
}

// unmask XORs a payload with its frame's mask key.
func unmask(b []byte, key [4]byte) {
	for i := range b {
		b[i] ^= key[i&3]
	}
}
