package connection

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// writerIdle is how long a pool goroutine waits for work before it exits.
const writerIdle = 10 * time.Second

// Writers is a small pool of goroutines that run jobs in the order they
// were offered: the writers of sockets with frames to send. A job never
// waits for a peer (see write.go), so a few goroutines per core keep up,
// and a burst to thousands of sockets does not make thousands of
// goroutines runnable ahead of the node's own work (reading Redis,
// answering the API). Sockets that wait their turn gather more frames,
// written with one syscall. Goroutines idle for writerIdle exit. Before
// Start the pool takes no job; at Stop, the jobs still waiting are
// detached (they carry on elsewhere).
type Writers struct {
	max     int // pool goroutines at most
	mu      sync.Mutex
	idle    []*writer   // most recently idle last
	waiting []job       // jobs waiting for a pool goroutine, oldest first
	behind  atomic.Bool // waiting is not empty (read without the lock)
	size    int         // pool goroutines, idle or busy
	running bool
	stopped bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

// job is work for the pool.
type job interface {
	// run does the work; it must not wait for a peer.
	run()
	// detach carries the work on off the pool, which is stopping.
	detach()
}

type writer struct {
	jobs      chan job // capacity 1; nil job: exit
	idleSince time.Time
}

// NewWriters returns a pool that runs nothing until Start.
func NewWriters() *Writers {
	return &Writers{max: max(8, 4*runtime.GOMAXPROCS(0)), stop: make(chan struct{})}
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

// offer runs j on the pool, at once or when its turn comes, and reports
// whether the pool took it.
func (w *Writers) offer(j job) bool {
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
		wr.jobs <- j // capacity 1 and idle: never blocks
		return true
	}
	if w.size >= w.max {
		w.waiting = append(w.waiting, j)
		w.behind.Store(true)
		w.mu.Unlock()
		return true
	}
	w.size++
	w.wg.Add(1)
	w.mu.Unlock()
	wr := &writer{jobs: make(chan job, 1)}
	go w.run(wr, j)
	return true
}

// yield puts j, which is running and has more to do, at the back of the
// line when other jobs wait for a pool goroutine; it reports whether it
// did (j must then return at once).
func (w *Writers) yield(j job) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running || len(w.waiting) == 0 {
		return false
	}
	w.waiting = append(w.waiting, j)
	w.behind.Store(true)
	return true
}

// isBehind reports whether jobs wait for a pool goroutine (false for a
// nil pool): the node is writing a burst.
func (w *Writers) isBehind() bool { return w != nil && w.behind.Load() }

// run runs one job after another until told to exit.
func (w *Writers) run(wr *writer, j job) {
	defer w.wg.Done()
	defer func() {
		w.mu.Lock()
		w.size--
		w.mu.Unlock()
	}()
	for j != nil {
		j.run()
		// Let the node's own work run between sockets: with sockets always
		// waiting, a pool goroutine would otherwise keep its core for a
		// whole time slice while the Redis reader and the API wait behind it.
		runtime.Gosched()
		w.mu.Lock()
		if !w.running {
			w.mu.Unlock()
			return
		}
		if len(w.waiting) > 0 {
			j = w.waiting[0]
			w.waiting[0] = nil
			w.waiting = w.waiting[1:]
			w.behind.Store(len(w.waiting) > 0)
			w.mu.Unlock()
			continue
		}
		wr.idleSince = time.Now()
		w.idle = append(w.idle, wr)
		w.mu.Unlock()
		j = <-wr.jobs
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

// Stop closes the pool: idle goroutines exit, busy ones when their job
// returns, and waiting jobs are detached; Stop waits for the goroutines.
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
	for _, j := range w.waiting {
		j.detach()
	}
	w.waiting = nil
	w.behind.Store(false)
	w.mu.Unlock()
	w.wg.Wait()
}
