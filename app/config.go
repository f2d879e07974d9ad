package app

import (
	"slices"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/server"
	"github.com/fizz-server/fizz/modules/webhooks"
	"github.com/fizz-server/fizz/scaling"
)

// Config is everything a Fizz node is started with. Load builds it; each
// module is given only its own part by Options.
type Config struct {
	Server   server.Config
	Scaling  scaling.Config
	Apps     []apps.App
	Metrics  MetricsConfig
	Log      LogConfig
	Webhooks webhooks.Config

	// loaded is set by Load, and defaultCredentials then says whether an
	// app's key or secret came from the defaults (UsesDefaultCredentials).
	loaded             bool
	defaultCredentials bool
}

// MetricsConfig is the Prometheus listener.
type MetricsConfig struct {
	Host string
	Port int // 0 turns the listener off
	// PortSetting names where Port came from; empty for the default
	// (stats.Config.PortSetting).
	PortSetting string
}

// LogConfig shapes the structured log.
type LogConfig struct {
	Format string // "text", "json", or "" for text on a terminal and JSON otherwise
	Level  string // "debug", "info", "warn" or "error"
	Debug  bool   // log every frame in and out
}

// Defaults is the configuration Fizz runs with when nothing is set: one node
// on 0.0.0.0:8080, no Redis, and the single app app-id / app-key / app-secret.
func Defaults() Config {
	var c Config
	resetRows(settings, &c, false)
	return c
}

// defaultApp is the app configured from the environment before any variable
// is read.
func defaultApp() apps.App {
	var a apps.App
	resetRows(appSettings, &a, false)
	return a
}

// UsesDefaultCredentials reports whether an app runs with the well-known
// key app-key or secret app-secret because nobody set them: anyone can
// sign requests with those. (Set explicitly, even to these values, they
// are the operator's choice and draw no warning.) A Config built by hand,
// not by Load, is judged by its values.
func (c Config) UsesDefaultCredentials() bool {
	if c.loaded {
		return c.defaultCredentials
	}
	def := defaultApp()
	return slices.ContainsFunc(c.Apps, func(a apps.App) bool { return a.Key == def.Key || a.Secret == def.Secret })
}
