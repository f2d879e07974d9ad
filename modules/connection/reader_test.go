package connection

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clientFrame encodes a frame as a client sends it: masked, with the
// shortest length form.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	return rawFrame(b0, true, payload)
}

// rawFrame encodes a frame with header byte b0 as given, masked or not.
func rawFrame(b0 byte, masked bool, payload []byte) []byte {
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, maskBit|byte(n))
	case n <= 0xFFFF:
		b = append(b, maskBit|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, maskBit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !masked {
		return append(b, payload...)
	}
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i&3])
	}
	return b
}

func text(s string) []byte { return clientFrame(true, OpText, []byte(s)) }

func closePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// got is one message as the tests compare it.
type got struct {
	op       byte
	payload  string
	tooLarge bool
}

// feed hands stream to r chunk bytes at a time, collecting every message
// until the stream ends or a protocol error.
func feed(r *Reader, stream []byte, chunk int) ([]got, error) {
	var out []got
	for len(stream) > 0 {
		n := copy(r.Buffer(), stream[:min(chunk, len(stream))])
		r.Advance(n)
		stream = stream[n:]
		for {
			m, ok, err := r.Next()
			if err != nil && !errors.Is(err, ErrMessageTooLarge) {
				return out, err
			}
			if !ok {
				break
			}
			out = append(out, got{op: m.Op, payload: string(m.Payload), tooLarge: err != nil})
		}
	}
	return out, nil
}

func join(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestReader(t *testing.T) {
	const soft, hard = 1000, 4000
	big := strings.Repeat("b", 900)
	tests := []struct {
		name string
		give []byte
		want []got
	}{
		{name: "one small text frame", give: text(`{"event":"pusher:ping","data":{}}`),
			want: []got{{op: OpText, payload: `{"event":"pusher:ping","data":{}}`}}},
		{name: "empty text frame", give: text(""), want: []got{{op: OpText}}},
		{name: "frames back to back", give: join(text("a"), text("bb"), text("ccc")),
			want: []got{{op: OpText, payload: "a"}, {op: OpText, payload: "bb"}, {op: OpText, payload: "ccc"}}},
		{name: "larger than the small buffer", give: join(text(big), text("after")),
			want: []got{{op: OpText, payload: big}, {op: OpText, payload: "after"}}},
		{name: "exactly the soft limit", give: text(strings.Repeat("x", soft)),
			want: []got{{op: OpText, payload: strings.Repeat("x", soft)}}},
		{name: "binary frame", give: clientFrame(true, OpBinary, []byte{0, 1, 2}),
			want: []got{{op: OpBinary, payload: "\x00\x01\x02"}}},
		{name: "fragments with a ping between them",
			give: join(clientFrame(false, OpText, []byte("he")), clientFrame(true, OpPing, []byte("p")),
				clientFrame(false, OpContinuation, []byte("ll")), clientFrame(true, OpContinuation, []byte("o")), text("next")),
			want: []got{{op: OpPing, payload: "p"}, {op: OpText, payload: "hello"}, {op: OpText, payload: "next"}}},
		{name: "two fragmented messages in a row",
			give: join(clientFrame(false, OpText, []byte("ab")), clientFrame(true, OpContinuation, []byte("c")),
				clientFrame(false, OpText, []byte("d")), clientFrame(true, OpContinuation, []byte("ef"))),
			want: []got{{op: OpText, payload: "abc"}, {op: OpText, payload: "def"}}},
		{name: "pong", give: clientFrame(true, OpPong, nil), want: []got{{op: OpPong}}},
		{name: "close with a code and reason", give: clientFrame(true, OpClose, closePayload(1001, "bye")),
			want: []got{{op: OpClose, payload: string(closePayload(1001, "bye"))}}},
		{name: "close without a code", give: clientFrame(true, OpClose, nil), want: []got{{op: OpClose}}},
		{name: "one byte over the soft limit is dropped", give: join(text(strings.Repeat("x", soft+1)), text("ok")),
			want: []got{{op: OpText, tooLarge: true}, {op: OpText, payload: "ok"}}},
		{name: "fragments over the soft limit are dropped",
			give: join(clientFrame(false, OpText, []byte(big)), clientFrame(true, OpContinuation, []byte(big)), text("ok")),
			want: []got{{op: OpText, tooLarge: true}, {op: OpText, payload: "ok"}}},
		{name: "an empty final fragment ends a dropped message",
			give: join(clientFrame(false, OpBinary, []byte(strings.Repeat("y", soft+5))), clientFrame(true, OpContinuation, nil)),
			want: []got{{op: OpBinary, tooLarge: true}}},
		{name: "16-bit length", give: text(strings.Repeat("z", 300)), want: []got{{op: OpText, payload: strings.Repeat("z", 300)}}},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, 7, 64, 1 << 20} {
			r := NewReader(soft, hard)
			msgs, err := feed(r, tt.give, chunk)
			require.NoError(t, err, "%s (chunks of %d)", tt.name, chunk)
			assert.Equal(t, tt.want, msgs, "%s (chunks of %d)", tt.name, chunk)
			r.Buffer()
			assert.Nil(t, r.large, "%s: an idle reader holds only its small buffer", tt.name)
			assert.Nil(t, r.msg, "%s: an idle reader holds no fragments buffer", tt.name)
			r.Release()
		}
	}
}

func TestReaderProtocolErrors(t *testing.T) {
	const soft, hard = 1000, 4000
	tests := []struct {
		name string
		give []byte
		code int
	}{
		{name: "unmasked frame", give: rawFrame(0x81, false, []byte("hi")), code: CloseProtocolError},
		{name: "reserved bit", give: rawFrame(0xC1, true, []byte("hi")), code: CloseProtocolError},
		{name: "unknown data opcode", give: rawFrame(0x83, true, nil), code: CloseProtocolError},
		{name: "unknown control opcode", give: rawFrame(0x8B, true, nil), code: CloseProtocolError},
		{name: "fragmented ping", give: rawFrame(0x09, true, nil), code: CloseProtocolError},
		{name: "control frame over 125 bytes", give: clientFrame(true, OpPing, make([]byte, 126)), code: CloseProtocolError},
		{name: "continuation without a message", give: clientFrame(true, OpContinuation, []byte("x")), code: CloseProtocolError},
		{name: "new message inside a fragmented one",
			give: join(clientFrame(false, OpText, []byte("a")), text("b")), code: CloseProtocolError},
		{name: "close with one byte", give: clientFrame(true, OpClose, []byte{3}), code: CloseProtocolError},
		{name: "close with code 1005", give: clientFrame(true, OpClose, closePayload(1005, "")), code: CloseProtocolError},
		{name: "close with code 999", give: clientFrame(true, OpClose, closePayload(999, "")), code: CloseProtocolError},
		{name: "close with code 5000", give: clientFrame(true, OpClose, closePayload(5000, "")), code: CloseProtocolError},
		{name: "close reason not UTF-8", give: clientFrame(true, OpClose, closePayload(1000, "\xff")), code: CloseInvalidData},
		{name: "over the hard limit", give: text(strings.Repeat("h", hard+1)), code: CloseTooBig},
		{name: "fragments over the hard limit",
			give: join(clientFrame(false, OpText, make([]byte, hard)), clientFrame(true, OpContinuation, []byte("x"))), code: CloseTooBig},
		{name: "absurd 64-bit length", give: []byte{0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, code: CloseTooBig},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 1 << 20} {
			r := NewReader(soft, hard)
			_, err := feed(r, tt.give, chunk)
			var perr *ProtocolError
			require.ErrorAs(t, err, &perr, "%s (chunks of %d)", tt.name, chunk)
			assert.Equal(t, tt.code, perr.Code, "%s: %s", tt.name, perr.Reason)
			r.Release()
		}
	}
}

func TestValidCloseCode(t *testing.T) {
	for code, want := range map[int]bool{999: false, 1000: true, 1003: true, 1004: false, 1005: false, 1006: false,
		1007: true, 1011: true, 1014: true, 1015: false, 2999: false, 3000: true, 4999: true, 5000: false} {
		assert.Equal(t, want, validCloseCode(code), "code %d", code)
	}
}

// FuzzReader: no input makes the reader panic or return a message while
// reporting an error other than ErrMessageTooLarge.
func FuzzReader(f *testing.F) {
	f.Add(text(`{"event":"pusher:ping"}`), 5)
	f.Add(join(clientFrame(false, OpText, []byte("he")), clientFrame(true, OpContinuation, []byte("y"))), 1)
	f.Add(clientFrame(true, OpClose, closePayload(1000, "x")), 2)
	f.Fuzz(func(t *testing.T, stream []byte, chunk int) {
		if chunk <= 0 || chunk > 1<<16 {
			chunk = 1 + len(stream)
		}
		r := NewReader(64, 256)
		msgs, err := feed(r, stream, chunk)
		for _, m := range msgs {
			if len(m.payload) > 256 {
				t.Fatalf("a message of %d bytes passed the hard limit", len(m.payload))
			}
		}
		var perr *ProtocolError
		if err != nil && !errors.As(err, &perr) {
			t.Fatalf("unexpected error %v", err)
		}
		r.Release()
	})
}
