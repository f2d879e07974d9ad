package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"

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
	Host        string
	Port        int    // 0 turns the listener off
	PortSetting string // where Port came from; empty for the default (stats.Config.PortSetting)
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

// UsesDefaultCredentials reports whether an app runs with the well-known key
// app-key or secret app-secret because nobody set them: anyone can sign
// requests with those. (Set explicitly, even to these values, they draw no
// warning.) A Config not built by Load is judged by its values.
func (c Config) UsesDefaultCredentials() bool {
	if c.loaded {
		return c.defaultCredentials
	}
	def := Defaults().Apps[0]
	return slices.ContainsFunc(c.Apps, func(a apps.App) bool { return a.Key == def.Key || a.Secret == def.Secret })
}

// Load builds a node's configuration from its command line (args is
// os.Args[1:]) and environment (getenv is os.Getenv, or a map in tests); it
// never reads the process's own. Each layer overrides the one before:
// Defaults, the YAML file named by --config (else FIZZ_CONFIG, else
// REVERB_CONFIG), the environment, the flags. Validate then checks the
// result: a bad value is never replaced by a default.
//
// Every error is one line naming the bad setting as the operator wrote it:
// the flag, the variable (REVERB_SERVER_PORT if the value came from there),
// or file:line and the key. --help returns an error that wraps flag.ErrHelp,
// with the usage text as its message.
//
// An unset or empty FIZZ_X falls back to REVERB_X. REDIS_URL sets the Redis
// URL, else Laravel's REDIS_HOST, REDIS_PORT, REDIS_USERNAME, REDIS_PASSWORD
// and REDIS_DB build it ("null" is unset there). FIZZ_DEBUG or --debug also
// sets the log level to debug.
//
// A file's app must give its id, key and secret; the limits it leaves out
// take the defaults. The FIZZ_APP_* variables describe the environment's
// app. With no apps in the file it is the only one, the default app with the
// variables applied. Otherwise the variables, if any is set, apply to the
// app whose id is FIZZ_APP_ID (else app-id); with no such app FIZZ_APP_KEY
// adds one after the file's, and without it Load fails, naming the first
// variable set. The app's webhooks are FIZZ_APP_WEBHOOKS's (a JSON array of
// the file's webhook objects), then one for every event at
// FIZZ_APP_WEBHOOK_URL; either replaces a file app's.
func Load(args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	given, err := parseArgs(args)
	if err != nil {
		return Config{}, err
	}
	l := &loader{cfg: Defaults(), getenv: getenv, flags: given, sources: map[string]string{}}
	env := func() error { return applyRows(l, settings, &l.cfg, "", l.lookup) } // the node's; Redis's and the app's follow
	flags := func() error { return applyRows(l, settings, &l.cfg, "", l.flagValue) }
	for _, layer := range []func() error{l.loadFile, env, l.loadRedisEnv, l.loadAppEnv, flags} {
		if err := layer(); err != nil {
			return Config{}, err
		}
	}
	if l.cfg.Log.Debug {
		l.cfg.Log.Level = "debug"
	}
	if err := l.rename(l.cfg.Validate()); err != nil {
		return Config{}, err
	}
	// A busy port names its setting; the defaults' names stay empty, so
	// that the default metrics port may give way to another node's.
	l.cfg.Server.PortSetting, l.cfg.Metrics.PortSetting = l.sources["server.port"], l.sources["metrics.port"]
	l.cfg.loaded = true
	if s := l.cfg.Server; s.TLSCert != "" {
		// A bad certificate stops start-up here, with exit 2, not at the first handshake.
		if _, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey); err != nil {
			return Config{}, fmt.Errorf("FIZZ_TLS_CERT / FIZZ_TLS_KEY: %s", strings.Join(strings.Fields(err.Error()), " "))
		}
	}
	return l.cfg, nil
}

// loader carries the configuration through the layers, and where each
// setting was last set, so that errors name what the operator wrote.
type loader struct {
	cfg        Config
	getenv     func(string) string
	flags      map[string][2]string // the flags given: by variable suffix, the flag and its value
	sources    map[string]string    // setting key → "--port", "REVERB_SERVER_PORT", "fizz.yaml:3: server.port"
	file       string               // the config file's path
	shape, bad error                // the file's first problem with its shape, which comes before any bad value
}

// apply sets the row s of o to raw, which source gave, and records source
// for the setting at key. A value set whole forgets where its parts came
// from (FIZZ_APP_WEBHOOKS replaces a file app's webhooks). A problem inside
// the value is named inside source (FIZZ_APP_WEBHOOKS[1].url).
func apply[O any](l *loader, o *O, s setting[O], key, source, raw string) error {
	if err := s.set(o, raw); err != nil {
		return within(source, err)
	}
	for k := range l.sources {
		if strings.HasPrefix(k, key+"[") || strings.HasPrefix(k, key+".") {
			delete(l.sources, k)
		}
	}
	l.sources[key] = source
	return nil
}

// rename replaces the setting key in a Validate error by its source: that of
// the nearest enclosing setting that has one, for an unset field of a file
// app or a part of a value set whole (apps[0].webhooks[1].url from
// FIZZ_APP_WEBHOOKS), with the path inside it.
func (l *loader) rename(err error) error {
	if se, ok := errors.AsType[*settingError](err); ok {
		for key := se.setting; key != ""; key = key[:max(strings.LastIndexAny(key, ".["), 0)] {
			if src, ok := l.sources[key]; ok {
				return fmt.Errorf("%s%s: %s", src, se.setting[len(key):], se.msg)
			}
		}
	}
	return err
}
