package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/bench/fanout"
)

// serveFixture runs the reference fan-out server on a loopback port.
func serveFixture(t *testing.T, mode fanout.Mode) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := fanout.New(mode)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(ln) // ErrServerClosed once the test ends
	}()
	t.Cleanup(func() {
		_ = hs.Close() // the test is over; errors do not matter
		srv.Close()
		<-served
	})
	return ln.Addr().String()
}

func testConfig(t *testing.T, args ...string) config {
	t.Helper()
	cfg, err := parseFlags(args, &bytes.Buffer{})
	require.NoError(t, err)
	return cfg
}

func TestRunAgainstFixture(t *testing.T) {
	coalesce := serveFixture(t, fanout.Coalesce)
	frame := serveFixture(t, fanout.Frame)
	pid := "-pid=" + strconv.Itoa(os.Getpid())
	tests := []struct {
		name string
		give []string
	}{
		{name: "rate 0", give: []string{"-targets", coalesce, "-n", "40", "-c", "3", "-events", "30", "-window", "4", pid}},
		{name: "one at a time", give: []string{"-targets", frame, "-n", "20", "-events", "10", "-window", "1"}},
		{name: "open loop", give: []string{"-targets", coalesce, "-n", "20", "-c", "2", "-events", "20", "-rate", "200"}},
		{name: "source addresses", give: []string{"-targets", coalesce, "-n", "20", "-c", "1", "-events", "10", "-sources", "3"}},
		{name: "triggers from a process of their own", give: []string{"-targets", coalesce, "-n", "20", "-c", "2", "-events", "30", "-trigger-process"}},
		{name: "open loop from a process of their own", give: []string{"-targets", frame, "-n", "10", "-events", "20", "-rate", "200", "-trigger-process"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, append(tt.give, "-settle", "0", "-timeout", "20s")...)
			rep, err := execute(context.Background(), &cfg, &bytes.Buffer{})
			require.NoError(t, err)
			assert.Equal(t, cfg.Sockets, rep.Connect.Connected)
			assert.Equal(t, cfg.Sockets, rep.Subscribe.Subscribed)
			assert.Equal(t, cfg.Events, rep.Events.Triggered)
			assert.Zero(t, rep.Events.Failed, rep.Events.FirstError)
			d := rep.Delivery
			assert.Equal(t, int64(cfg.Sockets*cfg.Events/cfg.Channels), d.Expected)
			assert.Equal(t, d.Expected, d.Delivered)
			assert.Zero(t, d.Missing+d.Duplicates+d.Unexpected)
			assert.Positive(t, d.PerSecond)
			assert.Positive(t, rep.Latency.Max)
			assert.False(t, rep.failed())
			if cfg.TriggerProcess {
				assert.Contains(t, strings.Join(rep.Notes, "\n"), "process of their own", "the sender process ran")
			}
		})
	}
}

func TestTwoNodesNeedTheirOwnEvents(t *testing.T) {
	// Two unconnected fixtures stand in for a cluster whose nodes do not
	// share events: an event triggered on one never reaches the sockets of
	// the other, and the tool says so.
	a, b := serveFixture(t, fanout.Coalesce), serveFixture(t, fanout.Coalesce)
	cfg := testConfig(t, "-targets", a+","+b, "-n", "10", "-events", "4", "-settle", "0", "-drain", "300ms")
	rep, err := execute(context.Background(), &cfg, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, int64(20), rep.Delivery.Missing, "5 sockets on the second node miss 4 events")
	assert.Equal(t, 5, rep.Delivery.SocketsMissing)
	assert.Equal(t, 4, rep.Events.Triggered)
	assert.True(t, rep.failed())
}

func TestReportOutputs(t *testing.T) {
	addr := serveFixture(t, fanout.Coalesce)
	var out, errs bytes.Buffer
	status := runMain([]string{"-targets", addr, "-n", "5", "-events", "5", "-settle", "0", "-json"}, &out, &errs)
	require.Equal(t, exitOK, status, errs.String())
	var v map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &v))
	assert.Contains(t, v, "delivery")
	assert.NotContains(t, out.String(), "app-secret", "the secret is never printed")

	out.Reset()
	status = runMain([]string{"-targets", addr, "-n", "5", "-events", "5", "-settle", "0"}, &out, &errs)
	require.Equal(t, exitOK, status, errs.String())
	assert.True(t, strings.Contains(out.String(), "deliveries   25 of 25"), out.String())
}

func TestRefusesWhenNothingListens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cfg := testConfig(t, "-targets", addr, "-n", "3", "-events", "1")
	_, err = execute(context.Background(), &cfg, &bytes.Buffer{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no connection opened")
}

func TestTimeoutCutsTheRunShort(t *testing.T) {
	addr := serveFixture(t, fanout.Coalesce)
	cfg := testConfig(t, "-targets", addr, "-n", "5", "-events", "1000", "-rate", "10", "-settle", "0")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 500*time.Millisecond, errTimeout)
	defer cancel()
	start := time.Now()
	rep, err := execute(ctx, &cfg, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Less(t, rep.Events.Triggered, 1000)
	assert.NotEmpty(t, rep.Notes)
}
