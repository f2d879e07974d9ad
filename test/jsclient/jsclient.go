// Package jsclient runs the real pusher-js (its Node build) for the
// end-to-end tests: driver.mjs, beside this file, holds any number of
// pusher-js clients in one node process, takes commands as JSON lines on
// stdin and reports what the clients see as JSON lines on stdout.
//
// Node and pusher-js are not Go: a test calls Start, which skips the test
// when node or test/jsclient/node_modules/pusher-js is missing (install
// with `npm install --prefix test/jsclient`), and fails it instead where
// the environment variable CI is "true", so CI always runs these tests.
//
// A Driver is safe for concurrent use. Its process and reader goroutine end
// by the time the test's cleanup has run.
package jsclient

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Lifetime bounds one driver process: it exits on its own after this.
const Lifetime = 90 * time.Second

// stopWait bounds the wait for the process to exit once stdin is closed.
const stopWait = 5 * time.Second

// Event is one line the driver wrote: what a pusher-js client saw. Which
// fields are set depends on Type (see driver.mjs).
type Event struct {
	// ID names the client ("" for the driver's own lines).
	ID   string `json:"id"`
	Type string `json:"type"`
	// T is when the driver saw it, in ms since the epoch.
	T int64 `json:"t"`

	// state: the connection state change and the socket id.
	Previous string `json:"previous"`
	Current  string `json:"current"`
	SocketID string `json:"socket_id"`
	// error: the Pusher error code (0 if none) and what pusher-js said.
	Code  int    `json:"code"`
	Error string `json:"error"`
	// message, event, user_event: the event, its channel and its data.
	Event   string          `json:"event"`
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
	// watchlist: online or offline, and the users.
	Name    string   `json:"name"`
	UserIDs []string `json:"user_ids"`
	// count: the subscription_count of the event and
	// channel.subscriptionCount right after it.
	Count    *int `json:"count"`
	Property *int `json:"property"`
	// snapshot: the connection state and every channel's subscriptionCount.
	State  string          `json:"state"`
	Counts map[string]*int `json:"counts"`

	// Raw is the whole line.
	Raw string `json:"-"`
}

// At returns T as a time.
func (e Event) At() time.Time { return time.UnixMilli(e.T) }

func (e Event) String() string { return e.Raw }

// Cmd is one command for the driver; see driver.mjs for the ops.
type Cmd map[string]any

// Driver is one node process running driver.mjs.
type Driver struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser

	writeMu sync.Mutex
	seq     int

	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every new line or exit
	exited  bool
	stderr  bytes.Buffer

	readerDone chan struct{}
	waitDone   chan struct{}
}

// Dir returns the directory of driver.mjs and package.json.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Require returns the node command, skipping t (failing it with CI=true)
// when node, pusher-js or laravel-echo is not installed.
func Require(t testing.TB) string { return RequireModules(t, "pusher-js", "laravel-echo") }

// RequireModules returns the node command, skipping t (failing it with
// CI=true) when node or one of pkgs is not installed in
// test/jsclient/node_modules.
func RequireModules(t testing.TB, pkgs ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		Unavailable(t, "node is not on PATH")
	}
	for _, pkg := range pkgs {
		if _, err := os.Stat(filepath.Join(Dir(), "node_modules", pkg, "package.json")); err != nil {
			Unavailable(t, pkg+" is not installed in test/jsclient/node_modules")
		}
	}
	return node
}

// Unavailable skips t, or fails it where the environment variable CI is
// "true", saying what is missing and how to install it.
func Unavailable(t testing.TB, missing string) {
	t.Helper()
	msg := missing + ": install Node.js, run `npm install --prefix test/jsclient` (and for the console's browser test `apt-get install chromium`) to run the tests that drive Node.js"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: these tests must run)")
	}
	t.Skip(msg)
}

// Start starts a driver for t (see Require for when it skips) and waits
// until pusher-js is loaded. It stops when t ends.
func Start(t testing.TB) *Driver {
	t.Helper()
	node := Require(t)
	d := &Driver{t: t, changed: make(chan struct{}), readerDone: make(chan struct{}), waitDone: make(chan struct{})}
	d.cmd = exec.Command(node, filepath.Join(Dir(), "driver.mjs"), strconv.FormatInt(Lifetime.Milliseconds(), 10))
	d.cmd.Dir = Dir()
	// The driver dies with the test binary, even when that is killed.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	d.cmd.Stderr = lockedWriter{d}
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("jsclient: stdout pipe: %v", err)
	}
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatalf("jsclient: stdin pipe: %v", err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("jsclient: start node: %v", err)
	}
	go d.read(stdout)
	go func() {
		<-d.readerDone   // Wait closes stdout: read it all first
		_ = d.cmd.Wait() // how it ended shows in the events and stderr
		d.mu.Lock()
		d.exited = true
		d.notifyLocked()
		d.mu.Unlock()
		close(d.waitDone)
	}()
	t.Cleanup(d.stop)
	d.Wait("pusher-js loaded", 20*time.Second, func(all []Event) bool { return len(Filter(all, "", "ready")) > 0 })
	return d
}

// read collects the driver's lines until its stdout closes.
func (d *Driver) read(r io.Reader) {
	defer close(d.readerDone)
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for s.Scan() {
		line := s.Text()
		e := Event{Raw: line}
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			e = Event{Type: "unparsed", Raw: line}
		}
		d.mu.Lock()
		d.events = append(d.events, e)
		d.notifyLocked()
		d.mu.Unlock()
	}
}

func (d *Driver) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// stop closes stdin (the driver disconnects its clients and exits) and
// waits for the process, killing it if it does not end in time.
func (d *Driver) stop() {
	_ = d.stdin.Close() // a driver that exited already is fine
	select {
	case <-d.waitDone:
	case <-time.After(stopWait):
		_ = d.cmd.Process.Kill() // gone already is fine
		<-d.waitDone
	}
	if d.t.Failed() {
		d.t.Logf("pusher-js driver output:\n%s\nstderr:\n%s", d.dump(), d.Stderr())
	}
}

// Stderr returns what the driver wrote on stderr (pusher-js's log).
func (d *Driver) Stderr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

type lockedWriter struct{ d *Driver }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.d.stderr.Write(p)
}

// Do sends a command to the driver.
func (d *Driver) Do(c Cmd) {
	d.t.Helper()
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	d.seq++
	c["seq"] = d.seq
	b, err := json.Marshal(c)
	if err != nil {
		d.t.Fatalf("jsclient: encode %v: %v", c, err)
	}
	if _, err := d.stdin.Write(append(b, '\n')); err != nil {
		d.t.Fatalf("jsclient: send %s: %v", b, err)
	}
}

// Connect starts a pusher-js client named id on the node at wsURL (any
// ws:// or http:// URL of it); extra adds to the connect command (user,
// signin, subscribe, signin_after_subscribe, presence_id).
func (d *Driver) Connect(id, nodeURL, key, secret string, extra Cmd) {
	d.t.Helper()
	u, err := url.Parse(nodeURL)
	if err != nil {
		d.t.Fatalf("jsclient: node URL %q: %v", nodeURL, err)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		d.t.Fatalf("jsclient: node address %q: %v", u.Host, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		d.t.Fatalf("jsclient: node port %q: %v", port, err)
	}
	c := Cmd{"op": "connect", "id": id, "host": host, "port": p, "key": key, "secret": secret}
	for k, v := range extra {
		c[k] = v
	}
	d.Do(c)
}

// Events returns every event so far, oldest first.
func (d *Driver) Events() []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Event(nil), d.events...)
}

// Wait polls until cond holds for every event so far (re-checked on each
// new line), failing the test after within. It returns the events cond
// last saw.
func (d *Driver) Wait(what string, within time.Duration, cond func(all []Event) bool) []Event {
	d.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		all := append([]Event(nil), d.events...)
		changed, exited := d.changed, d.exited
		d.mu.Unlock()
		if cond(all) {
			return all
		}
		if exited {
			d.t.Fatalf("jsclient: the driver exited while waiting for %s\n%s", what, d.Stderr())
		}
		if f := Filter(all, "", "fatal"); len(f) > 0 {
			d.t.Fatalf("jsclient: the driver failed while waiting for %s: %s", what, f[0])
		}
		select {
		case <-changed:
		case <-deadline.C:
			d.t.Fatalf("jsclient: timed out after %s waiting for %s; events:\n%s", within, what, d.dump())
		}
	}
}

// WaitFor waits for the first event of client id with this type that
// match accepts (nil: any) and returns it.
func (d *Driver) WaitFor(what string, within time.Duration, id, typ string, match func(Event) bool) Event {
	d.t.Helper()
	var found Event
	d.Wait(what, within, func(all []Event) bool {
		for _, e := range Filter(all, id, typ) {
			if match == nil || match(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// WaitState waits until client id reaches the connection state.
func (d *Driver) WaitState(id, state string, within time.Duration) Event {
	d.t.Helper()
	return d.WaitFor(id+" "+state, within, id, "state", func(e Event) bool { return e.Current == state })
}

// dump lists the events for a failure message (the last 200).
func (d *Driver) dump() string {
	all := d.Events()
	if len(all) > 200 {
		all = all[len(all)-200:]
	}
	var b strings.Builder
	for _, e := range all {
		fmt.Fprintln(&b, e.Raw)
	}
	return b.String()
}

// Filter returns the events of client id ("" for any) with type typ ("" for any).
func Filter(all []Event, id, typ string) []Event {
	var out []Event
	for _, e := range all {
		if (id == "" || e.ID == id) && (typ == "" || e.Type == typ) {
			out = append(out, e)
		}
	}
	return out
}

// Messages returns the frames client id got with this event, on channel
// unless channel is "".
func Messages(all []Event, id, event, channel string) []Event {
	var out []Event
	for _, e := range Filter(all, id, "message") {
		if e.Event == event && (channel == "" || e.Channel == channel) {
			out = append(out, e)
		}
	}
	return out
}

// Counts returns the subscription counts client id saw on channel through
// pusher-js's pusher:subscription_count, oldest first.
func Counts(all []Event, id, channel string) []Event {
	var out []Event
	for _, e := range Filter(all, id, "count") {
		if e.Channel == channel {
			out = append(out, e)
		}
	}
	return out
}

// WaitCount waits until the last subscription count client id saw on
// channel is want, both in the event and in channel.subscriptionCount,
// and returns every count it saw there.
func (d *Driver) WaitCount(id, channel string, want int, within time.Duration) []Event {
	d.t.Helper()
	var counts []Event
	d.Wait(fmt.Sprintf("%s to see subscription_count %d on %s", id, want, channel), within, func(all []Event) bool {
		counts = Counts(all, id, channel)
		if len(counts) == 0 {
			return false
		}
		last := counts[len(counts)-1]
		return last.Count != nil && *last.Count == want && last.Property != nil && *last.Property == want
	})
	return counts
}

// RequirePaced checks that the counts seen from since to the last one came
// about once a second at most: no more than the whole seconds of that
// window plus one, plus one for slack. The node spaces them a second apart,
// so n of them take n-1 seconds however late each is delivered; the gaps
// between arrivals are only logged, since delivery under load may bring
// two of them together. It returns the counts of the window.
func RequirePaced(t testing.TB, counts []Event, since time.Time, what string) []int {
	t.Helper()
	if len(counts) == 0 {
		t.Fatalf("%s: no count events", what)
	}
	end := counts[len(counts)-1].At()
	var in []int
	var times []time.Time
	for _, e := range counts {
		if e.T < since.UnixMilli() { // before the window: kept for the first gap
			times = []time.Time{e.At()}
			continue
		}
		in = append(in, *e.Count)
		times = append(times, e.At())
	}
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	window := end.Sub(since)
	limit := int(window/time.Second) + 2
	t.Logf("%s: %d count events in %s: %v, gaps %v", what, len(in), window.Round(time.Millisecond), in, gaps)
	if len(in) > limit {
		t.Fatalf("%s: %d count events in %s (at most %d): %v", what, len(in), window, limit, in)
	}
	return in
}

// Watchlist returns the watchlist events client id saw through
// pusher.user.watchlist, as "online:a,b" or "offline:a" (ids sorted).
func Watchlist(all []Event, id string) []string {
	var out []string
	for _, e := range Filter(all, id, "watchlist") {
		ids := append([]string(nil), e.UserIDs...)
		sort.Strings(ids)
		out = append(out, e.Name+":"+strings.Join(ids, ","))
	}
	return out
}

// WaitWatchlist waits until client id has seen as many watchlist events
// as want and requires them to be want.
func (d *Driver) WaitWatchlist(id string, want []string, within time.Duration) {
	d.t.Helper()
	all := d.Wait(fmt.Sprintf("%s's watchlist events %v", id, want), within, func(all []Event) bool {
		return len(Watchlist(all, id)) >= len(want)
	})
	if got := Watchlist(all, id); !slices.Equal(got, want) {
		d.t.Fatalf("%s's watchlist events: got %v, want %v", id, got, want)
	}
}
