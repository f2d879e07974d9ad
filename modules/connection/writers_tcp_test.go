package connection

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWritersOverTCPWithStalledPeers: a burst of big frames broadcast to
// sockets that read promptly and to sockets that never read: every reader
// gets every frame in order, while the stalled sockets' writers wait for
// their peers off the pool. The frames are queued (SendFrame), written at
// once where the socket is idle (SendNow), or each in turn, as a
// broadcast does when events come now alone, now in bursts.
func TestWritersOverTCPWithStalledPeers(t *testing.T) {
	tests := []struct {
		name string
		send func(c *Conn, event int, frame []byte)
	}{
		{"queued", func(c *Conn, _ int, frame []byte) { c.SendFrame(frame) }},
		{"at once", func(c *Conn, _ int, frame []byte) { c.SendNow(frame) }},
		{"in turn", func(c *Conn, event int, frame []byte) {
			if event%3 == 0 {
				c.SendFrame(frame)
			} else {
				c.SendNow(frame)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { stalledPeers(t, tt.send) })
	}
}

func stalledPeers(t *testing.T, send func(c *Conn, event int, frame []byte)) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	w := NewWriters()
	w.Start()
	defer w.Stop()
	const readers, stalled, events, size = 10, 5, 300, 20 << 10
	var conns []*Conn
	var clients []net.Conn
	for i := range readers + stalled {
		client, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		defer client.Close()
		server, err := ln.Accept()
		require.NoError(t, err)
		c := New(fmt.Sprintf("%d.1", i), testApp(), server, Options{Log: discard, Writers: w, Limits: Limits{Grace: 500 * time.Millisecond}})
		defer c.Finish(true)
		conns = append(conns, c)
		clients = append(clients, client)
	}
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := range readers {
		wg.Go(func() {
			_ = clients[i].SetReadDeadline(time.Now().Add(20 * time.Second))
			r := bufio.NewReader(clients[i])
			for e := range events {
				f, err := readFrame(r)
				if err != nil {
					errs <- fmt.Errorf("reader %d, event %d: %w", i, e, err)
					return
				}
				if got := string(f.payload[:8]); got != fmt.Sprintf("%08d", e) {
					errs <- fmt.Errorf("reader %d: got %s, want %d", i, got, e)
					return
				}
			}
		})
	}
	for e := range events {
		p := make([]byte, size)
		copy(p, fmt.Sprintf("%08d", e))
		frame := TextFrame(p)
		for _, c := range conns {
			send(c, e, frame)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		for i, c := range conns {
			c.out.mu.Lock()
			t.Logf("conn %d: state %d writing %v queue %d stuck %d final %d", i, c.out.state, c.out.writing, len(c.out.queue), c.out.stuck, len(c.out.final))
			c.out.mu.Unlock()
		}
		t.Fatal(err)
	}
}
