package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK      = 0
	exitError   = 1 // bad flags, or the run could not start
	exitFlags   = 2
	exitLossage = 3 // the run completed but a delivery was missing or duplicated
)

func main() {
	if os.Getenv(senderEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := runSender(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain runs the tool and returns its exit status.
func runMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintln(stderr, "fizz-bench:", err)
		return exitFlags
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), cfg.Timeout, errTimeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep, err := execute(ctx, &cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "fizz-bench:", err)
		return exitError
	}
	if cfg.JSON {
		if err := rep.writeJSON(stdout); err != nil {
			fmt.Fprintln(stderr, "fizz-bench:", err)
			return exitError
		}
	} else {
		rep.writeTable(stdout)
	}
	if rep.failed() {
		return exitLossage
	}
	return exitOK
}
