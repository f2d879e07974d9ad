package connection

import "runtime"

// fanoutChunk is how many sockets one pool job writes to: enough that the
// job's hand-off (the pool's lock, a goroutine switch, a yield to the
// node's other work) is paid once for many sockets, few enough that the
// pool's goroutines share a broadcast between them.
const fanoutChunk = 128

// Fanout sends frames to many sockets, as a broadcast does. A socket
// whose writer must start (it had nothing queued) is not handed to the
// pool by itself: the sockets are gathered, and the pool gets one job per
// fanoutChunk of them, which writes to each in turn. A socket that is
// behind keeps its writer and gathers the frames to coalesce, as with
// SendFrame. When the pool is behind as the fan-out begins (sockets wait
// for a pool goroutine: events come faster than they are written), each
// socket is handed to the pool by itself, as by SendFrame: its writer
// then takes its turn in the line with the others, and by then more
// frames have come to join its write. A Fanout is used by one goroutine;
// Flush must end every use.
type Fanout struct {
	pool   *Writers
	conns  []*Conn
	behind bool // the pool had sockets waiting when this fan-out began
}

// Send queues frame to c (see SendFrame).
func (f *Fanout) Send(c *Conn, frame []byte) {
	switch start, slow := c.out.push(frame); {
	case slow != "":
		c.closeSlowConsumer(slow)
	case !start:
	case c.tryWrite == nil || c.pool == nil:
		c.spawn(nil)
	default:
		if c.pool != f.pool {
			f.Flush()
			f.pool = c.pool
			f.behind = c.pool.backlog() > 0
		}
		if f.behind {
			c.startWriter() // one job per socket, as SendFrame
			return
		}
		if f.conns == nil {
			f.conns = make([]*Conn, 0, fanoutChunk)
		}
		f.conns = append(f.conns, c)
		if len(f.conns) == fanoutChunk {
			f.Flush()
		}
	}
}

// Flush hands the sockets gathered so far to the pool.
func (f *Fanout) Flush() {
	if len(f.conns) == 0 {
		return
	}
	j := &fanoutJob{conns: f.conns}
	f.conns = nil
	if !f.pool.offer(j) {
		j.detach()
	}
}

// fanoutJob runs the writers of several sockets, one after another.
type fanoutJob struct{ conns []*Conn }

// run writes to each socket in turn. Between sockets it lets the node's
// other goroutines run, as the pool does between jobs: under a burst the
// broadcaster and the API then keep queueing while the writers work, so
// a socket's next write carries every frame that came meanwhile (without
// it, the pool took the CPU for a chunk at a time, the sockets were
// visited sooner, and a saturated node made 1.7 times the writes per
// delivery).
func (j *fanoutJob) run() {
	for i, c := range j.conns {
		if i > 0 {
			runtime.Gosched()
		}
		c.writePooled(true)
	}
}

func (j *fanoutJob) detach() {
	for _, c := range j.conns {
		c.spawn(nil)
	}
}
