package connection

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/modules/pusher"
)

func TestConnSendDeliversInOrder(t *testing.T) {
	tests := []struct {
		name string
		give int // frames sent; below QueueSize, so never a slow consumer
	}{
		{name: "one", give: 1},
		{name: "a burst", give: QueueSize - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := newPipeConn(t, "1.1", testApp())

			for i := range tt.give {
				c.Send(fmt.Appendf(nil, `{"n":%d}`, i))
			}

			for i := range tt.give {
				f := p.next(t)
				require.Equal(t, byte(opText), f.op)
				require.JSONEq(t, fmt.Sprintf(`{"n":%d}`, i), string(f.payload))
			}
			assert.Zero(t, c.CloseCode())
		})
	}
}

func TestConnCoalescesQueuedFrames(t *testing.T) {
	tr := newFakeTransport(true)
	c := New("1.1", testApp(), tr, Options{Log: discard})
	t.Cleanup(func() { c.Finish(true) })

	c.Send([]byte(`{"n":0}`))
	<-tr.entered // the writer is blocked in its first Write
	const queued = 50
	for i := 1; i <= queued; i++ {
		c.Send(fmt.Appendf(nil, `{"n":%d}`, i))
	}
	tr.release()

	require.Eventually(t, func() bool { return len(tr.frames(t)) == queued+1 }, waitFor, time.Millisecond)
	writes := tr.Writes()
	require.Len(t, writes, 2, "one write for the first frame, one for everything queued meanwhile")
	second := parseFrames(t, writes[1])
	require.Len(t, second, queued)
	for i, f := range second {
		assert.JSONEq(t, fmt.Sprintf(`{"n":%d}`, i+1), string(f.payload))
	}
}

func TestConnQueueOverflowClosesWith4100(t *testing.T) {
	tr := newFakeTransport(true)
	frame := []byte(`{"n":1}`) // 9 bytes framed
	c := New("1.1", testApp(), tr, Options{Log: discard, Limits: Limits{MaxBytes: 10 * 9}})

	c.Send([]byte(`{"n":0}`))
	<-tr.entered
	for range 10 {
		c.Send(frame) // fills the queue to its byte cap
	}
	require.Zero(t, c.CloseCode(), "a full queue alone is not an overflow")
	c.Send([]byte(`{"n":"overflow"}`))
	require.Equal(t, pusher.CodeOverCapacity, c.CloseCode())
	c.Send([]byte(`{"n":"after close"}`))
	tr.release()
	waitForClose(t, tr) // the client answers our close frame, then the reader ends
	c.Finish(false)

	frames := tr.frames(t)
	require.Len(t, frames, 3, "the frame in flight, pusher:error, close; the queue is dropped")
	assert.JSONEq(t, `{"n":0}`, string(frames[0].payload))
	code, msg := frames[1].pusherError(t)
	assert.Equal(t, pusher.CodeOverCapacity, code)
	assert.Equal(t, "Over capacity", msg)
	assert.Equal(t, byte(opClose), frames[2].op)
	assert.Equal(t, pusher.CodeOverCapacity, frames[2].code())
}

func TestConnClose(t *testing.T) {
	tests := []struct {
		name     string
		give     *pusher.Error
		wantCode int
		want     []seen // after the frame in flight
	}{
		{
			name:     "fatal error",
			give:     pusher.Fatalf(pusher.CodeUnauthorized, "Origin not allowed"),
			wantCode: 4009,
			want:     []seen{{op: opText, event: "pusher:error", code: 4009, msg: "Origin not allowed"}, {op: opClose, code: 4009}},
		},
		{
			name:     "restart",
			give:     pusher.Fatalf(pusher.CodeGeneric, "Server is restarting"),
			wantCode: 4200,
			want:     []seen{{op: opText, event: "pusher:error", code: 4200, msg: "Server is restarting"}, {op: opClose, code: 4200}},
		},
		{
			name:     "no error",
			give:     nil,
			wantCode: 1000,
			want:     []seen{{op: opClose, code: 1000}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newFakeTransport(true)
			c := New("1.1", testApp(), tr, Options{Log: discard})
			c.Send([]byte(`{"event":"in-flight"}`))
			<-tr.entered
			c.Send([]byte(`{"event":"queued-1"}`))
			c.Send([]byte(`{"event":"queued-2"}`))

			c.Close(tt.give)
			c.Send([]byte(`{"event":"after-close"}`))
			tr.release()
			waitForClose(t, tr)
			c.Finish(false)

			want := append([]seen{{op: opText, event: "in-flight"}}, tt.want...)
			assert.Equal(t, want, describeAll(t, tr.frames(t)), "queued frames are dropped")
			assert.Equal(t, tt.wantCode, c.CloseCode())
		})
	}
}

func TestConnCloseIsIdempotentAcrossGoroutines(t *testing.T) {
	tr := newFakeTransport(false)
	c := New("1.1", testApp(), tr, Options{Log: discard})

	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 64 {
		wg.Go(func() {
			<-start
			c.Close(pusher.Fatalf(4100+i, "closer %d", i))
			c.Send([]byte(`{}`))
		})
	}
	close(start)
	wg.Wait()
	waitForClose(t, tr)
	c.Finish(false)

	frames := tr.frames(t)
	require.Len(t, frames, 2, "one pusher:error and one close frame")
	code, _ := frames[0].pusherError(t)
	assert.Equal(t, c.CloseCode(), code)
	assert.Equal(t, c.CloseCode(), frames[1].code())
}

func TestConnFinishWaitsForTheWriter(t *testing.T) {
	tr := newFakeTransport(true)
	c := New("1.1", testApp(), tr, Options{Log: discard})
	c.Send([]byte(`{"n":0}`))
	<-tr.entered

	writesWhenFinished := make(chan int, 1)
	go func() {
		c.Finish(false)
		writesWhenFinished <- len(tr.Writes())
	}()
	assert.Never(t, func() bool { return len(writesWhenFinished) > 0 }, 50*time.Millisecond, 5*time.Millisecond,
		"Finish returned while a write was in flight")
	tr.release()

	select {
	case n := <-writesWhenFinished:
		assert.Equal(t, 1, n, "the write completed before Finish returned")
	case <-time.After(waitFor):
		t.Fatal("Finish did not return after the write completed")
	}
}

// enteredConn signals each Write before passing it on.
type enteredConn struct {
	net.Conn
	entered chan struct{}
}

func (c enteredConn) Write(b []byte) (int, error) {
	select {
	case c.entered <- struct{}{}:
	default:
	}
	return c.Conn.Write(b)
}

func TestConnFinishGoneCutsABlockedWrite(t *testing.T) {
	server, client := net.Pipe() // nobody reads client: a write blocks
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	tr := enteredConn{Conn: server, entered: make(chan struct{}, 1)}
	c := New("1.1", testApp(), tr, Options{Log: discard})
	c.Send([]byte(`{"n":0}`))
	<-tr.entered

	finished := make(chan struct{})
	go func() {
		c.Finish(true)
		close(finished)
	}()

	select {
	case <-finished:
	case <-time.After(DefaultSlowConsumerGrace / 2):
		t.Fatal("Finish(true) waited for a write to a dead peer")
	}
}

func TestConnSendAfterFinishIsANoOp(t *testing.T) {
	tr := newFakeTransport(false)
	c := New("1.1", testApp(), tr, Options{Log: discard})
	c.Finish(false)

	before := runtime.NumGoroutine()
	for range 1000 {
		c.Send([]byte(`{}`))
		c.SendFrame(TextFrame([]byte(`{}`)))
		c.Close(pusher.Fatalf(pusher.CodeGeneric, "late"))
	}
	after := runtime.NumGoroutine()

	assert.Empty(t, tr.Writes())
	assert.LessOrEqual(t, after, before, "a Send after Finish started a goroutine")
	assert.Zero(t, c.CloseCode(), "Close after Finish changes nothing")
}

func TestConnCloseFrameIsAnsweredWhileAWriteIsInFlight(t *testing.T) {
	// The client sends a close frame while the writer is busy: the close
	// handler queues our answer (CloseFrame) and the read loop ends at once
	// (Finish(false)). RFC 6455 5.5.1 requires the answer to go out.
	tr := newFakeTransport(true)
	c := New("1.1", testApp(), tr, Options{Log: discard})
	c.Send([]byte(`{"n":0}`))
	<-tr.entered

	c.CloseFrame(1000, "")
	finished := make(chan struct{})
	go func() {
		c.Finish(false)
		close(finished)
	}()
	// Let the read loop's Finish mark the socket closed before the busy
	// writer looks at its queue again, as happens when the writer is slow.
	require.Eventually(t, func() bool {
		c.out.mu.Lock()
		defer c.out.mu.Unlock()
		return c.out.state == stateClosed
	}, waitFor, time.Millisecond)
	tr.release()
	<-finished

	frames := tr.frames(t)
	require.NotEmpty(t, frames)
	last := frames[len(frames)-1]
	assert.Equal(t, byte(opClose), last.op, "the close frame answering the client's was never written")
	assert.Equal(t, 1000, last.code())
}

func TestConnPongAndUserID(t *testing.T) {
	tr := newFakeTransport(false)
	c := New("1.1", testApp(), tr, Options{Log: discard})
	t.Cleanup(func() { c.Finish(true) })

	c.Pong([]byte("hi"))
	require.Eventually(t, func() bool { return len(tr.frames(t)) == 1 }, waitFor, time.Millisecond)
	f := tr.frames(t)[0]
	assert.Equal(t, byte(opPong), f.op)
	assert.Equal(t, "hi", string(f.payload))

	assert.Equal(t, "", c.UserID())
	assert.True(t, c.SetUserID("u1"))
	assert.True(t, c.SetUserID("u1"), "the same user again")
	assert.False(t, c.SetUserID("u2"), "another user")
	assert.Equal(t, "u1", c.UserID())
}

func TestConnOnCloseRunsAfterFinish(t *testing.T) {
	tr := newFakeTransport(false)
	c := New("1.1", testApp(), tr, Options{Log: discard})
	var calls []int
	c.OnClose(func() { calls = append(calls, 1) })
	c.OnClose(func() { calls = append(calls, 2) })
	require.Empty(t, calls)

	c.Finish(false)
	c.Finish(false)

	assert.Equal(t, []int{1, 2}, calls, "each func runs once, in order")
}

func TestConnChannels(t *testing.T) {
	c := New("1.1", testApp(), newFakeTransport(false), Options{Log: discard})
	t.Cleanup(func() { c.Finish(true) })

	c.AddChannel("a")
	c.AddChannel("b")
	c.RemoveChannel("a")

	assert.False(t, c.Subscribed("a"))
	assert.True(t, c.Subscribed("b"))
	assert.Equal(t, []string{"b"}, c.Channels())
}

func TestConnAllowClientEvent(t *testing.T) {
	type call struct {
		after time.Duration // since the first call
		n     int           // events tried at that instant
	}
	tests := []struct {
		name string
		rate int
		give []call
		want []int // events allowed per call
	}{
		{
			name: "ten allowed, the eleventh refused",
			rate: 10,
			give: []call{{after: 0, n: 11}},
			want: []int{10},
		},
		{
			name: "a tenth of a second refills one token",
			rate: 10,
			give: []call{{after: 0, n: 10}, {after: 100 * time.Millisecond, n: 2}},
			want: []int{10, 1},
		},
		{
			name: "a second refills the bucket, never beyond the burst",
			rate: 10,
			give: []call{{after: 0, n: 10}, {after: 5 * time.Second, n: 20}},
			want: []int{10, 10},
		},
		{
			name: "zero means no cap",
			rate: 0,
			give: []call{{after: 0, n: 1000}},
			want: []int{1000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := testApp()
			app.ClientEventsPerSecond = tt.rate
			c := New("1.1", app, newFakeTransport(false), Options{Log: discard})
			t.Cleanup(func() { c.Finish(true) })
			base := time.Now().Add(time.Millisecond) // never before New's clock

			got := make([]int, 0, len(tt.give))
			for _, step := range tt.give {
				got = append(got, countAllowed(c, base.Add(step.after), step.n))
			}

			assert.Equal(t, tt.want, got)
		})
	}
}

// waitForClose waits until a close frame has been written to tr.
func waitForClose(t *testing.T, tr *fakeTransport) {
	t.Helper()
	require.Eventually(t, func() bool {
		frames := tr.frames(t)
		return len(frames) > 0 && frames[len(frames)-1].op == opClose
	}, waitFor, time.Millisecond, "no close frame was written")
}

func TestConnSendError(t *testing.T) {
	tests := []struct {
		name     string
		give     *pusher.Error
		want     []seen
		wantCode int
	}{
		{
			name: "a plain error keeps the socket open",
			give: pusher.Errorf(pusher.CodeClientEventBlocked, "Rate limit"),
			want: []seen{{op: opText, event: "pusher:error", code: 4301, msg: "Rate limit"}},
		},
		{
			name:     "a fatal error closes it",
			give:     pusher.Fatalf(pusher.CodeOverQuota, "Over quota"),
			want:     []seen{{op: opText, event: "pusher:error", code: 4004, msg: "Over quota"}, {op: opClose, code: 4004}},
			wantCode: 4004,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newFakeTransport(false)
			c := New("1.1", testApp(), tr, Options{Log: discard, Debug: true}) // debug logging on

			c.SendError(tt.give)

			require.Eventually(t, func() bool { return len(tr.frames(t)) == len(tt.want) }, waitFor, time.Millisecond)
			c.Finish(false)
			assert.Equal(t, tt.want, describeAll(t, tr.frames(t)))
			assert.Equal(t, tt.wantCode, c.CloseCode())
		})
	}
}

func TestConnIdentity(t *testing.T) {
	app := testApp()
	c := New("123.456", app, newFakeTransport(false), Options{Log: discard})
	t.Cleanup(func() { c.Finish(true) })

	assert.Equal(t, "123.456", c.ID())
	assert.Same(t, app, c.App())
	assert.Equal(t, "fake", c.RemoteAddr().String())
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		give int
		want int // runes kept before the ellipsis
	}{
		{name: "short", give: 10, want: 10},
		{name: "at the limit", give: 512, want: 512},
		{name: "long", give: 600, want: 513},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Excerpt([]byte(strings.Repeat("a", tt.give)))
			assert.Len(t, []rune(got), tt.want)
		})
	}
}

// countAllowed tries n client events at now and counts those allowed.
func countAllowed(c *Conn, now time.Time, n int) int {
	allowed := 0
	for range n {
		if c.AllowClientEvent(now) {
			allowed++
		}
	}
	return allowed
}
