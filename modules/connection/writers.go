package connection

import (
	"runtime"
	"sync"
)

// writerQueue bounds the sockets waiting for a pool writer; past it, a
// socket gets a goroutine of its own.
const writerQueue = 1 << 16

// Writers is a fixed set of goroutines that run the writer loops of
// sockets with frames to send. Starting a writer then costs a channel
// send instead of a goroutine (and its allocation) per idle socket that
// receives an event. When every pool goroutine is busy (slow peers) or the
// pool is stopped, a socket gets a goroutine of its own, so one slow
// socket never holds up another.
type Writers struct {
	ready chan *Conn
	stop  chan struct{}
	wg    sync.WaitGroup

	mu      sync.RWMutex // offer holds it shared; Start and Stop exclusively
	running bool         // between Start and Stop
	stopped bool
}

// NewWriters returns a pool that runs nothing until Start.
func NewWriters() *Writers {
	return &Writers{ready: make(chan *Conn, writerQueue), stop: make(chan struct{})}
}

// Start runs the pool's goroutines: four per CPU, at least eight. Until
// then, and after Stop, sockets get goroutines of their own.
func (w *Writers) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running || w.stopped {
		return
	}
	w.running = true
	n := max(8, 4*runtime.GOMAXPROCS(0))
	w.wg.Add(n)
	for range n {
		go w.run()
	}
}

func (w *Writers) run() {
	defer w.wg.Done()
	for {
		select {
		case c := <-w.ready:
			c.writeLoop()
		case <-w.stop:
			// Offers ended before stop was closed: finish what is queued.
			for {
				select {
				case c := <-w.ready:
					c.writeLoop()
				default:
					return
				}
			}
		}
	}
}

// offer hands c to the pool and reports whether the pool took it.
func (w *Writers) offer(c *Conn) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.running {
		return false
	}
	select {
	case w.ready <- c:
		return true
	default:
		return false
	}
}

// Stop ends the pool after the queued sockets are written, and waits.
func (w *Writers) Stop() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped, w.running = true, false
	close(w.stop)
	w.mu.Unlock()
	w.wg.Wait()
}
