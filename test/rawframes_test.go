package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/test/harness"
	"github.com/fizz-server/fizz/test/pusherclient"
)

// rawSocket is a WebSocket client that writes whatever bytes a test gives
// it, for frames no well-behaved library sends.
type rawSocket struct {
	conn net.Conn
	br   *bufio.Reader
}

// dialRaw connects to the node's first app and writes the upgrade request
// followed at once by early (bytes a client should not send before the 101).
func dialRaw(t *testing.T, n *harness.Node, early []byte) *rawSocket {
	t.Helper()
	conn, err := net.DialTimeout("tcp", n.Addr, wait)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(wait)))
	path := strings.TrimPrefix(n.WSURL(n.App.Key), "ws://"+n.Addr)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + n.Addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	_, err = conn.Write(append([]byte(req), early...))
	require.NoError(t, err)
	s := &rawSocket{conn: conn, br: bufio.NewReader(conn)}
	resp, err := http.ReadResponse(s.br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	s.expectText(t, pusher.EventConnectionEstablished)
	return s
}

// maskedFrame encodes a frame as a client does; b0 is the first header
// byte (FIN, reserved bits, opcode).
func maskedFrame(b0 byte, payload string) []byte {
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	key := []byte{1, 2, 3, 4}
	b = append(b, key...)
	for i := range len(payload) {
		b = append(b, payload[i]^key[i&3])
	}
	return b
}

// next reads one server frame.
func (s *rawSocket) next() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(s.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var l [2]byte
		_, err = io.ReadFull(s.br, l[:])
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		_, err = io.ReadFull(s.br, l[:])
		n = binary.BigEndian.Uint64(l[:])
	}
	if err != nil {
		return 0, nil, err
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(s.br, payload)
	return h[0], payload, err
}

// expectText reads until a text frame with event want, decoded as
// pusherclient decodes every frame.
func (s *rawSocket) expectText(t *testing.T, want string) {
	t.Helper()
	for {
		op, payload, err := s.next()
		require.NoError(t, err, "waiting for a text frame with %q", want)
		if op == 0x81 && pusherclient.DecodeFrame(false, payload).Event == want {
			return
		}
		require.NotEqual(t, byte(0x88), op, "closed while waiting for %q: %v", want, payload)
	}
}

// expectFrame reads until a frame with opcode op and returns its payload.
func (s *rawSocket) expectFrame(t *testing.T, op byte) []byte {
	t.Helper()
	for {
		got, payload, err := s.next()
		require.NoError(t, err, "waiting for a frame with opcode %#x", op)
		if got == op {
			return payload
		}
		require.NotEqual(t, byte(0x88), got, "closed while waiting for opcode %#x: %q", op, payload)
	}
}

// expectClose reads until the server's close frame and checks its code.
func (s *rawSocket) expectClose(t *testing.T, code int) {
	t.Helper()
	payload := s.expectFrame(t, 0x88)
	require.GreaterOrEqual(t, len(payload), 2, "close frame without a code")
	require.Equal(t, code, int(binary.BigEndian.Uint16(payload)), "close reason %q", payload[2:])
}

const pusherPing = `{"event":"pusher:ping","data":{}}`

// TestEarlyFrame: a frame sent together with the upgrade request, before
// the 101, is read and answered, not lost.
func TestEarlyFrame(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	s := dialRaw(t, n, maskedFrame(0x81, pusherPing))
	s.expectText(t, pusher.EventPong)
}

// TestRawFrames covers WebSocket framing that client libraries rarely
// send: fragments, control frames between them, split writes, and frames
// that break RFC 6455, which close the socket with 1002.
func TestRawFrames(t *testing.T) {
	t.Parallel()
	n := harness.Start(t, nil)
	close1001 := string(binary.BigEndian.AppendUint16(nil, 1001)) + "bye"
	tests := []struct {
		name   string
		give   [][]byte // written one after another
		answer string   // a text frame with this event, or
		pong   string   // a WebSocket pong with this payload, then answer, or
		close  int      // a close frame with this code
	}{
		{name: "fragments with a ping between them", give: [][]byte{
			maskedFrame(0x01, pusherPing[:10]), maskedFrame(0x89, "are you there"),
			maskedFrame(0x00, pusherPing[10:20]), maskedFrame(0x80, pusherPing[20:]),
		}, pong: "are you there", answer: pusher.EventPong},
		{name: "a frame written a byte at a time", give: splitBytes(maskedFrame(0x81, pusherPing)), answer: pusher.EventPong},
		{name: "a frame larger than the read buffer", give: [][]byte{maskedFrame(0x81,
			`{"event":"pusher:ping","data":{"pad":"`+strings.Repeat("p", 3000)+`"}}`)}, answer: pusher.EventPong},
		{name: "unmasked frame", give: [][]byte{append([]byte{0x81, byte(len(pusherPing))}, pusherPing...)}, close: 1002},
		{name: "reserved bit set", give: [][]byte{maskedFrame(0xC1, pusherPing)}, close: 1002},
		{name: "unknown opcode", give: [][]byte{maskedFrame(0x83, "")}, close: 1002},
		{name: "continuation without a message", give: [][]byte{maskedFrame(0x80, pusherPing)}, close: 1002},
		{name: "close frame with code 1001", give: [][]byte{maskedFrame(0x88, close1001)}, close: 1001},
		{name: "close frame without a code", give: [][]byte{maskedFrame(0x88, "")}, close: 1000},
		{name: "close frame with an invalid code", give: [][]byte{maskedFrame(0x88, "\x03\xe7")}, close: 1002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := dialRaw(t, n, nil)
			for _, b := range tt.give {
				_, err := s.conn.Write(b)
				require.NoError(t, err)
			}
			if tt.pong != "" {
				require.Equal(t, tt.pong, string(s.expectFrame(t, 0x8A)))
			}
			if tt.answer != "" {
				s.expectText(t, tt.answer)
			}
			if tt.close != 0 {
				s.expectClose(t, tt.close)
				_, _, err := s.next()
				require.ErrorIs(t, err, io.EOF, "the server closes the connection after its close frame")
			}
		})
	}
}

// splitBytes returns b as one-byte writes.
func splitBytes(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}
