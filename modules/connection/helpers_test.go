package connection

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/apps"
)

// waitFor bounds every wait in these tests; nothing should come near it.
const waitFor = 5 * time.Second

var discard = slog.New(slog.DiscardHandler)

// testApp returns an app whose sockets never ping during a test unless the
// test asks for it.
func testApp() *apps.App {
	return &apps.App{
		ID:                    "app-1",
		Key:                   "key-1",
		Secret:                "secret",
		PingInterval:          time.Hour,
		ClientEventsPerSecond: 10,
		MaxPresenceMembers:    100,
	}
}

// wsFrame is one decoded server frame.
type wsFrame struct {
	op      byte // first byte: FIN bit and opcode
	payload []byte
}

// code returns the status code of a close frame.
func (f wsFrame) code() int {
	if len(f.payload) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

// pusherError decodes the data of a pusher:error text frame.
func (f wsFrame) pusherError(t *testing.T) (code int, message string) {
	t.Helper()
	var ev struct {
		Event string `json:"event"`
		Data  struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(f.payload, &ev), "frame %q", f.payload)
	require.Equal(t, "pusher:error", ev.Event)
	return ev.Data.Code, ev.Data.Message
}

// event returns the event name of a text frame.
func (f wsFrame) event(t *testing.T) string {
	t.Helper()
	var ev struct {
		Event string `json:"event"`
	}
	require.NoError(t, json.Unmarshal(f.payload, &ev), "frame %q", f.payload)
	return ev.Event
}

// readFrame decodes one unmasked server frame from r.
func readFrame(r io.Reader) (wsFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return wsFrame{}, err
	}
	if h[1]&0x80 != 0 {
		return wsFrame{}, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return wsFrame{}, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return wsFrame{}, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<24 {
		return wsFrame{}, fmt.Errorf("frame of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return wsFrame{}, err
	}
	return wsFrame{op: h[0], payload: p}, nil
}

// parseFrames decodes every frame in b, which must hold whole frames only.
func parseFrames(t *testing.T, b []byte) []wsFrame {
	t.Helper()
	r := bytes.NewReader(b)
	var out []wsFrame
	for r.Len() > 0 {
		f, err := readFrame(r)
		require.NoError(t, err)
		out = append(out, f)
	}
	return out
}

// fakeAddr is the address of a fakeTransport.
type fakeAddr struct{}

func (fakeAddr) Network() string { return "fake" }
func (fakeAddr) String() string  { return "fake" }

// fakeTransport is a net.Conn that records each Write call. When gate is
// set, the first Write signals entered and blocks until gate is closed, so
// a test can queue frames while the writer is busy.
type fakeTransport struct {
	gate    chan struct{}
	entered chan struct{}
	closed  chan struct{}

	mu        sync.Mutex
	writes    [][]byte
	closeOnce sync.Once
}

func newFakeTransport(blockFirst bool) *fakeTransport {
	t := &fakeTransport{entered: make(chan struct{}, 1), closed: make(chan struct{})}
	if blockFirst {
		t.gate = make(chan struct{})
	}
	return t
}

func (t *fakeTransport) Write(b []byte) (int, error) {
	t.mu.Lock()
	first := len(t.writes) == 0
	t.mu.Unlock()
	select {
	case t.entered <- struct{}{}:
	default:
	}
	if first && t.gate != nil {
		select {
		case <-t.gate:
		case <-t.closed:
			return 0, net.ErrClosed
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.writes = append(t.writes, bytes.Clone(b))
	return len(b), nil
}

// release lets the blocked first Write finish.
func (t *fakeTransport) release() { close(t.gate) }

// Writes returns a copy of every completed Write call's bytes.
func (t *fakeTransport) Writes() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]byte(nil), t.writes...)
}

// frames decodes every frame written so far, in order.
func (t *fakeTransport) frames(tb *testing.T) []wsFrame {
	tb.Helper()
	return parseFrames(tb, bytes.Join(t.Writes(), nil))
}

func (t *fakeTransport) Read([]byte) (int, error) {
	<-t.closed
	return 0, io.EOF
}

func (t *fakeTransport) Close() error {
	t.closeOnce.Do(func() { close(t.closed) })
	return nil
}

func (t *fakeTransport) LocalAddr() net.Addr              { return fakeAddr{} }
func (t *fakeTransport) RemoteAddr() net.Addr             { return fakeAddr{} }
func (t *fakeTransport) SetDeadline(time.Time) error      { return nil }
func (t *fakeTransport) SetReadDeadline(time.Time) error  { return nil }
func (t *fakeTransport) SetWriteDeadline(time.Time) error { return nil }

// peer is the client end of a net.Pipe: it decodes every frame the Conn
// writes and hands them over on frames until the pipe ends.
type peer struct {
	client net.Conn
	frames chan wsFrame
	done   chan struct{}
	err    error // why reading ended; read after done
}

// newPipeConn returns a Conn over one end of a net.Pipe and a peer reading
// the other end. Cleanup finishes the Conn as a vanished client would and
// closes the pipe.
func newPipeConn(t *testing.T, id string, app *apps.App) (*Conn, *peer) {
	t.Helper()
	server, client := net.Pipe()
	p := &peer{client: client, frames: make(chan wsFrame, 4*QueueSize), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			f, err := readFrame(client)
			if err != nil {
				p.err = err
				return
			}
			p.frames <- f
		}
	}()
	c := New(id, app, server, Options{Log: discard})
	t.Cleanup(func() {
		c.Finish(true)
		_ = client.Close()
		_ = server.Close()
		<-p.done
	})
	return c, p
}

// next returns the next frame the peer got, failing after waitFor.
func (p *peer) next(t *testing.T) wsFrame {
	t.Helper()
	select {
	case f := <-p.frames:
		return f
	case <-time.After(waitFor):
		t.Fatal("no frame arrived")
		return wsFrame{}
	}
}

// untilClose returns the frames the peer got up to and including the
// first close frame.
func (p *peer) untilClose(t *testing.T) []wsFrame {
	t.Helper()
	var out []wsFrame
	for {
		f := p.next(t)
		out = append(out, f)
		if f.op == opClose {
			return out
		}
	}
}

// seen is what a test asserts about one frame.
type seen struct {
	op    byte
	event string // text frames: the Pusher event
	code  int    // pusher:error and close frames
	msg   string // pusher:error message
}

// describe reduces f to what tests compare.
func describe(t *testing.T, f wsFrame) seen {
	t.Helper()
	s := seen{op: f.op}
	switch f.op {
	case opText:
		s.event = f.event(t)
		if s.event == "pusher:error" {
			s.code, s.msg = f.pusherError(t)
		}
	case opClose:
		s.code = f.code()
	}
	return s
}

func describeAll(t *testing.T, frames []wsFrame) []seen {
	t.Helper()
	out := make([]seen, 0, len(frames))
	for _, f := range frames {
		out = append(out, describe(t, f))
	}
	return out
}
