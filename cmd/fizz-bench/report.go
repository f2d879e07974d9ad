package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// report is what a run measured. Durations are in the unit their name says.
type report struct {
	Config    *config         `json:"config"`
	Connect   connectReport   `json:"connect"`
	Subscribe subscribeReport `json:"subscribe"`
	Events    eventsReport    `json:"events"`
	Delivery  deliveryReport  `json:"delivery"`
	Latency   latencyReport   `json:"latency_us"`
	Fanout    fanoutReport    `json:"fanout_us"`
	Server    *serverReport   `json:"server,omitempty"`
	Tool      toolReport      `json:"tool"`
	Notes     []string        `json:"notes,omitempty"`

	// By seq, for -events-csv: first and last receipt (µs since the
	// epoch, plus one) and the number of receipts.
	first, last []uint32
	receipts    []int
}

type connectReport struct {
	Connected  int     `json:"connected"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
}

type subscribeReport struct {
	Subscribed int     `json:"subscribed"`
	Failed     int     `json:"failed"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
}

type eventsReport struct {
	Triggered      int     `json:"triggered"`
	Failed         int     `json:"failed"`
	FirstError     string  `json:"first_error,omitempty"`
	WindowTimeouts int     `json:"window_timeouts"`
	MaxLagMs       float64 `json:"max_trigger_lag_ms"`
}

type deliveryReport struct {
	Expected       int64       `json:"expected"`
	Delivered      int64       `json:"delivered"`
	Missing        int64       `json:"missing"`
	SocketsMissing int         `json:"sockets_missing"`
	Duplicates     int64       `json:"duplicates"`
	Unexpected     int64       `json:"unexpected"`
	Seconds        float64     `json:"seconds"`
	PerSecond      float64     `json:"per_second"`
	PusherErrors   int         `json:"pusher_errors"`
	LastError      string      `json:"last_pusher_error,omitempty"`
	ClosedByServer map[int]int `json:"closed_by_server,omitempty"`
	Pings          int         `json:"pings_answered"`
}

type latencyReport struct {
	P50 uint32 `json:"p50"`
	P95 uint32 `json:"p95"`
	P99 uint32 `json:"p99"`
	Max uint32 `json:"max"`
}

type fanoutReport struct {
	Median uint32 `json:"median"`
	P99    uint32 `json:"p99"`
	Max    uint32 `json:"max"`
}

type serverReport struct {
	RSSBefore      int64   `json:"rss_before_bytes"`
	RSSSubscribed  int64   `json:"rss_subscribed_bytes"`
	RSSAfter       int64   `json:"rss_after_events_bytes"`
	RSSPerSocket   float64 `json:"rss_per_socket_bytes"`
	CPU            float64 `json:"cpu_seconds"`
	CPUPerDelivery float64 `json:"cpu_us_per_delivery"`
	// Write syscalls during the events phase, and deliveries per write (how
	// well frames were coalesced); 0 when /proc/PID/io was unreadable.
	Writes             int64   `json:"write_syscalls"`
	DeliveriesPerWrite float64 `json:"deliveries_per_write"`
}

type toolReport struct {
	CPU            float64 `json:"cpu_seconds"`
	CPUPerDelivery float64 `json:"cpu_us_per_delivery"`
	RSS            int64   `json:"rss_bytes"`
}

// analyse fills the delivery, latency and fan-out figures from the
// sockets' records. The readers must have exited.
func (rep *report) analyse(r *run, tr *tracker) {
	cfg := r.cfg
	rep.Events = eventsReport{
		Triggered:      tr.sent,
		Failed:         tr.failures,
		FirstError:     tr.firstError,
		WindowTimeouts: tr.windowTimeouts,
		MaxLagMs:       float64(tr.maxLag.Microseconds()) / 1000,
	}
	first := make([]uint32, cfg.Events)
	last := make([]uint32, cfg.Events)
	receipts := make([]int, cfg.Events)
	rep.first, rep.last, rep.receipts = first, last, receipts
	for i := range first {
		first[i] = math.MaxUint32
	}
	var lats []uint32
	d := &rep.Delivery
	for _, s := range r.sockets {
		if s == nil {
			continue
		}
		d.Duplicates += int64(s.dup)
		d.Unexpected += int64(s.unexpected)
		d.PusherErrors += s.pusherErrors
		d.Pings += s.pings
		if s.lastError != "" {
			d.LastError = s.lastError
		}
		if s.closeCode != 0 && s.closeCode != 1000 {
			if d.ClosedByServer == nil {
				d.ClosedByServer = map[int]int{}
			}
			d.ClosedByServer[s.closeCode]++
		}
		if !s.subscribed {
			continue
		}
		missed := false
		for k, rec := range s.recv {
			seq := k*cfg.Channels + s.channel
			if seq >= tr.sent || tr.failed[seq] {
				// Not triggered, or the trigger failed: a receipt still counts.
				if rec.at == 0 {
					continue
				}
			} else {
				d.Expected++
			}
			if rec.at == 0 {
				d.Missing++
				missed = true
				continue
			}
			d.Delivered++
			lats = append(lats, rec.lat)
			receipts[seq]++
			first[seq] = min(first[seq], rec.at)
			last[seq] = max(last[seq], rec.at)
		}
		if missed {
			d.SocketsMissing++
		}
	}
	// From the first send to the last receipt.
	var lastAt uint32
	var spreads []uint32
	for seq := range tr.sent {
		if first[seq] == math.MaxUint32 {
			continue
		}
		lastAt = max(lastAt, last[seq])
		spreads = append(spreads, last[seq]-first[seq])
	}
	if tr.sent > 0 && lastAt > 0 {
		span := r.epoch.Add(time.Duration(lastAt-1) * time.Microsecond).Sub(tr.sentAt[0])
		d.Seconds = span.Seconds()
		if span > 0 {
			d.PerSecond = float64(d.Delivered) / span.Seconds()
		}
	}
	slices.Sort(lats)
	rep.Latency = latencyReport{P50: pct(lats, 50), P95: pct(lats, 95), P99: pct(lats, 99), Max: pct(lats, 100)}
	slices.Sort(spreads)
	rep.Fanout = fanoutReport{Median: pct(spreads, 50), P99: pct(spreads, 99), Max: pct(spreads, 100)}

	if rep.Server != nil && d.Delivered > 0 {
		rep.Server.CPUPerDelivery = rep.Server.CPU * 1e6 / float64(d.Delivered)
		if rep.Server.Writes > 0 {
			rep.Server.DeliveriesPerWrite = float64(d.Delivered) / float64(rep.Server.Writes)
		}
	}
	if d.Delivered > 0 {
		rep.Tool.CPUPerDelivery = rep.Tool.CPU * 1e6 / float64(d.Delivered)
	}
	if rep.Server != nil && rep.Server.CPU > 0 && rep.Server.CPU < 0.2 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the server used only %.2f s of CPU; /proc counts in 10 ms ticks, so CPU per delivery is rough: trigger more events", rep.Server.CPU))
	}
}

// writeEventsCSV writes one line per triggered event.
func (rep *report) writeEventsCSV(path string, r *run, tr *tracker) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "seq,sent_ms,first_ms,last_ms,receipts,failed")
	t0 := tr.sentAt[0]
	ms := func(at uint32) string {
		if at == 0 || at == math.MaxUint32 {
			return ""
		}
		d := r.epoch.Add(time.Duration(at-1) * time.Microsecond).Sub(t0)
		return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 3, 64)
	}
	for seq := range tr.sent {
		fmt.Fprintf(w, "%d,%.3f,%s,%s,%d,%t\n", seq, float64(tr.sentAt[seq].Sub(t0).Microseconds())/1000,
			ms(rep.first[seq]), ms(rep.last[seq]), rep.receipts[seq], tr.failed[seq])
	}
	if err := w.Flush(); err != nil {
		_ = f.Close() // the write error is the one to report
		return err
	}
	return f.Close()
}

// pct returns the p-th percentile (nearest rank) of sorted values.
func pct(sorted []uint32, p float64) uint32 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// failed reports whether a delivery was missing or duplicated.
func (rep *report) failed() bool {
	return rep.Delivery.Missing > 0 || rep.Delivery.Duplicates > 0 || rep.Delivery.Unexpected > 0
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// writeTable prints the report for people.
func (rep *report) writeTable(w io.Writer) {
	cfg := rep.Config
	mode := fmt.Sprintf("rate 0 (at most %d HTTP triggers and %d events in flight)", cfg.Concurrency, cfg.Window)
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop at %g events/s", cfg.Rate)
	}
	row := func(name, format string, args ...any) {
		fmt.Fprintf(w, "  %-12s "+format+"\n", append([]any{name}, args...)...)
	}
	fmt.Fprintf(w, "fizz-bench: %d sockets on %s, %d channel(s), %s, %d-byte events\n",
		cfg.Sockets, strings.Join(cfg.Targets, ","), cfg.Channels, mode, cfg.Payload)
	c := rep.Connect
	row("connect", "%d sockets in %.2f s: %.0f/s, %d failed%s", c.Connected, c.Seconds, c.PerSecond, c.Failed, reason(c.FirstError))
	s := rep.Subscribe
	row("subscribe", "%d in %.2f s, %d failed%s", s.Subscribed, s.Seconds, s.Failed, reason(s.FirstError))
	e := rep.Events
	lag := ""
	if cfg.Rate > 0 {
		lag = fmt.Sprintf(", trigger lag at most %.1f ms", e.MaxLagMs)
	}
	row("events", "%d triggered, %d failed%s, %d window timeouts%s", e.Triggered, e.Failed, reason(e.FirstError), e.WindowTimeouts, lag)
	d := rep.Delivery
	row("deliveries", "%d of %d in %.2f s: %.0f/s", d.Delivered, d.Expected, d.Seconds, d.PerSecond)
	row("lost", "%d missing (on %d sockets), %d duplicate, %d unexpected", d.Missing, d.SocketsMissing, d.Duplicates, d.Unexpected)
	if d.PusherErrors > 0 || len(d.ClosedByServer) > 0 {
		row("errors", "%d pusher:error frames%s; closed by the server: %s", d.PusherErrors, reason(d.LastError), closeCodes(d.ClosedByServer))
	}
	l := rep.Latency
	row("latency", "p50 %s  p95 %s  p99 %s  max %s", us(l.P50), us(l.P95), us(l.P99), us(l.Max))
	f := rep.Fanout
	row("fan-out", "median %s  p99 %s  max %s (first to last receipt of one event)", us(f.Median), us(f.P99), us(f.Max))
	if sv := rep.Server; sv != nil {
		row("server CPU", "%.2f s: %.2f µs per delivery", sv.CPU, sv.CPUPerDelivery)
		if sv.Writes > 0 {
			row("server I/O", "%d write calls: %.1f deliveries per write (HTTP answers included)", sv.Writes, sv.DeliveriesPerWrite)
		}
		row("server RSS", "%s before, %s subscribed, %s after events: %.1f KB per socket",
			mb(sv.RSSBefore), mb(sv.RSSSubscribed), mb(sv.RSSAfter), sv.RSSPerSocket/1024)
	}
	row("tool", "CPU %.2f s: %.2f µs per delivery; RSS %s (fizz-bench itself, which shares the machine)",
		rep.Tool.CPU, rep.Tool.CPUPerDelivery, mb(rep.Tool.RSS))
	for _, n := range rep.Notes {
		row("note", "%s", n)
	}
}

func reason(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func closeCodes(m map[int]int) string {
	if len(m) == 0 {
		return "none"
	}
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d×%d", m[c], c)
	}
	return strings.Join(parts, ", ")
}

func us(v uint32) string {
	if v >= 10000 {
		return fmt.Sprintf("%.1f ms", float64(v)/1000)
	}
	if v >= 1000 {
		return fmt.Sprintf("%.2f ms", float64(v)/1000)
	}
	return fmt.Sprintf("%d µs", v)
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }
