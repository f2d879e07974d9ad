package connection

import (
	"sync"
	"time"
)

// writerIdle is how long a pool goroutine waits for work before it exits;
// maxWriters caps the pool (past it, writers run on goroutines of their
// own), so a burst to many idle sockets does not leave thousands of idle
// goroutines behind.
const (
	writerIdle = 10 * time.Second
	maxWriters = 1024
)

// Writers is an elastic pool of goroutines that run the writer loops of
// sockets with frames to send. Starting a socket's writer then costs a
// channel send to an idle pool goroutine instead of a new goroutine (and
// its allocation) per idle socket that receives an event. When no pool
// goroutine is idle (they are all writing, perhaps to slow peers) the pool
// grows by one, so one slow socket never holds up another; goroutines idle
// for writerIdle exit. Before Start and after Stop, sockets get goroutines
// of their own.
type Writers struct {
	mu      sync.Mutex
	idle    []*writer // most recently idle last
	size    int       // pool goroutines, idle or busy
	running bool
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

type writer struct {
	jobs      chan *Conn // capacity 1; nil job: exit
	idleSince time.Time
}

// NewWriters returns a pool that runs nothing until Start.
func NewWriters() *Writers {
	return &Writers{stop: make(chan struct{})}
}

// Start opens the pool and starts the goroutine that retires idle writers.
func (w *Writers) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running || w.stopped {
		return
	}
	w.running = true
	w.wg.Add(1)
	go w.retire()
}

// offer runs c's writer loop on the pool and reports whether it could.
func (w *Writers) offer(c *Conn) bool {
	w.mu.Lock()
	if !w.running {
		w.mu.Unlock()
		return false
	}
	if n := len(w.idle); n > 0 {
		wr := w.idle[n-1]
		w.idle[n-1] = nil
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		wr.jobs <- c // capacity 1 and idle: never blocks
		return true
	}
	if w.size >= maxWriters {
		w.mu.Unlock()
		return false
	}
	w.size++
	w.wg.Add(1)
	w.mu.Unlock()
	wr := &writer{jobs: make(chan *Conn, 1)}
	go w.run(wr, c)
	return true
}

// run writes for one socket after another until told to exit.
func (w *Writers) run(wr *writer, c *Conn) {
	defer w.wg.Done()
	defer func() {
		w.mu.Lock()
		w.size--
		w.mu.Unlock()
	}()
	for c != nil {
		c.writeLoop()
		w.mu.Lock()
		if !w.running {
			w.mu.Unlock()
			return
		}
		wr.idleSince = time.Now()
		w.idle = append(w.idle, wr)
		w.mu.Unlock()
		c = <-wr.jobs
	}
}

// retire ends the writers that have been idle longer than writerIdle.
func (w *Writers) retire() {
	defer w.wg.Done()
	t := time.NewTicker(writerIdle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-w.stop:
			return
		}
		cutoff := time.Now().Add(-writerIdle)
		w.mu.Lock()
		n := 0 // the oldest idle writers come first
		for n < len(w.idle) && w.idle[n].idleSince.Before(cutoff) {
			w.idle[n].jobs <- nil
			n++
		}
		w.idle = append(w.idle[:0], w.idle[n:]...)
		w.mu.Unlock()
	}
}

// Stop closes the pool: idle writers exit, busy ones exit when their
// socket is written; Stop waits for all of them.
func (w *Writers) Stop() {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped, w.running = true, false
	close(w.stop)
	for _, wr := range w.idle {
		wr.jobs <- nil
	}
	w.idle = nil
	w.mu.Unlock()
	w.wg.Wait()
}
