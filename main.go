// Command fizz is a self-hosted real-time server that speaks the Pusher
// Channels protocol 7: pusher-js, Laravel Echo and the Pusher server SDKs
// work with it unchanged.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/server"
)

func main() {
	cfg, err := app.Load(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stdout, err)
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fizz: "+err.Error())
		os.Exit(2)
	}
	log := app.NewLogger(cfg.Log, os.Stderr, isTerminal(os.Stderr))
	if cfg.UsesDefaultCredentials() {
		log.Warn("DEFAULT CREDENTIALS IN USE: app-id / app-key / app-secret are public; set FIZZ_APP_ID, FIZZ_APP_KEY and FIZZ_APP_SECRET (or a config file) before exposing this server")
	}
	os.Exit(run(fx.New(app.Options(cfg, log))))
}

// run starts a, waits for a signal and stops a; it returns the exit
// status: 2 for a port that is busy (one line naming its setting), 1 for
// any other failure.
func run(a *fx.App) int {
	if err := a.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "fizz: "+err.Error())
		return 1
	}
	start, cancel := context.WithTimeout(context.Background(), a.StartTimeout())
	defer cancel()
	if err := a.Start(start); err != nil {
		var le *server.ListenError
		if errors.As(err, &le) && le.InUse() {
			fmt.Fprintln(os.Stderr, "fizz: "+le.Error())
			return 2
		}
		fmt.Fprintln(os.Stderr, "fizz: "+err.Error())
		return 1
	}
	sig := <-a.Wait()
	stop, cancelStop := context.WithTimeout(context.Background(), a.StopTimeout())
	defer cancelStop()
	if err := a.Stop(stop); err != nil {
		fmt.Fprintln(os.Stderr, "fizz: stop: "+err.Error())
		return 1
	}
	return sig.ExitCode
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
