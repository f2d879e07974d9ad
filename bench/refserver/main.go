// Command refserver is a benchmark fixture, not part of Fizz: a minimal Go
// Pusher fan-out server (package bench/fanout) that fizz-bench can drive in
// the same run as Fizz, to compare CPU time per delivery against the bare
// minimum of work.
//
//	go run ./bench/refserver -mode coalesce -addr 127.0.0.1:9100
//	go run ./bench/refserver -mode frame    -addr 127.0.0.1:9101
//
// -mode coalesce writes everything a socket has queued with one write call;
// -mode frame writes each frame with its own call. It serves public channels
// only and does not check the HTTP API signature. SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fizz-server/fizz/bench/fanout"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "refserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("refserver", flag.ContinueOnError)
	modeFlag := fs.String("mode", "coalesce", "writer mode: coalesce (one write per batch) or frame (one write per frame)")
	addr := fs.String("addr", "127.0.0.1:9100", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mode, err := fanout.ParseMode(*modeFlag)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := fanout.New(mode)
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "refserver: %s mode on %s (pid %d)\n", mode, ln.Addr(), os.Getpid())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Shutdown does not wait for hijacked (WebSocket) connections; Close does.
	err = hs.Shutdown(shutdown)
	srv.Close()
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return err
}
