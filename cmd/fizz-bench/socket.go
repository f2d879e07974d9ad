package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
)

const (
	// dialTimeout bounds one connection's handshake and the wait for
	// pusher:connection_established.
	dialTimeout = 10 * time.Second
	// writeTimeout bounds one write (subscribe, pong, close).
	writeTimeout = 5 * time.Second
	// readLimit bounds one message from the server.
	readLimit = 1 << 20
)

// record is one expected delivery to one socket.
type record struct {
	at  uint32 // receipt, µs since the run's epoch, plus one; 0 = not received
	lat uint32 // µs from the send time carried in the data to receipt
}

// socket is one client connection. Its reader goroutine is the only one
// that reads, records and writes (subscribe, pong) once it has started;
// Close and WriteControl are safe from elsewhere. The counters are read only
// after the reader has exited.
type socket struct {
	conn    *websocket.Conn
	channel int      // index of the channel it joins
	recv    []record // by seq / C

	subscribed   bool
	dup          int
	unexpected   int
	pings        int
	pusherErrors int
	lastError    string
	closeCode    int // from the server's close frame; 0 when none came
}

// writePool lends write buffers: the tool writes only the subscribe frame,
// pongs and the close frame, so no socket keeps a buffer.
var writePool = &sync.Pool{}

// dialSocket opens connection i and waits for pusher:connection_established.
func dialSocket(ctx context.Context, cfg *config, i int) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	nd := &net.Dialer{}
	if cfg.Sources > 1 {
		nd.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%cfg.Sources))}
		nd.Control = bindNoPort
	}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: dialTimeout,
		ReadBufferSize:   cfg.ReadBuffer,
		WriteBufferPool:  writePool,
	}
	target := cfg.Targets[i%len(cfg.Targets)]
	url := "ws://" + target + "/app/" + cfg.Key + "?protocol=7&client=fizz-bench&version=1.0"
	conn, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close() // nothing to read in a handshake answer
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", target, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	conn.SetReadLimit(readLimit)
	deadline, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(deadline) // a failure shows in ReadMessage
	_, msg, err := conn.ReadMessage()
	if err == nil && string(eventName(msg)) != "pusher:connection_established" {
		err = fmt.Errorf("first message is %q, not pusher:connection_established", clip(msg))
	}
	if err == nil {
		err = conn.SetReadDeadline(time.Time{})
	}
	if err != nil {
		_ = conn.Close() // the error below says what went wrong
		return nil, fmt.Errorf("%s: %w", target, err)
	}
	return conn, nil
}

// readLoop subscribes and then reads until the connection ends. It reports
// the outcome of the subscription on subscribed: the socket's index, or -1
// minus the index when it failed.
func (s *socket) readLoop(r *run, idx int) {
	reported := false
	report := func(ok bool) {
		if reported {
			return
		}
		reported = true
		if ok {
			r.subscribed <- idx
		} else {
			r.subscribed <- -1 - idx
		}
	}
	defer report(false)

	sub := `{"event":"pusher:subscribe","data":{"channel":"` + r.channelName(s.channel) + `"}}`
	if err := s.write([]byte(sub)); err != nil {
		return
	}
	buf := make([]byte, 0, 512)
	for {
		_, rd, err := s.conn.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				s.closeCode = ce.Code
			}
			return
		}
		if buf, err = readAll(rd, buf[:0]); err != nil {
			return
		}
		now := time.Now()
		if seq, ts, ok := parseTick(buf); ok {
			s.record(r, seq, ts, now)
			continue
		}
		switch string(eventName(buf)) {
		case "pusher_internal:subscription_succeeded":
			s.subscribed = true
			report(true)
		case "pusher:subscription_error":
			s.pusherErrors++
			s.lastError = clip(buf)
			report(false)
		case "pusher:ping":
			s.pings++
			if s.write([]byte(`{"event":"pusher:pong","data":{}}`)) != nil {
				return
			}
		case "pusher:error":
			s.pusherErrors++
			s.lastError = clip(buf)
		}
	}
}

// record notes the receipt of event seq, sent at ts (unix nanoseconds).
func (s *socket) record(r *run, seq, ts uint64, now time.Time) {
	c := uint64(r.cfg.Channels)
	if seq >= uint64(len(r.remaining)) || seq%c != uint64(s.channel) {
		s.unexpected++
		return
	}
	rec := &s.recv[seq/c]
	if rec.at != 0 {
		s.dup++
		return
	}
	rec.at = micros(now.Sub(r.epoch)) + 1
	rec.lat = micros(time.Duration(now.UnixNano() - int64(ts)))
	if r.remaining[seq].Add(-1) == 0 {
		r.done <- int(seq) // capacity: one per event, sent once
	}
}

// micros converts d to whole microseconds, clamped to uint32.
func micros(d time.Duration) uint32 {
	us := d.Microseconds()
	switch {
	case us < 0:
		return 0
	case us >= math.MaxUint32:
		return math.MaxUint32 - 1
	}
	return uint32(us)
}

func (s *socket) write(msg []byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	return s.conn.WriteMessage(websocket.TextMessage, msg)
}

// readAll reads a whole message into buf, growing it as needed.
func readAll(rd io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// The keys of the numbers in a tick's data, as they appear in the frame:
// the data is a JSON string, so its quotes are escaped.
var (
	seqKey = []byte(`\"seq\":`)
	tsKey  = []byte(`\"ts\":`)
)

// parseTick finds the sequence number and send time in an event the tool
// triggered: its data is a JSON string holding {"seq":S,"ts":T,"pad":"…"}.
// Only these two numbers are parsed, nothing else of the frame.
func parseTick(msg []byte) (seq, ts uint64, ok bool) {
	i := bytes.Index(msg, seqKey)
	if i < 0 {
		return 0, 0, false
	}
	rest := msg[i+len(seqKey):]
	if seq, rest, ok = leadingNumber(rest); !ok {
		return 0, 0, false
	}
	j := bytes.Index(rest, tsKey)
	if j < 0 {
		return 0, 0, false
	}
	ts, _, ok = leadingNumber(rest[j+len(tsKey):])
	return seq, ts, ok
}

// leadingNumber reads the unsigned integer b starts with.
func leadingNumber(b []byte) (n uint64, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' && i < 19 {
		n = n*10 + uint64(b[i]-'0')
		i++
	}
	return n, b[i:], i > 0 && (i == len(b) || b[i] < '0' || b[i] > '9')
}

var eventKey = []byte(`"event":"`)

// eventName returns the value of the first "event" key of a frame.
func eventName(msg []byte) []byte {
	i := bytes.Index(msg, eventKey)
	if i < 0 {
		return nil
	}
	rest := msg[i+len(eventKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// clip shortens a message for the report.
func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// tickData returns the data of event seq: {"seq":S,"ts":T,"pad":"x…"} with
// as much padding as brings it to size bytes.
func tickData(seq int, ts int64, size int) []byte {
	b := make([]byte, 0, size)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"pad":"`...)
	for len(b) < size-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// minPayload is the size of tickData with no padding and the largest
// numbers a run produces.
var minPayload = len(tickData(9_999_999, math.MaxInt64, 0))
