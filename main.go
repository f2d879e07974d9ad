// Command fizz is a self-hosted real-time server that speaks the Pusher
// Channels protocol 7: pusher-js, Laravel Echo and the Pusher server SDKs
// work with it unchanged.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"go.uber.org/fx"

	"github.com/fizz-server/fizz/app"
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
	fx.New(app.Options(cfg, log)).Run()
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
