package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"
)

// run is one benchmark run. The fields below sockets are shared with the
// reader goroutines: set before they start, then used only through atomics
// and channels.
type run struct {
	cfg      *config
	progress io.Writer // phase notes, for long runs
	epoch    time.Time // receipt times count from here
	sockets  []*socket // by index; nil where the dial failed

	remaining  []atomic.Int32 // by seq: subscribers yet to receive it
	done       chan int       // seq, once its remaining reaches 0
	subscribed chan int       // a socket's index, or -1-index on failure
	readers    sync.WaitGroup
}

func (r *run) channelName(i int) string { return r.cfg.ChannelPrefix + strconv.Itoa(i) }

// execute runs every phase and returns the report. A run cut short by ctx
// still reports what it measured; only a failure to start is an error.
func execute(ctx context.Context, cfg *config, progress io.Writer) (*report, error) {
	if err := checkFileLimit(cfg.Sockets, cfg.Concurrency); err != nil {
		return nil, err
	}
	rep := &report{Config: cfg}
	var base procSample
	if len(cfg.PIDs) > 0 {
		var err error
		if base, err = sampleProcs(cfg.PIDs); err != nil {
			return nil, fmt.Errorf("-pid: %w", err)
		}
		rep.Server = &serverReport{RSSBefore: base.RSS}
	}
	r := &run{
		cfg:        cfg,
		progress:   progress,
		epoch:      time.Now(),
		sockets:    make([]*socket, cfg.Sockets),
		remaining:  make([]atomic.Int32, cfg.Events),
		done:       make(chan int, cfg.Events),
		subscribed: make(chan int, cfg.Sockets),
	}
	defer func() {
		r.closeAll()
		r.readers.Wait() // every reader ends once its connection is closed
	}()

	r.connect(ctx, rep)
	if rep.Connect.Connected == 0 {
		return nil, fmt.Errorf("no connection opened: %s", rep.Connect.FirstError)
	}
	perChannel := r.subscribe(ctx, rep)
	if rep.Subscribe.Subscribed == 0 {
		return nil, fmt.Errorf("no socket subscribed: %s", rep.Subscribe.FirstError)
	}
	for seq := range r.remaining {
		r.remaining[seq].Store(int32(perChannel[seq%cfg.Channels]))
	}

	if rep.Server != nil {
		fmt.Fprintf(progress, "settling %s before reading the server's RSS\n", cfg.Settle)
		sleep(ctx, cfg.Settle)
		if s, err := sampleProcs(cfg.PIDs); err == nil {
			rep.Server.RSSSubscribed = s.RSS
			rep.Server.RSSPerSocket = float64(s.RSS-base.RSS) / float64(rep.Subscribe.Subscribed)
		}
	}

	tr := r.events(ctx, rep)
	r.closeAll()
	r.readers.Wait()
	rep.analyse(r, tr)
	if cfg.EventsCSV != "" && tr.sent > 0 {
		if err := rep.writeEventsCSV(cfg.EventsCSV, r, tr); err != nil {
			rep.Notes = append(rep.Notes, "-events-csv: "+err.Error())
		}
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "the run was cut short: "+context.Cause(ctx).Error())
	}
	return rep, nil
}

// connect opens the sockets, at most cfg.Dialers at a time.
func (r *run) connect(ctx context.Context, rep *report) {
	cfg := r.cfg
	fmt.Fprintf(r.progress, "connecting %d sockets to %v\n", cfg.Sockets, cfg.Targets)
	start := time.Now()
	next := make(chan int)
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		opened, failed  int
		firstErr        error
		tooManyFailures = make(chan struct{})
	)
	for range min(cfg.Dialers, cfg.Sockets) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				conn, err := dialSocket(ctx, cfg, i)
				mu.Lock()
				if err != nil {
					failed++
					if firstErr == nil {
						firstErr = err
					}
					// Mostly failing: the server is down or full.
					if failed == 100 && opened < failed {
						close(tooManyFailures)
					}
				} else {
					opened++
					r.sockets[i] = &socket{conn: conn, channel: i % cfg.Channels}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range cfg.Sockets {
		select {
		case next <- i:
		case <-tooManyFailures:
			break feed
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	rep.Connect = connectReport{
		Connected: opened,
		Failed:    failed,
		Seconds:   elapsed.Seconds(),
		PerSecond: float64(opened) / elapsed.Seconds(),
	}
	if firstErr != nil {
		rep.Connect.FirstError = firstErr.Error()
	}
}

// subscribe starts every socket's reader, which subscribes, and waits for
// the answers. Sockets that fail are closed. It returns the subscribers per
// channel.
func (r *run) subscribe(ctx context.Context, rep *report) []int {
	cfg := r.cfg
	start := time.Now()
	live := 0
	for i, s := range r.sockets {
		if s == nil {
			continue
		}
		s.recv = make([]record, (cfg.Events-s.channel+cfg.Channels-1)/cfg.Channels)
		live++
		r.readers.Add(1)
		go func() {
			defer r.readers.Done()
			s.readLoop(r, i)
		}()
	}
	fmt.Fprintf(r.progress, "subscribing %d sockets to %d channels\n", live, cfg.Channels)
	ok := make([]bool, len(r.sockets))
	answered := 0
wait:
	for answered < live {
		select {
		case i := <-r.subscribed:
			answered++
			if i >= 0 {
				ok[i] = true
			}
		case <-ctx.Done():
			break wait
		}
	}
	rep.Subscribe.Seconds = time.Since(start).Seconds()
	perChannel := make([]int, cfg.Channels)
	for i, s := range r.sockets {
		switch {
		case s == nil:
		case ok[i]:
			perChannel[s.channel]++
			rep.Subscribe.Subscribed++
		default:
			rep.Subscribe.Failed++
			_ = s.conn.Close() // not counted; its reader exits
		}
	}
	if rep.Subscribe.Failed > 0 {
		rep.Subscribe.FirstError = "no subscription_succeeded in time (or a subscription error)"
	}
	return perChannel
}

// closeAll closes every socket: a close frame, then the connection. It may
// be called more than once.
func (r *run) closeAll() {
	deadline := time.Now().Add(time.Second)
	for _, s := range r.sockets {
		if s == nil {
			continue
		}
		// Both may fail on a socket already closed; nothing to do then.
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), deadline)
		_ = s.conn.Close()
	}
}

// job is one event for a trigger worker.
type job struct {
	seq int
	ts  int64 // send time, unix nanoseconds
}

// answer is a trigger worker's result.
type answer struct {
	seq int
	err error
}

// events triggers the events and waits for their deliveries.
func (r *run) events(ctx context.Context, rep *report) *tracker {
	cfg := r.cfg
	tr := newTracker(r, cfg.Events)
	jobs := make(chan job)
	answers := make(chan answer, cfg.Events)
	waitSenders, sender, err := r.startSenders(ctx, jobs, answers)
	if err != nil {
		rep.Notes = append(rep.Notes, err.Error()+"; triggering from this process")
		r.cfg.TriggerProcess = false
		waitSenders, sender, _ = r.startSenders(ctx, jobs, answers)
	}

	var before, selfBefore procSample
	if len(cfg.PIDs) > 0 {
		before, _ = sampleProcs(cfg.PIDs) // checked at start; a gap shows as zero
	}
	selfBefore, _ = sampleProc("self")
	if cfg.Rate > 0 {
		fmt.Fprintf(r.progress, "triggering up to %d events at %g/s\n", cfg.Events, cfg.Rate)
	} else {
		fmt.Fprintf(r.progress, "triggering up to %d events, %d HTTP requests and %d events in flight at most\n",
			cfg.Events, cfg.Concurrency, cfg.Window)
	}
	tr.start = time.Now()
	if cfg.Rate > 0 {
		tr.openLoop(ctx, jobs, answers)
	} else {
		tr.closedLoop(ctx, jobs, answers)
	}
	var senderCPU time.Duration
	if sender != 0 {
		// Read before it ends: every trigger is handed over by now.
		if s, err := sampleProc(strconv.Itoa(sender)); err == nil {
			senderCPU = s.CPU
		}
	}
	close(jobs)

	deadline := time.Now().Add(cfg.Drain)
	for tr.finished < tr.sent && tr.step(ctx, answers, deadline) {
	}
	tr.end = time.Now()
	if len(cfg.PIDs) > 0 {
		if after, err := sampleProcs(cfg.PIDs); err == nil {
			rep.Server.CPU = (after.CPU - before.CPU).Seconds()
			rep.Server.RSSAfter = after.RSS
			if before.Writes >= 0 && after.Writes >= 0 {
				rep.Server.Writes = after.Writes - before.Writes
			}
		}
	}
	if selfAfter, err := sampleProc("self"); err == nil {
		rep.Tool.CPU = (selfAfter.CPU - selfBefore.CPU + senderCPU).Seconds()
		rep.Tool.RSS = selfAfter.RSS
	}
	if sender != 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("triggers were sent by a process of their own (pid %d); its CPU time is in the tool's", sender))
	}
	waitSenders()
	close(answers)
	for a := range answers {
		tr.answer(a)
	}
	return tr
}

// tracker follows every event from trigger to its last delivery. It is
// owned by the goroutine running events.
type tracker struct {
	r        *run
	state    []uint8 // stateX by seq
	sentAt   []time.Time
	failed   []bool
	ts       []int64 // send time carried in the data
	oldest   int     // no event before it is in flight
	inflight int

	sent, finished, completed int
	failures                  int
	firstError                string
	windowTimeouts            int
	maxLag                    time.Duration
	start, end                time.Time
}

const (
	stateUnsent = iota
	stateInFlight
	stateFinished // delivered to every subscriber, failed, or given up on
)

func newTracker(r *run, events int) *tracker {
	return &tracker{
		r:      r,
		state:  make([]uint8, events),
		sentAt: make([]time.Time, events),
		failed: make([]bool, events),
		ts:     make([]int64, events),
	}
}

func (t *tracker) markSent(seq int, at time.Time) {
	t.state[seq] = stateInFlight
	t.sentAt[seq] = at
	t.ts[seq] = at.UnixNano()
	t.sent++
	t.inflight++
	if t.r.remaining[seq].Load() == 0 { // a channel left without subscribers
		t.completed++
		t.finish(seq)
	}
}

func (t *tracker) finish(seq int) {
	if t.state[seq] == stateInFlight {
		t.state[seq] = stateFinished
		t.inflight--
		t.finished++
	}
}

func (t *tracker) answer(a answer) {
	if a.err == nil {
		return
	}
	t.failed[a.seq] = true
	t.failures++
	if t.firstError == "" {
		t.firstError = a.err.Error()
	}
	t.finish(a.seq)
}

// step handles one completion or trigger answer. It reports false when
// deadline passed or ctx ended first.
func (t *tracker) step(ctx context.Context, answers <-chan answer, deadline time.Time) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case seq := <-t.r.done:
		t.completed++
		t.finish(seq)
	case a := <-answers:
		t.answer(a)
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
	return true
}

// closedLoop triggers as fast as the server takes events: at most
// cfg.Concurrency requests (the workers) and cfg.Window undelivered events.
func (t *tracker) closedLoop(ctx context.Context, jobs chan<- job, answers <-chan answer) {
	cfg := t.r.cfg
	for seq := range cfg.Events {
		if cfg.Duration > 0 && time.Since(t.start) >= cfg.Duration {
			return
		}
		for cfg.Window > 0 && t.inflight >= cfg.Window {
			for t.state[t.oldest] != stateInFlight {
				t.oldest++
			}
			o := t.oldest
			if !t.step(ctx, answers, t.sentAt[o].Add(cfg.Drain)) {
				if ctx.Err() != nil {
					return
				}
				if t.r.remaining[o].Load() > 0 {
					t.windowTimeouts++ // the event lost a delivery
				}
				t.finish(o)
			}
		}
		now := time.Now()
		t.markSent(seq, now)
		select {
		case jobs <- job{seq, now.UnixNano()}:
		case <-ctx.Done():
			t.finish(seq)
			return
		}
	}
}

// openLoop triggers event seq at start + seq/rate, whether or not earlier
// ones were answered. The send time in the data is the scheduled one, so a
// late trigger counts in the latency (no coordinated omission).
func (t *tracker) openLoop(ctx context.Context, jobs chan<- job, _ <-chan answer) {
	cfg := t.r.cfg
	interval := float64(time.Second) / cfg.Rate
	for seq := range cfg.Events {
		at := t.start.Add(time.Duration(float64(seq) * interval))
		if cfg.Duration > 0 && at.Sub(t.start) >= cfg.Duration {
			return
		}
		if !sleep(ctx, time.Until(at)) {
			return
		}
		t.maxLag = max(t.maxLag, time.Since(at))
		t.markSent(seq, at)
		select {
		case jobs <- job{seq, at.UnixNano()}:
		case <-ctx.Done():
			t.finish(seq)
			return
		}
	}
}

// sleep waits for d or the end of ctx; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// errTimeout is the cause of a run that hit -timeout.
var errTimeout = errors.New("-timeout reached")
