package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits that keep a run bounded.
const (
	// maxRecords caps the per-socket receipt records (N × events ÷ C); each
	// costs 8 bytes of the tool's memory.
	maxRecords = 64 << 20
	// spareFiles is what the tool keeps free besides its sockets (HTTP
	// connections, /proc reads, the Go runtime).
	spareFiles = 64
	// maxPayload is Pusher's limit on an event's data.
	maxPayload = 10 << 10
	// maxSources is the last usable address of 127.0.0.0/24.
	maxSources = 254
)

// config is one run's settings, from the flags.
type config struct {
	Targets       []string      `json:"targets"`
	Trigger       string        `json:"trigger"`
	AppID         string        `json:"app_id"`
	Key           string        `json:"app_key"`
	Secret        string        `json:"-"`
	Sockets       int           `json:"sockets"`
	Channels      int           `json:"channels"`
	Sources       int           `json:"sources"`
	Events        int           `json:"events"`
	Duration      time.Duration `json:"duration_ns"`
	Payload       int           `json:"payload_bytes"`
	Rate          float64       `json:"rate"`
	Concurrency   int           `json:"concurrency"`
	Window        int           `json:"window"`
	Dialers       int           `json:"connect_concurrency"`
	PIDs          []int         `json:"pids,omitempty"`
	JSON          bool          `json:"-"`
	Timeout       time.Duration `json:"timeout_ns"`
	Drain         time.Duration `json:"drain_ns"`
	Settle        time.Duration `json:"settle_ns"`
	ReadBuffer    int           `json:"read_buffer"`
	ChannelPrefix string        `json:"channel_prefix"`
	EventName     string        `json:"event"`
	EventsCSV     string        `json:"-"`
	// TriggerProcess sends the triggers from a process of their own.
	TriggerProcess bool `json:"trigger_process"`

	args []string // as given, for the sender process
}

// parseFlags reads args into a config and checks it.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("fizz-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	targets := fs.String("targets", "127.0.0.1:8080", "comma-separated loopback host:port list of the nodes; sockets are spread round-robin over them")
	fs.StringVar(&c.Trigger, "trigger", "first", "where events are triggered: first (the first target) or rr (round-robin over the targets)")
	fs.StringVar(&c.AppID, "app-id", "app-id", "app id")
	fs.StringVar(&c.Key, "app-key", "app-key", "app key")
	fs.StringVar(&c.Secret, "app-secret", "app-secret", "app secret (signs the HTTP API requests)")
	fs.IntVar(&c.Sockets, "n", 1000, "WebSocket connections to open")
	fs.IntVar(&c.Channels, "c", 1, "channels; socket i joins channel i mod c and event s goes to channel s mod c")
	fs.IntVar(&c.Sources, "sources", 1, "source addresses: socket i binds to 127.0.0.(1 + i mod sources)")
	fs.IntVar(&c.Events, "events", 200, "events to trigger (the most, when -duration ends the run first)")
	fs.DurationVar(&c.Duration, "duration", 0, "stop triggering after this long (0: only -events limits)")
	fs.IntVar(&c.Payload, "payload", 100, fmt.Sprintf("size of each event's data in bytes, %d to %d (it carries the sequence number and the send time)", minPayload, maxPayload))
	fs.Float64Var(&c.Rate, "rate", 0, "events per second, open loop; 0 triggers as fast as the server takes them (bounded by -concurrency and -window)")
	fs.IntVar(&c.Concurrency, "concurrency", 4, "HTTP trigger requests in flight at most")
	fs.IntVar(&c.Window, "window", 32, "with -rate 0: events triggered but not yet delivered to every subscriber, at most (1: one event at a time; 0: no limit)")
	fs.IntVar(&c.Dialers, "connect-concurrency", 64, "connections being opened at once, at most")
	pids := fs.String("pid", "", "the server's pid (comma-separated for several nodes): report its RSS and CPU time from /proc")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON")
	fs.DurationVar(&c.Timeout, "timeout", 60*time.Second, "the whole run ends within this time")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "after the last trigger, wait this long at most for deliveries; with -rate 0 also how long one event may hold a -window slot")
	fs.DurationVar(&c.Settle, "settle", time.Second, "wait this long after subscribing before reading the server's RSS")
	fs.IntVar(&c.ReadBuffer, "read-buffer", 2048, "read buffer per socket in bytes")
	fs.StringVar(&c.ChannelPrefix, "channel-prefix", "bench-", "channel names are this prefix plus a number")
	fs.StringVar(&c.EventName, "event", "bench-event", "event name")
	fs.BoolVar(&c.TriggerProcess, "trigger-process", false, "send the HTTP triggers from a second fizz-bench process, so that they do not wait behind this process's socket readers (the server and its clients then share the machine less unevenly with the trigger source)")
	fs.StringVar(&c.EventsCSV, "events-csv", "", "write one line per event to this file: seq, send time, first and last receipt (ms since the first send), receipts")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.args = args
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.Targets = append(c.Targets, t)
		}
	}
	if *pids != "" {
		for _, p := range strings.Split(*pids, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || pid <= 0 {
				return c, fmt.Errorf("-pid: %q is not a process id", p)
			}
			c.PIDs = append(c.PIDs, pid)
		}
	}
	return c, c.validate()
}

// validate checks the settings that do not depend on the machine.
func (c *config) validate() error {
	if len(c.Targets) == 0 {
		return errors.New("-targets: no address")
	}
	for _, t := range c.Targets {
		if err := checkLoopback(t); err != nil {
			return fmt.Errorf("-targets: %w", err)
		}
		if c.Sources > 1 && !strings.HasPrefix(t, "127.") {
			return fmt.Errorf("-sources %d binds to 127.0.0.x, so every target must be an IPv4 127.x.x.x address, not %q", c.Sources, t)
		}
	}
	switch {
	case c.Trigger != "first" && c.Trigger != "rr":
		return fmt.Errorf("-trigger %q: want first or rr", c.Trigger)
	case c.Sockets < 1:
		return errors.New("-n must be at least 1")
	case c.Channels < 1 || c.Channels > c.Sockets:
		return fmt.Errorf("-c %d: want 1 to -n (%d), so that every channel has a subscriber", c.Channels, c.Sockets)
	case c.Sources < 1 || c.Sources > maxSources:
		return fmt.Errorf("-sources %d: want 1 to %d", c.Sources, maxSources)
	case c.Events < 1:
		return errors.New("-events must be at least 1")
	case c.Duration < 0:
		return errors.New("-duration must not be negative")
	case c.Payload < minPayload || c.Payload > maxPayload:
		return fmt.Errorf("-payload %d: want %d to %d bytes", c.Payload, minPayload, maxPayload)
	case c.Rate < 0:
		return errors.New("-rate must not be negative")
	case c.Concurrency < 1 || c.Concurrency > 256:
		return errors.New("-concurrency: want 1 to 256")
	case c.Window < 0:
		return errors.New("-window must not be negative")
	case c.Dialers < 1 || c.Dialers > 1024:
		return errors.New("-connect-concurrency: want 1 to 1024")
	case c.Timeout <= 0:
		return errors.New("-timeout must be positive")
	case c.Drain <= 0 || c.Settle < 0:
		return errors.New("-drain must be positive and -settle not negative")
	case c.ReadBuffer < 128 || c.ReadBuffer > 1<<20:
		return errors.New("-read-buffer: want 128 bytes to 1 MiB")
	case !plainName(c.ChannelPrefix) || !plainName(c.EventName) || c.EventName == "":
		return errors.New("-channel-prefix and -event may use only letters, digits and _-=@,.;")
	case !plainName(c.AppID) || !plainName(c.Key) || c.AppID == "" || c.Key == "":
		return errors.New("-app-id and -app-key may use only letters, digits and _-=@,.; (they go unescaped into URLs)")
	}
	if recs := int64(c.Sockets) * int64((c.Events+c.Channels-1)/c.Channels); recs > maxRecords {
		return fmt.Errorf("-n %d × -events %d ÷ -c %d is %d receipts to record; the tool keeps at most %d: lower -events or -n",
			c.Sockets, c.Events, c.Channels, recs, maxRecords)
	}
	return nil
}

// checkLoopback refuses an address that is not host:port on a loopback
// address. Names other than localhost are refused rather than resolved.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: bad port", addr)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: fizz-bench only loads servers on this machine (127.0.0.0/8, ::1, localhost)", addr)
	}
	return nil
}

// plainName reports whether s needs no escaping in JSON or a URL and is
// valid in a Pusher channel or event name.
func plainName(s string) bool {
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-=@,.;", r)
		if !ok {
			return false
		}
	}
	return true
}

// checkFileLimit refuses a socket count the process cannot open. The Go
// runtime has already raised the soft limit to the hard one at start-up.
func checkFileLimit(sockets, extra int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	need := uint64(sockets + extra + spareFiles)
	if need > lim.Cur {
		return fmt.Errorf("-n %d needs about %d open files (the sockets, %d HTTP connections and %d spare), "+
			"but this process may open %d (RLIMIT_NOFILE soft %d, hard %d): raise it (ulimit -n) or lower -n to %d at most; "+
			"the server needs as many again in its own process",
			sockets, need, extra, spareFiles, lim.Cur, lim.Cur, lim.Max, max(0, int(lim.Cur)-extra-spareFiles))
	}
	return nil
}

const usage = `fizz-bench loads a Pusher Channels server (Fizz, or the fixtures in bench/) on
this machine: it opens -n WebSocket connections spread over -targets and -c
channels, triggers events through the signed HTTP API and reports connect
rate, deliveries per second, end-to-end latency, fan-out time, missing and
duplicate deliveries and, with -pid, the server's CPU time per delivery and
RSS per socket.

Examples:
  fizz-bench -targets 127.0.0.1:8080 -n 10000 -events 200 -pid $(pgrep -n fizz)
  fizz-bench -targets 127.0.0.1:8080,127.0.0.1:8081 -n 1000 -c 10 -rate 50 -duration 10s

Flags:
`
