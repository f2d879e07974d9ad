package connection

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tryTransport is a fakeTransport that can also write without waiting, as
// a TCP socket can: TryWrite takes at most room bytes per call (all of them
// when room is negative). With hold set, TryWrite first signals entered
// and waits for hold, like a write syscall that takes a while.
type tryTransport struct {
	*fakeTransport
	room int
	hold chan struct{}
}

func (t *tryTransport) TryWrite(b []byte) (int, error) {
	if t.hold != nil {
		t.entered <- struct{}{}
		<-t.hold
	}
	n := len(b)
	if t.room >= 0 {
		n = min(n, t.room)
	}
	if n == 0 {
		return 0, nil
	}
	return t.fakeTransport.Write(b[:n])
}

// pooled returns a Conn whose writers run on w, over a tryTransport that
// takes room bytes per non-blocking write; blockFirst makes the first
// blocking Write wait for release.
func pooled(t *testing.T, w *Writers, room int, blockFirst bool) (*Conn, *tryTransport) {
	t.Helper()
	tr := &tryTransport{fakeTransport: newFakeTransport(blockFirst), room: room}
	c := New("1.1", testApp(), tr, Options{Log: discard, Writers: w})
	t.Cleanup(func() { c.Finish(true) })
	return c, tr
}

func TestWritersRunQueuedFrames(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	c, tr := pooled(t, w, -1, false)
	c.Send([]byte(`{"event":"one"}`))
	c.Send([]byte(`{"event":"two"}`))
	require.Eventually(t, func() bool { return len(tr.frames(t)) == 2 }, waitFor, time.Millisecond)

	// The writer went back to the pool and serves the next burst.
	require.Eventually(t, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.idle) == 1 && w.size == 1
	}, waitFor, time.Millisecond)
	c.Send([]byte(`{"event":"three"}`))
	require.Eventually(t, func() bool { return len(tr.frames(t)) == 3 }, waitFor, time.Millisecond)
	w.mu.Lock()
	assert.Equal(t, 1, w.size, "an idle pool writer was reused, not a new one started")
	w.mu.Unlock()
}

func TestWritersSlowSocketDoesNotHoldUpAnother(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	// The slow socket's buffer is full: the pool hands it to a goroutine
	// of its own, whose blocking write waits.
	slow, slowTr := pooled(t, w, 0, true)
	slow.Send([]byte(`{"event":"stuck"}`))
	<-slowTr.entered

	fast, fastTr := pooled(t, w, -1, false)
	fast.Send([]byte(`{"event":"quick"}`))
	require.Eventually(t, func() bool { return len(fastTr.frames(t)) == 1 }, waitFor, time.Millisecond,
		"a socket waited for a pool writer stuck on another socket")
	slow.Send([]byte(`{"event":"queued behind"}`))
	slowTr.release()
	require.Eventually(t, func() bool { return len(slowTr.frames(t)) == 2 }, waitFor, time.Millisecond)
	assert.Equal(t, `{"event":"stuck"}`, string(slowTr.frames(t)[0].payload))
}

// TestWritersPartialWrite: what a non-blocking write leaves over is sent
// before anything queued later, with no byte lost or repeated.
func TestWritersPartialWrite(t *testing.T) {
	w := NewWriters()
	w.Start()
	defer w.Stop()
	c, tr := pooled(t, w, 7, false)
	want := []string{`{"event":"one","data":"a longer frame than seven bytes"}`, `{"event":"two"}`, `{"event":"three"}`}
	size := 0
	for _, p := range want {
		c.Send([]byte(p))
		size += len(TextFrame([]byte(p)))
	}
	// Parse only once every byte is out: a partial write cuts frames.
	require.Eventually(t, func() bool { return len(bytes.Join(tr.Writes(), nil)) == size }, waitFor, time.Millisecond)
	for i, f := range tr.frames(t) {
		assert.Equal(t, want[i], string(f.payload))
	}
}

func TestWritersBeforeStartAndAfterStop(t *testing.T) {
	tests := []struct {
		name string
		give func(*Writers)
	}{
		{"never started", func(*Writers) {}},
		{"stopped", func(w *Writers) { w.Start(); w.Stop() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWriters()
			tt.give(w)
			c, tr := pooled(t, w, -1, false)
			c.Send([]byte(`{"event":"own goroutine"}`))
			require.Eventually(t, func() bool { return len(tr.frames(t)) == 1 }, waitFor, time.Millisecond)
		})
	}
}

// TestWritersWaitTheirTurn: with every pool goroutine busy, a socket waits
// in line; Stop waits for the busy writer and runs the waiting socket's
// writer elsewhere.
func TestWritersWaitTheirTurn(t *testing.T) {
	w := NewWriters()
	w.max = 1
	w.Start()
	busy, busyTr := pooled(t, w, -1, false)
	busyTr.hold = make(chan struct{})
	busy.Send([]byte(`{"event":"in flight"}`))
	<-busyTr.entered

	next, nextTr := pooled(t, w, -1, false)
	next.Send([]byte(`{"event":"waiting"}`))
	w.mu.Lock()
	assert.Len(t, w.waiting, 1, "the second socket waits for the only pool goroutine")
	w.mu.Unlock()

	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	require.Eventually(t, func() bool { return len(nextTr.frames(t)) == 1 }, waitFor, time.Millisecond,
		"Stop ran the waiting socket's writer")
	select {
	case <-stopped:
		t.Fatal("Stop returned while a pool writer was still writing")
	case <-time.After(50 * time.Millisecond):
	}
	close(busyTr.hold)
	select {
	case <-stopped:
	case <-time.After(waitFor):
		t.Fatal("Stop did not return after the write finished")
	}
	assert.Len(t, busyTr.frames(t), 1)
}

// TestWritersPartialWriteOverTCP: a client that reads nothing while more
// is sent than the kernel can hold (its send and receive buffers) forces
// the non-blocking write (the pool's, or SendNow's) to leave bytes over;
// the socket's own goroutine writes them. When the client reads again it
// gets every frame, whole and in order.
func TestWritersPartialWriteOverTCP(t *testing.T) {
	for _, now := range []bool{false, true} {
		t.Run(fmt.Sprintf("now=%v", now), func(t *testing.T) { partialWrite(t, now) })
	}
}

func partialWrite(t *testing.T, now bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	// A small receive buffer, set before the handshake so that the window
	// is small from the start.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	client, err := d.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := ln.Accept()
	require.NoError(t, err)

	w := NewWriters()
	w.Start()
	defer w.Stop()
	c := New("1.1", testApp(), server, Options{Log: discard, Writers: w})
	require.NotNil(t, c.tryWrite, "a TCP socket writes without waiting")
	defer func() {
		c.Finish(true)
		_ = server.Close()
	}()

	// More than the largest send buffer the kernel grows to, in fewer
	// frames than the queue holds.
	const frames = 200
	total := maxSendBuffer(t) + 2<<20
	size := total/frames + 1
	want := make([][]byte, frames)
	for i := range want {
		want[i] = bytes.Repeat([]byte{byte('a' + i%26)}, size)
		copy(want[i], fmt.Sprintf("%08d", i))
		if now {
			c.SendNow(TextFrame(want[i]))
		} else {
			c.Send(want[i])
		}
	}

	require.NoError(t, client.SetReadDeadline(time.Now().Add(30*time.Second)))
	r := bufio.NewReader(client)
	for i := range want {
		f, err := readFrame(r)
		require.NoError(t, err, "frame %d of %d", i, frames)
		require.Equal(t, want[i], f.payload, "frame %d", i)
	}
	assert.Zero(t, c.CloseCode(), "a client that catches up is not a slow consumer")
}

// maxSendBuffer returns the largest TCP send buffer the kernel grows a
// socket's to (net.ipv4.tcp_wmem), 4 MB when it cannot be read.
func maxSendBuffer(t *testing.T) int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		return 4 << 20
	}
	f := strings.Fields(string(b))
	n, err := strconv.Atoi(f[len(f)-1])
	require.NoError(t, err)
	return n
}
