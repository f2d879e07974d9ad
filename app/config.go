package app

import (
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
