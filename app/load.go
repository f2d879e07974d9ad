package app

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/server"
	"github.com/fizz-server/fizz/modules/webhooks"
	"github.com/fizz-server/fizz/scaling"
)

// usage is the text of --help.
const usage = `Usage: fizz [start] [--host H] [--port P] [--path PREFIX] [--config FILE] [--debug]

Starts a Fizz node, a Pusher-protocol WebSocket server.

Flags:
  --host H         listen address (FIZZ_SERVER_HOST, default 0.0.0.0)
  --port P         listen port (FIZZ_SERVER_PORT, default 8080)
  --path PREFIX    prefix before every route, e.g. /ws (FIZZ_SERVER_PATH)
  --config FILE    YAML config file, for several apps (FIZZ_CONFIG)
  --debug          log every frame in and out (FIZZ_DEBUG)
  -h, --help       print this text

Flags override environment variables, which override the config file.
Where a FIZZ_ variable is unset, the REVERB_ variable of the same suffix is
read, so a Laravel Reverb .env works unchanged.`

// Defaults is the configuration Fizz runs with when nothing is set: one node
// on 0.0.0.0:8080, no Redis, and the single app app-id / app-key / app-secret.
func Defaults() Config {
	return Config{
		Server: server.Config{
			Host:           "0.0.0.0",
			Port:           8080,
			MaxRequestSize: 102_400,
			ShutdownGrace:  3 * time.Second,
		},
		Scaling: scaling.Config{
			Channel:  "fizz",
			RedisURL: "redis://127.0.0.1:6379/0",
			Timeout:  2 * time.Second,
			Lease:    scaling.DefaultLease,
		},
		Apps:    []apps.App{defaultApp()},
		Metrics: MetricsConfig{Host: "127.0.0.1", Port: 9601},
		Log:     LogConfig{Level: "info"},
		Webhooks: webhooks.Config{
			LeaveDelay:  webhooks.DefaultLeaveDelay,
			Timeout:     webhooks.DefaultTimeout,
			RetryFor:    webhooks.DefaultRetryFor,
			BatchWindow: webhooks.DefaultBatchWindow,
		},
	}
}

// defaultApp is the app configured from the environment before any variable
// is read, and the starting point of every app in the config file.
func defaultApp() apps.App {
	return apps.App{
		ID:                     "app-id",
		Key:                    "app-key",
		Secret:                 "app-secret",
		PingInterval:           apps.DefaultPingInterval,
		ActivityTimeout:        apps.DefaultActivityTimeout,
		MaxMessageSize:         apps.DefaultMaxMessageSize,
		AllowedOrigins:         []string{"*"},
		AcceptClientEventsFrom: apps.ClientEventsMembers,
		MaxPresenceMembers:     apps.DefaultMaxPresenceMembers,
		MaxPresenceUserInfo:    apps.DefaultMaxPresenceUserInfo,
		ClientEventsPerSecond:  apps.DefaultClientEventsPerSecond,
		SigninTimeout:          apps.DefaultSigninTimeout,
	}
}

// Load builds the configuration of a node from its command line (args is
// os.Args[1:]) and its environment (getenv is os.Getenv, or a map in tests).
// The layers are applied in this order, each overriding the one before:
// Defaults, the YAML file named by --config (else FIZZ_CONFIG, else
// REVERB_CONFIG), the environment, the flags. The result is then checked by
// Validate.
//
// Every error is one line that names the bad setting as the operator wrote
// it: the flag, the variable (REVERB_SERVER_PORT when that is where the value
// came from), or file:line and the key in the config file. --help returns an
// error that wraps flag.ErrHelp and whose message is the usage text.
//
// Environment variables are read as INTERFACE.md lists them. For every
// FIZZ_X variable that is unset or empty, REVERB_X is read instead. REDIS_URL
// sets the Redis URL; when it is unset and any of REDIS_HOST, REDIS_PORT,
// REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB is set, the URL is built from them
// (defaults 127.0.0.1, 6379, no user, no password, db 0), and a value of
// "null" counts as unset there, as in Laravel's .env. FIZZ_DEBUG or --debug
// also sets the log level to debug. FIZZ_APP_SIGNIN_TIMEOUT (signin_timeout
// in the file) is a Go duration such as 30s, or a whole number of seconds as
// FIZZ_APP_PING_INTERVAL is.
//
// In the config file, an app must give its id, key and secret; the limits it
// leaves out take the defaults.
//
// The FIZZ_APP_* variables (or their REVERB_APP_* fallbacks) describe one
// app, the app from the environment:
//   - When the config file lists no apps (or there is no file), that app is
//     the only one: the default app with the set variables applied.
//   - When the file lists apps and no FIZZ_APP_* variable is set, the file's
//     apps are used as they are.
//   - When the file lists apps and some are set, the app's id is FIZZ_APP_ID,
//     or app-id when that is unset. If a file app has that id, the set
//     variables override its fields (the environment beats the file). If not,
//     and FIZZ_APP_KEY is set, one more app is appended after the file's: the
//     default app with the set variables applied. Otherwise Load returns an
//     error naming the first set variable, because it would apply to no app.
//
// The env app's webhooks are those of FIZZ_APP_WEBHOOKS (a JSON array of the
// config file's webhook objects), then one for FIZZ_APP_WEBHOOK_URL, which
// takes every event type. When either is set for a file app, they replace
// that app's webhooks; FIZZ_APP_WEBHOOKS=[] removes them.
//
// Load never reads the process environment or command line itself, and never
// replaces a bad value with a default.
func Load(args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	fl, err := parseArgs(args)
	if err != nil {
		return Config{}, err
	}
	l := &loader{cfg: Defaults(), getenv: getenv, sources: map[string]string{}}

	file, fileSource := fl.config.value, "--config"
	if !fl.config.set {
		fileSource, file = l.lookup("CONFIG")
	}
	fileApps := false
	if file != "" {
		if fileApps, err = l.loadFile(file, fileSource); err != nil {
			return Config{}, err
		}
	}
	if err := l.loadEnv(file, fileApps); err != nil {
		return Config{}, err
	}
	if err := l.loadFlags(fl); err != nil {
		return Config{}, err
	}
	l.cfg.Log.Debug = l.debug
	if l.debug {
		l.cfg.Log.Level = "debug"
	}
	if err := l.cfg.Validate(); err != nil {
		return Config{}, l.rename(err)
	}
	// A busy port names its setting; the defaults' names stay empty, so
	// that the default metrics port may give way to another node's.
	l.cfg.Server.PortSetting = l.sources["server.port"]
	l.cfg.Metrics.PortSetting = l.sources["metrics.port"]
	l.cfg.defaultCredentials = l.defaultCredentials()
	if s := l.cfg.Server; s.TLSCert != "" {
		// A bad or missing certificate stops start-up here, with exit 2,
		// rather than at the first TLS handshake.
		if _, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey); err != nil {
			return Config{}, fmt.Errorf("FIZZ_TLS_CERT / FIZZ_TLS_KEY: %s", oneLine(err.Error()))
		}
	}
	return l.cfg, nil
}

// oneLine folds a multi-line error message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
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
	for _, a := range c.Apps {
		if a.Key == def.Key || a.Secret == def.Secret {
			return true
		}
	}
	return false
}

// defaultCredentials reports whether the env app took its key or secret
// from the defaults. (An app of the config file must give both.)
func (l *loader) defaultCredentials() bool {
	l.cfg.loaded = true
	def := defaultApp()
	for i, a := range l.cfg.Apps {
		_, keySet := l.sources[fmt.Sprintf("apps[%d].key", i)]
		_, secretSet := l.sources[fmt.Sprintf("apps[%d].secret", i)]
		if a.Key == def.Key && !keySet || a.Secret == def.Secret && !secretSet {
			return true
		}
	}
	return false
}

// Validate checks c and returns the first problem it finds as one line that
// starts with the setting: its config-file key (server.port, apps[1].key) or,
// for settings the file has no key for, its variable (FIZZ_TLS_KEY). Load
// renames the setting to the flag, variable or file line it came from.
func (c Config) Validate() error {
	s := c.Server
	if err := checkPort("server.port", s.Port); err != nil {
		return err
	}
	if s.Path != "" && (!strings.HasPrefix(s.Path, "/") || strings.HasSuffix(s.Path, "/")) {
		return invalid("server.path", "%q must be empty or start with / and not end with /", s.Path)
	}
	if s.MaxRequestSize <= 0 {
		return invalid("server.max_request_size", "%d must be more than 0 bytes", s.MaxRequestSize)
	}
	if s.TLSCert != "" && s.TLSKey == "" {
		return invalid("FIZZ_TLS_KEY", "must be set when FIZZ_TLS_CERT is")
	}
	if s.TLSKey != "" && s.TLSCert == "" {
		return invalid("FIZZ_TLS_CERT", "must be set when FIZZ_TLS_KEY is")
	}
	if s.ShutdownGrace < 0 {
		return invalid("FIZZ_SHUTDOWN_GRACE", "%s must not be negative", s.ShutdownGrace)
	}
	if err := c.validateApps(); err != nil {
		return err
	}
	if err := validateScaling(c.Scaling); err != nil {
		return err
	}
	if err := validateWebhookConfig(c.Webhooks); err != nil {
		return err
	}
	if err := checkPort("metrics.port", c.Metrics.Port); err != nil {
		return err
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		return invalid("log.format", "%q is not text or json", c.Log.Format)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return invalid("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	return nil
}

func (c Config) validateApps() error {
	if len(c.Apps) == 0 {
		return invalid("apps", "at least one app is required")
	}
	ids := map[string]int{}
	keys := map[string]int{}
	for i, a := range c.Apps {
		field := func(name string) string { return fmt.Sprintf("apps[%d].%s", i, name) }
		for _, cred := range []struct{ name, value string }{{"id", a.ID}, {"key", a.Key}, {"secret", a.Secret}} {
			if cred.value == "" {
				return invalid(field(cred.name), "must not be empty")
			}
			if strings.TrimSpace(cred.value) != cred.value {
				return invalid(field(cred.name), "has leading or trailing spaces")
			}
		}
		if j, ok := ids[a.ID]; ok {
			return invalid(field("id"), "duplicate id %q (also apps[%d].id)", a.ID, j)
		}
		ids[a.ID] = i
		if j, ok := keys[a.Key]; ok {
			return invalid(field("key"), "duplicate key %q (also apps[%d].key)", a.Key, j)
		}
		keys[a.Key] = i
		if a.PingInterval <= 0 {
			return invalid(field("ping_interval"), "%s must be more than 0 seconds", a.PingInterval)
		}
		if a.ActivityTimeout <= 0 {
			return invalid(field("activity_timeout"), "%s must be more than 0 seconds", a.ActivityTimeout)
		}
		if a.MaxMessageSize <= 0 {
			return invalid(field("max_message_size"), "%d must be more than 0 bytes", a.MaxMessageSize)
		}
		if a.MaxConnections < 0 {
			return invalid(field("max_connections"), "%d must not be negative (0 means no cap)", a.MaxConnections)
		}
		if len(a.AllowedOrigins) == 0 {
			return invalid(field("allowed_origins"), `must list at least one origin ("*" allows all)`)
		}
		for j, o := range a.AllowedOrigins {
			if strings.TrimSpace(o) == "" {
				return invalid(field("allowed_origins"), "entry %d is empty", j+1)
			}
		}
		switch a.AcceptClientEventsFrom {
		case apps.ClientEventsMembers, apps.ClientEventsAll, apps.ClientEventsNone:
		default:
			return invalid(field("accept_client_events_from"), "%q is not members, all or none", a.AcceptClientEventsFrom)
		}
		if a.MaxPresenceMembers <= 0 {
			return invalid(field("max_presence_members"), "%d must be more than 0", a.MaxPresenceMembers)
		}
		if a.MaxPresenceUserInfo <= 0 {
			return invalid(field("max_presence_user_info"), "%d must be more than 0 bytes", a.MaxPresenceUserInfo)
		}
		if a.ClientEventsPerSecond < 0 {
			return invalid(field("client_events_per_second"), "%d must not be negative (0 means no cap)", a.ClientEventsPerSecond)
		}
		if a.SigninTimeout <= 0 {
			return invalid(field("signin_timeout"), "%s must be more than 0", a.SigninTimeout)
		}
		if err := validateWebhooks(i, a.Webhooks); err != nil {
			return err
		}
	}
	return nil
}

// validateScaling checks the cluster settings. The Redis URL is checked only
// when scaling is enabled: a Laravel .env may describe a Redis that Fizz never
// uses.
func validateScaling(s scaling.Config) error {
	if s.Channel == "" {
		return invalid("scaling.channel", "must not be empty")
	}
	if strings.IndexFunc(s.Channel, unicode.IsSpace) >= 0 {
		return invalid("scaling.channel", "%q must not contain spaces", s.Channel)
	}
	if s.Timeout <= 0 {
		return invalid("scaling.timeout", "%s must be more than 0", s.Timeout)
	}
	if s.Lease < 300*time.Millisecond {
		return invalid("scaling.lease", "%s must be at least 300ms", s.Lease)
	}
	if !s.Enabled {
		return nil
	}
	// Messages never quote the URL: it may hold a password.
	u, err := url.Parse(s.RedisURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return invalid("scaling.redis_url", "not a URL: %v", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return invalid("scaling.redis_url", "scheme %q is not redis or rediss", u.Scheme)
	}
	if u.Hostname() == "" {
		return invalid("scaling.redis_url", "has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalid("scaling.redis_url", "port %q is not a port number", p)
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 {
			return invalid("scaling.redis_url", "database %q is not a number", db)
		}
	}
	return nil
}

func checkPort(setting string, port int) error {
	if port < 0 || port > 65535 {
		return invalid(setting, "%d is not a port number (0 to 65535)", port)
	}
	return nil
}

// settingError is a problem with one setting, as Validate reports it.
type settingError struct {
	setting string
	msg     string
}

func (e *settingError) Error() string { return e.setting + ": " + e.msg }

func invalid(setting, format string, args ...any) error {
	return &settingError{setting: setting, msg: fmt.Sprintf(format, args...)}
}

// loader carries the configuration through the layers and remembers where
// each setting was last set, so that errors name the flag, variable or file
// line the operator wrote.
type loader struct {
	cfg     Config
	getenv  func(string) string
	sources map[string]string // setting key → "--port", "REVERB_SERVER_PORT", "fizz.yaml:3: server.port"
	debug   bool
}

// rename replaces the setting key in a Validate error by its source.
func (l *loader) rename(err error) error {
	var se *settingError
	if !errors.As(err, &se) {
		return err
	}
	if src, ok := l.sources[se.setting]; ok {
		return fmt.Errorf("%s: %s", src, se.msg)
	}
	// An unset field of a file app, or a part of a value set as a whole
	// (apps[0].webhooks[1].url from FIZZ_APP_WEBHOOKS): name the nearest
	// enclosing setting that has a source, and the path inside it.
	for i := len(se.setting) - 1; i > 0; i-- {
		if c := se.setting[i]; c != '.' && c != '[' {
			continue
		}
		if src, ok := l.sources[se.setting[:i]]; ok {
			return fmt.Errorf("%s%s: %s", src, se.setting[i:], se.msg)
		}
	}
	return err
}

// apply parses raw into the configuration with set and records source as
// where the setting came from.
func (l *loader) apply(key, source, raw string, set func(*Config, string) error) error {
	if err := set(&l.cfg, raw); err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	l.sources[key] = source
	return nil
}

// lookup returns FIZZ_<suffix> when it is set and not empty, else
// REVERB_<suffix>, with the name of the variable it read.
func (l *loader) lookup(suffix string) (name, value string) {
	for _, prefix := range []string{"FIZZ_", "REVERB_"} {
		if v := l.getenv(prefix + suffix); v != "" {
			return prefix + suffix, v
		}
	}
	return "", ""
}

// setting is one configuration value outside the apps list.
type setting struct {
	key string // the config-file key, or the FIZZ_ variable when the file has none
	env string // suffix after FIZZ_ / REVERB_; "" when read otherwise
	set func(c *Config, raw string) error
}

var settings = []setting{
	{"server.host", "SERVER_HOST", func(c *Config, v string) error { c.Server.Host = strings.TrimSpace(v); return nil }},
	{"server.port", "SERVER_PORT", func(c *Config, v string) (err error) { c.Server.Port, err = parsePort(v); return err }},
	{"server.path", "SERVER_PATH", func(c *Config, v string) error { c.Server.Path = strings.TrimSpace(v); return nil }},
	{"server.max_request_size", "MAX_REQUEST_SIZE", func(c *Config, v string) (err error) {
		c.Server.MaxRequestSize, err = parseInt(v)
		return err
	}},
	{"FIZZ_TLS_CERT", "TLS_CERT", func(c *Config, v string) error { c.Server.TLSCert = v; return nil }},
	{"FIZZ_TLS_KEY", "TLS_KEY", func(c *Config, v string) error { c.Server.TLSKey = v; return nil }},
	{"FIZZ_SHUTDOWN_GRACE", "SHUTDOWN_GRACE", func(c *Config, v string) (err error) {
		c.Server.ShutdownGrace, err = parseDuration(v)
		return err
	}},
	{"scaling.enabled", "SCALING_ENABLED", func(c *Config, v string) (err error) { c.Scaling.Enabled, err = parseBool(v); return err }},
	{"scaling.channel", "SCALING_CHANNEL", func(c *Config, v string) error { c.Scaling.Channel = strings.TrimSpace(v); return nil }},
	{"scaling.redis_url", "", setRedisURL}, // REDIS_URL, see loadRedisEnv
	{"scaling.timeout", "SCALING_TIMEOUT", func(c *Config, v string) (err error) { c.Scaling.Timeout, err = parseDuration(v); return err }},
	{"scaling.lease", "SCALING_LEASE", func(c *Config, v string) (err error) { c.Scaling.Lease, err = parseDuration(v); return err }},
	{"metrics.host", "METRICS_HOST", func(c *Config, v string) error { c.Metrics.Host = strings.TrimSpace(v); return nil }},
	{"metrics.port", "METRICS_PORT", func(c *Config, v string) (err error) { c.Metrics.Port, err = parsePort(v); return err }},
	{"log.format", "LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{"log.level", "LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{"webhooks.leave_delay", "WEBHOOK_LEAVE_DELAY", func(c *Config, v string) (err error) {
		c.Webhooks.LeaveDelay, err = parseDuration(v)
		return err
	}},
	{"webhooks.timeout", "WEBHOOK_TIMEOUT", func(c *Config, v string) (err error) { c.Webhooks.Timeout, err = parseDuration(v); return err }},
	{"webhooks.retry_for", "WEBHOOK_RETRY_FOR", func(c *Config, v string) (err error) { c.Webhooks.RetryFor, err = parseDuration(v); return err }},
	{"webhooks.batch_window", "WEBHOOK_BATCH_WINDOW", func(c *Config, v string) (err error) {
		c.Webhooks.BatchWindow, err = parseDuration(v)
		return err
	}},
}

func setRedisURL(c *Config, v string) error {
	c.Scaling.RedisURL = strings.TrimSpace(v)
	return nil
}

// appSetting is one field of an app.
type appSetting struct {
	key string // key in a config-file app
	env string // suffix after FIZZ_ / REVERB_
	set func(a *apps.App, raw string) error
}

var appSettings = []appSetting{
	{"id", "APP_ID", func(a *apps.App, v string) error { a.ID = v; return nil }},
	{"key", "APP_KEY", func(a *apps.App, v string) error { a.Key = v; return nil }},
	{"secret", "APP_SECRET", func(a *apps.App, v string) error { a.Secret = v; return nil }},
	{"ping_interval", "APP_PING_INTERVAL", func(a *apps.App, v string) (err error) { a.PingInterval, err = parseSeconds(v); return err }},
	{"activity_timeout", "APP_ACTIVITY_TIMEOUT", func(a *apps.App, v string) (err error) {
		a.ActivityTimeout, err = parseSeconds(v)
		return err
	}},
	{"max_message_size", "APP_MAX_MESSAGE_SIZE", func(a *apps.App, v string) (err error) { a.MaxMessageSize, err = parseInt(v); return err }},
	{"max_connections", "APP_MAX_CONNECTIONS", func(a *apps.App, v string) (err error) { a.MaxConnections, err = parseInt(v); return err }},
	{"allowed_origins", "APP_ALLOWED_ORIGINS", func(a *apps.App, v string) error {
		a.AllowedOrigins = strings.Split(v, ",")
		for i := range a.AllowedOrigins {
			a.AllowedOrigins[i] = strings.TrimSpace(a.AllowedOrigins[i])
		}
		return nil
	}},
	{"accept_client_events_from", "APP_ACCEPT_CLIENT_EVENTS_FROM", func(a *apps.App, v string) error {
		a.AcceptClientEventsFrom = strings.ToLower(strings.TrimSpace(v))
		return nil
	}},
	{"max_presence_members", "APP_MAX_PRESENCE_MEMBERS", func(a *apps.App, v string) (err error) {
		a.MaxPresenceMembers, err = parseInt(v)
		return err
	}},
	{"max_presence_user_info", "APP_MAX_PRESENCE_USER_INFO", func(a *apps.App, v string) (err error) {
		a.MaxPresenceUserInfo, err = parseInt(v)
		return err
	}},
	{"client_events_per_second", "APP_CLIENT_EVENTS_PER_SECOND", func(a *apps.App, v string) (err error) {
		a.ClientEventsPerSecond, err = parseInt(v)
		return err
	}},
	{"webhook_batching", "APP_WEBHOOK_BATCHING", func(a *apps.App, v string) (err error) { a.WebhookBatching, err = parseBool(v); return err }},
	{"subscription_count", "APP_SUBSCRIPTION_COUNT", func(a *apps.App, v string) (err error) {
		a.SubscriptionCount, err = parseBool(v)
		return err
	}},
	{"require_signin", "APP_REQUIRE_SIGNIN", func(a *apps.App, v string) (err error) { a.RequireSignin, err = parseBool(v); return err }},
	{"signin_timeout", "APP_SIGNIN_TIMEOUT", func(a *apps.App, v string) (err error) {
		a.SigninTimeout, err = parseTimeout(v)
		return err
	}},
	// The file lists an app's webhooks under "webhooks" (see loadFileWebhooks);
	// these two are the environment's, and "webhooks" must come first.
	{"webhooks", "APP_WEBHOOKS", func(a *apps.App, v string) (err error) { a.Webhooks, err = parseWebhooks(v); return err }},
	{"webhook_url", "APP_WEBHOOK_URL", func(a *apps.App, v string) error {
		a.Webhooks = append(a.Webhooks, apps.Webhook{URL: strings.TrimSpace(v)})
		return nil
	}},
}

// applyApp applies one app field to l.cfg.Apps[i]. A set function reports a
// problem inside the value (FIZZ_APP_WEBHOOKS[1].url) as a settingError
// whose setting is the path in the value.
func (l *loader) applyApp(i int, s appSetting, source, raw string) error {
	if err := s.set(&l.cfg.Apps[i], raw); err != nil {
		var se *settingError
		if errors.As(err, &se) {
			return fmt.Errorf("%s%s: %s", source, se.setting, se.msg)
		}
		return fmt.Errorf("%s: %w", source, err)
	}
	l.sources[fmt.Sprintf("apps[%d].%s", i, s.key)] = source
	return nil
}

// loadEnv applies the environment. file is the config file's path, for
// messages; fileApps says whether it listed apps.
func (l *loader) loadEnv(file string, fileApps bool) error {
	for _, s := range settings {
		if s.env == "" {
			continue
		}
		if name, v := l.lookup(s.env); name != "" {
			if err := l.apply(s.key, name, v, s.set); err != nil {
				return err
			}
		}
	}
	if err := l.loadRedisEnv(); err != nil {
		return err
	}
	if name, v := l.lookup("DEBUG"); name != "" {
		d, err := parseBool(v)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		l.debug = d
	}
	return l.loadAppEnv(file, fileApps)
}

// loadRedisEnv applies REDIS_URL, or builds the URL from REDIS_HOST and the
// other parts when REDIS_URL is unset and any part is set.
func (l *loader) loadRedisEnv() error {
	const key = "scaling.redis_url"
	if v := l.getenv("REDIS_URL"); v != "" {
		return l.apply(key, "REDIS_URL", v, setRedisURL)
	}
	part := func(name string) string {
		v := l.getenv(name)
		if v == "null" || v == "(null)" { // Laravel's .env spelling of "unset"
			return ""
		}
		return v
	}
	host, port, user, password, db := part("REDIS_HOST"), part("REDIS_PORT"), part("REDIS_USERNAME"), part("REDIS_PASSWORD"), part("REDIS_DB")
	if host == "" && port == "" && user == "" && password == "" && db == "" {
		return nil
	}
	var set []string
	for _, p := range []struct{ name, value string }{
		{"REDIS_HOST", host}, {"REDIS_PORT", port}, {"REDIS_USERNAME", user}, {"REDIS_PASSWORD", password}, {"REDIS_DB", db},
	} {
		if p.value != "" {
			set = append(set, p.name)
		}
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if port == "" {
		port = "6379"
	} else if n, err := strconv.Atoi(strings.TrimSpace(port)); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("REDIS_PORT: %q is not a port number", port)
	} else {
		port = strconv.Itoa(n)
	}
	if db == "" {
		db = "0"
	} else if n, err := strconv.Atoi(strings.TrimSpace(db)); err != nil || n < 0 {
		return fmt.Errorf("REDIS_DB: %q is not a database number", db)
	} else {
		db = strconv.Itoa(n)
	}
	u := url.URL{Scheme: "redis", Host: net.JoinHostPort(strings.TrimSpace(host), port), Path: "/" + db}
	switch {
	case password != "":
		u.User = url.UserPassword(user, password)
	case user != "":
		u.User = url.User(user)
	}
	return l.apply(key, strings.Join(set, ", "), u.String(), setRedisURL)
}

// loadAppEnv applies the FIZZ_APP_* variables by the rule in Load's comment.
func (l *loader) loadAppEnv(file string, fileApps bool) error {
	type envValue struct {
		s           appSetting
		name, value string
	}
	var set []envValue
	id, keySet := defaultApp().ID, false
	for _, s := range appSettings {
		if name, v := l.lookup(s.env); name != "" {
			set = append(set, envValue{s, name, v})
			switch s.key {
			case "id":
				id = v
			case "key":
				keySet = true
			}
		}
	}
	if len(set) == 0 {
		return nil
	}
	target := 0
	if fileApps {
		target = -1
		for i, a := range l.cfg.Apps {
			if a.ID == id {
				target = i
			}
		}
		if target < 0 {
			if !keySet {
				return fmt.Errorf("%s: set, but %s lists apps and none has id %q; set FIZZ_APP_ID to pick one of them, or FIZZ_APP_KEY to add an app",
					set[0].name, file, id)
			}
			l.cfg.Apps = append(l.cfg.Apps, defaultApp())
			target = len(l.cfg.Apps) - 1
		}
	}
	for _, e := range set {
		if e.s.key == "webhooks" || e.s.key == "webhook_url" {
			l.clearWebhooks(target)
			break
		}
	}
	for _, e := range set {
		if err := l.applyApp(target, e.s, e.name, e.value); err != nil {
			return err
		}
		if e.s.key == "webhook_url" {
			l.sources[fmt.Sprintf("apps[%d].webhooks[%d].url", target, len(l.cfg.Apps[target].Webhooks)-1)] = e.name
		}
	}
	return nil
}

// clearWebhooks empties the webhooks of l.cfg.Apps[i], which the environment
// replaces, and forgets where the file put them.
func (l *loader) clearWebhooks(i int) {
	l.cfg.Apps[i].Webhooks = nil
	prefix := fmt.Sprintf("apps[%d].webhooks", i)
	for k := range l.sources {
		if k == prefix || strings.HasPrefix(k, prefix+"[") {
			delete(l.sources, k)
		}
	}
}

// stringFlag is a flag that remembers whether it was given.
type stringFlag struct {
	value string
	set   bool
}

func (f *stringFlag) String() string { return f.value }
func (f *stringFlag) Set(v string) error {
	f.value, f.set = v, true
	return nil
}

// boolFlag is --debug: a bare flag, or --debug=false.
type boolFlag struct {
	value bool
	set   bool
}

func (f *boolFlag) String() string   { return strconv.FormatBool(f.value) }
func (f *boolFlag) IsBoolFlag() bool { return true }
func (f *boolFlag) Set(v string) (err error) {
	f.value, err = parseBool(v)
	f.set = err == nil
	return err
}

type flags struct {
	host, port, path, config stringFlag
	debug                    boolFlag
}

// helpError is returned for --help: its message is the usage text.
type helpError struct{}

func (helpError) Error() string { return usage }
func (helpError) Unwrap() error { return flag.ErrHelp }

// parseArgs parses the command line: an optional "start" and the flags, in
// any order.
func parseArgs(args []string) (*flags, error) {
	fl := &flags{}
	fs := flag.NewFlagSet("fizz", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.Var(&fl.host, "host", "listen address")
	fs.Var(&fl.port, "port", "listen port")
	fs.Var(&fl.path, "path", "route prefix")
	fs.Var(&fl.config, "config", "YAML config file")
	fs.Var(&fl.debug, "debug", "log every frame")
	start := false
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, helpError{}
			}
			return nil, fmt.Errorf("%w (see --help)", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return fl, nil
		}
		if args[0] != "start" || start {
			return nil, fmt.Errorf("unexpected argument %q: the only command is start (see --help)", args[0])
		}
		start = true
		args = args[1:]
	}
}

// loadFlags applies the flags, the last layer.
func (l *loader) loadFlags(fl *flags) error {
	byKey := map[string]struct {
		flag *stringFlag
		name string
	}{
		"server.host": {&fl.host, "--host"},
		"server.port": {&fl.port, "--port"},
		"server.path": {&fl.path, "--path"},
	}
	for _, s := range settings {
		if f, ok := byKey[s.key]; ok && f.flag.set {
			if err := l.apply(s.key, f.name, f.flag.value, s.set); err != nil {
				return err
			}
		}
	}
	if fl.debug.set {
		l.debug = fl.debug.value
	}
	return nil
}

// The config file. Leaves are yaml.Node so that each value is parsed by the
// same functions as the environment and its errors carry the line and key.
type fileConfig struct {
	Server   fileServer   `yaml:"server"`
	Scaling  fileScaling  `yaml:"scaling"`
	Apps     *[]fileApp   `yaml:"apps"`
	Metrics  fileMetrics  `yaml:"metrics"`
	Log      fileLog      `yaml:"log"`
	Webhooks fileWebhooks `yaml:"webhooks"`
}

type fileServer struct {
	Host           yaml.Node `yaml:"host"`
	Port           yaml.Node `yaml:"port"`
	Path           yaml.Node `yaml:"path"`
	MaxRequestSize yaml.Node `yaml:"max_request_size"`
}

type fileScaling struct {
	Enabled  yaml.Node `yaml:"enabled"`
	Channel  yaml.Node `yaml:"channel"`
	RedisURL yaml.Node `yaml:"redis_url"`
	Timeout  yaml.Node `yaml:"timeout"`
	Lease    yaml.Node `yaml:"lease"`
}

type fileMetrics struct {
	Host yaml.Node `yaml:"host"`
	Port yaml.Node `yaml:"port"`
}

type fileLog struct {
	Format yaml.Node `yaml:"format"`
	Level  yaml.Node `yaml:"level"`
}

type fileWebhooks struct {
	LeaveDelay  yaml.Node `yaml:"leave_delay"`
	Timeout     yaml.Node `yaml:"timeout"`
	RetryFor    yaml.Node `yaml:"retry_for"`
	BatchWindow yaml.Node `yaml:"batch_window"`
}

type fileApp struct {
	ID                     yaml.Node      `yaml:"id"`
	Key                    yaml.Node      `yaml:"key"`
	Secret                 yaml.Node      `yaml:"secret"`
	PingInterval           yaml.Node      `yaml:"ping_interval"`
	ActivityTimeout        yaml.Node      `yaml:"activity_timeout"`
	MaxMessageSize         yaml.Node      `yaml:"max_message_size"`
	MaxConnections         yaml.Node      `yaml:"max_connections"`
	AllowedOrigins         yaml.Node      `yaml:"allowed_origins"`
	AcceptClientEventsFrom yaml.Node      `yaml:"accept_client_events_from"`
	MaxPresenceMembers     yaml.Node      `yaml:"max_presence_members"`
	MaxPresenceUserInfo    yaml.Node      `yaml:"max_presence_user_info"`
	ClientEventsPerSecond  yaml.Node      `yaml:"client_events_per_second"`
	WebhookBatching        yaml.Node      `yaml:"webhook_batching"`
	Webhooks               []*fileWebhook `yaml:"webhooks"` // pointers: a bare "-" is kept, as nil
	SubscriptionCount      yaml.Node      `yaml:"subscription_count"`
	RequireSignin          yaml.Node      `yaml:"require_signin"`
	SigninTimeout          yaml.Node      `yaml:"signin_timeout"`
}

// fileWebhook is one of an app's webhooks, the keys of apps.Webhook.
type fileWebhook struct {
	URL        yaml.Node         `yaml:"url"`
	EventTypes yaml.Node         `yaml:"event_types"`
	Filter     fileWebhookFilter `yaml:"filter"`
	Headers    yaml.Node         `yaml:"headers"`
}

type fileWebhookFilter struct {
	ChannelNameStartsWith yaml.Node `yaml:"channel_name_starts_with"`
	ChannelNameEndsWith   yaml.Node `yaml:"channel_name_ends_with"`
}

func (f *fileConfig) nodes() map[string]*yaml.Node {
	return map[string]*yaml.Node{
		"server.host":             &f.Server.Host,
		"server.port":             &f.Server.Port,
		"server.path":             &f.Server.Path,
		"server.max_request_size": &f.Server.MaxRequestSize,
		"scaling.enabled":         &f.Scaling.Enabled,
		"scaling.channel":         &f.Scaling.Channel,
		"scaling.redis_url":       &f.Scaling.RedisURL,
		"scaling.timeout":         &f.Scaling.Timeout,
		"scaling.lease":           &f.Scaling.Lease,
		"metrics.host":            &f.Metrics.Host,
		"metrics.port":            &f.Metrics.Port,
		"log.format":              &f.Log.Format,
		"log.level":               &f.Log.Level,
		"webhooks.leave_delay":    &f.Webhooks.LeaveDelay,
		"webhooks.timeout":        &f.Webhooks.Timeout,
		"webhooks.retry_for":      &f.Webhooks.RetryFor,
		"webhooks.batch_window":   &f.Webhooks.BatchWindow,
	}
}

func (a *fileApp) nodes() map[string]*yaml.Node {
	return map[string]*yaml.Node{
		"id":                        &a.ID,
		"key":                       &a.Key,
		"secret":                    &a.Secret,
		"ping_interval":             &a.PingInterval,
		"activity_timeout":          &a.ActivityTimeout,
		"max_message_size":          &a.MaxMessageSize,
		"max_connections":           &a.MaxConnections,
		"allowed_origins":           &a.AllowedOrigins,
		"accept_client_events_from": &a.AcceptClientEventsFrom,
		"max_presence_members":      &a.MaxPresenceMembers,
		"max_presence_user_info":    &a.MaxPresenceUserInfo,
		"client_events_per_second":  &a.ClientEventsPerSecond,
		"webhook_batching":          &a.WebhookBatching,
		"subscription_count":        &a.SubscriptionCount,
		"require_signin":            &a.RequireSignin,
		"signin_timeout":            &a.SigninTimeout,
	}
}

// loadFile applies the config file at path, which source (--config,
// FIZZ_CONFIG or REVERB_CONFIG) named. It reports whether the file lists apps.
func (l *loader) loadFile(path, source string) (hasApps bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("%s: %w", source, err)
	}
	f, err := decodeFile(path, data)
	if err != nil {
		return false, err
	}
	nodes := f.nodes()
	for _, s := range settings {
		n, ok := nodes[s.key]
		if !ok {
			continue
		}
		v, present, err := scalar(n)
		at := fmt.Sprintf("%s:%d: %s", path, n.Line, s.key)
		if err != nil {
			return false, fmt.Errorf("%s: %w", at, err)
		}
		if present {
			if err := l.apply(s.key, at, v, s.set); err != nil {
				return false, err
			}
		}
	}
	if f.Apps == nil {
		return false, nil
	}
	if len(*f.Apps) == 0 {
		return false, fmt.Errorf("%s: apps: the list is empty; list at least one app, or remove the key to use the app from the environment", path)
	}
	l.cfg.Apps = make([]apps.App, len(*f.Apps))
	for i := range *f.Apps {
		if err := l.loadFileApp(path, i, &(*f.Apps)[i]); err != nil {
			return false, err
		}
	}
	return true, nil
}

// loadFileApp fills l.cfg.Apps[i] from the file's app fa. Limits it leaves
// out take the defaults; its id, key and secret have none, so that a file
// app never runs with the well-known credentials by accident.
func (l *loader) loadFileApp(path string, i int, fa *fileApp) error {
	l.cfg.Apps[i] = defaultApp()
	l.cfg.Apps[i].ID, l.cfg.Apps[i].Key, l.cfg.Apps[i].Secret = "", "", ""
	nodes := fa.nodes()
	line := 0
	for _, n := range nodes {
		if n.Line > 0 && (line == 0 || n.Line < line) {
			line = n.Line
		}
	}
	entry := fmt.Sprintf("%s: apps[%d]", path, i)
	if line > 0 {
		entry = fmt.Sprintf("%s:%d: apps[%d]", path, line, i)
	}
	l.sources[fmt.Sprintf("apps[%d]", i)] = entry
	for _, s := range appSettings {
		n, ok := nodes[s.key]
		if !ok {
			continue
		}
		at := fmt.Sprintf("%s:%d: apps[%d].%s", path, n.Line, i, s.key)
		if s.key == "allowed_origins" && resolve(n).Kind == yaml.SequenceNode {
			origins, err := scalarList(resolve(n))
			if err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
			l.cfg.Apps[i].AllowedOrigins = origins
			l.sources[fmt.Sprintf("apps[%d].%s", i, s.key)] = at
			continue
		}
		v, present, err := scalar(n)
		if err != nil {
			return fmt.Errorf("%s: %w", at, err)
		}
		if present {
			if err := l.applyApp(i, s, at, v); err != nil {
				return err
			}
		}
	}
	return l.loadFileWebhooks(path, i, fa.Webhooks)
}

// loadFileWebhooks fills the webhooks of l.cfg.Apps[i] from the file's list.
func (l *loader) loadFileWebhooks(path string, i int, list []*fileWebhook) error {
	for j, fw := range list {
		if fw == nil {
			fw = &fileWebhook{}
		}
		entry := fmt.Sprintf("apps[%d].webhooks[%d]", i, j)
		fields := []struct {
			key string
			n   *yaml.Node
			set func(w *apps.Webhook, n *yaml.Node) error
		}{
			{"url", &fw.URL, func(w *apps.Webhook, n *yaml.Node) error {
				v, _, err := scalar(n)
				w.URL = strings.TrimSpace(v)
				return err
			}},
			{"event_types", &fw.EventTypes, func(w *apps.Webhook, n *yaml.Node) (err error) {
				w.EventTypes, err = eventTypeList(n)
				return err
			}},
			{"filter.channel_name_starts_with", &fw.Filter.ChannelNameStartsWith, func(w *apps.Webhook, n *yaml.Node) (err error) {
				w.Filter.ChannelNameStartsWith, _, err = scalar(n)
				return err
			}},
			{"filter.channel_name_ends_with", &fw.Filter.ChannelNameEndsWith, func(w *apps.Webhook, n *yaml.Node) (err error) {
				w.Filter.ChannelNameEndsWith, _, err = scalar(n)
				return err
			}},
			{"headers", &fw.Headers, func(w *apps.Webhook, n *yaml.Node) (err error) {
				w.Headers, err = headerMap(n)
				return err
			}},
		}
		line := 0
		for _, f := range fields {
			if f.n.Line > 0 && (line == 0 || f.n.Line < line) {
				line = f.n.Line
			}
		}
		l.sources[entry] = fmt.Sprintf("%s: %s", path, entry)
		if line > 0 {
			l.sources[entry] = fmt.Sprintf("%s:%d: %s", path, line, entry)
		}
		var w apps.Webhook
		for _, f := range fields {
			if f.n.Kind == 0 { // key left out
				continue
			}
			at := fmt.Sprintf("%s:%d: %s.%s", path, f.n.Line, entry, f.key)
			if err := f.set(&w, f.n); err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
			l.sources[entry+"."+f.key] = at
		}
		l.cfg.Apps[i].Webhooks = append(l.cfg.Apps[i].Webhooks, w)
	}
	return nil
}

// eventTypeList reads a webhook's event_types: a list, or nothing for every
// type.
func eventTypeList(n *yaml.Node) ([]string, error) {
	n = resolve(n)
	switch {
	case n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return nil, nil
	case n.Kind == yaml.SequenceNode:
		return scalarList(n)
	}
	return nil, errors.New("expected a list of event types, such as [channel_occupied, channel_vacated]")
}

// headerMap reads a webhook's headers: a mapping of names to values.
func headerMap(n *yaml.Node) (map[string]string, error) {
	n = resolve(n)
	switch {
	case n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return nil, nil
	case n.Kind != yaml.MappingNode:
		return nil, errors.New("expected a mapping of header names to values")
	}
	var headers map[string]string
	for k := 0; k+1 < len(n.Content); k += 2 {
		name, value := resolve(n.Content[k]), resolve(n.Content[k+1])
		if name.Kind != yaml.ScalarNode {
			return nil, errors.New("expected a mapping of header names to values")
		}
		v, _, err := scalar(value)
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", name.Value, err)
		}
		if headers == nil {
			headers = map[string]string{}
		}
		headers[name.Value] = v
	}
	return headers, nil
}

// resolve follows an alias (*name) to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for depth := 0; n.Kind == yaml.AliasNode && n.Alias != nil && depth < 100; depth++ {
		n = n.Alias
	}
	return n
}

// scalar returns the value of a leaf; present is false when the key is
// missing or its value is null.
func scalar(n *yaml.Node) (value string, present bool, err error) {
	n = resolve(n)
	switch {
	case n.Kind == 0:
		return "", false, nil
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		return "", false, nil
	case n.Kind == yaml.ScalarNode:
		return n.Value, true, nil
	}
	return "", false, errors.New("expected a single value, not a list or mapping")
}

func scalarList(n *yaml.Node) ([]string, error) {
	out := make([]string, 0, len(n.Content))
	for _, item := range n.Content {
		item = resolve(item)
		if item.Kind != yaml.ScalarNode {
			return nil, errors.New("expected a list of strings")
		}
		out = append(out, strings.TrimSpace(item.Value))
	}
	return out, nil
}

// decodeFile decodes the file strictly: an unknown key is an error naming it.
func decodeFile(path string, data []byte) (f *fileConfig, err error) {
	defer func() {
		if r := recover(); r != nil { // the YAML library must not take the process down
			f, err = nil, fmt.Errorf("%s: cannot be read as YAML", path)
		}
	}()
	f = &fileConfig{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		if errors.Is(err, io.EOF) { // empty file
			return f, nil
		}
		return nil, fileError(path, data, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: holds more than one YAML document", path)
	}
	return f, nil
}

var (
	unknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type (\S+)$`)
	wrongKind    = regexp.MustCompile(`^line (\d+): cannot unmarshal (!!\w+)(?: .*)? into (\S+)$`)
	lineError    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// fileTypes names the sections of the file by the Go types that hold them.
var fileTypes = map[string]struct {
	section string
	typ     reflect.Type
}{
	"app.fileConfig":        {"the file", reflect.TypeFor[fileConfig]()},
	"app.fileServer":        {"server", reflect.TypeFor[fileServer]()},
	"app.fileScaling":       {"scaling", reflect.TypeFor[fileScaling]()},
	"app.fileMetrics":       {"metrics", reflect.TypeFor[fileMetrics]()},
	"app.fileLog":           {"log", reflect.TypeFor[fileLog]()},
	"app.fileWebhooks":      {"webhooks", reflect.TypeFor[fileWebhooks]()},
	"app.fileApp":           {"each app", reflect.TypeFor[fileApp]()},
	"[]app.fileApp":         {"apps", nil},
	"app.fileWebhook":       {"each webhook", reflect.TypeFor[fileWebhook]()},
	"[]*app.fileWebhook":    {"an app's webhooks", nil},
	"app.fileWebhookFilter": {"a webhook's filter", reflect.TypeFor[fileWebhookFilter]()},
}

// fileError turns the YAML library's error, which may span several lines
// and names Go types, into one line that names the file, line and key.
func fileError(path string, data []byte, err error) error {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key := keyPath(data, line, m[2])
		known := ""
		if t, ok := fileTypes[m[3]]; ok && t.typ != nil {
			known = " (known keys: " + strings.Join(yamlKeys(t.typ), ", ") + ")"
		}
		return fmt.Errorf("%s:%s: %s: unknown key%s", path, m[1], key, known)
	}
	if m := wrongKind.FindStringSubmatch(msg); m != nil {
		if t, ok := fileTypes[strings.TrimPrefix(m[3], "*")]; ok {
			want := "a mapping"
			if t.typ == nil {
				want = "a list"
			}
			return fmt.Errorf("%s:%s: %s must be %s, not %s", path, m[1], t.section, want, kindName(m[2]))
		}
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	if m := lineError.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", path, m[1], m[2])
	}
	return fmt.Errorf("%s: %s", path, strings.TrimPrefix(msg, "yaml: "))
}

func kindName(tag string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	}
	return "a single value"
}

func yamlKeys(t reflect.Type) []string {
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		keys = append(keys, t.Field(i).Tag.Get("yaml"))
	}
	return keys
}

// keyPath finds the key named key on the given line and returns its path in
// the document (apps[1].prot), or key itself when it can't.
func keyPath(data []byte, line int, key string) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return key
	}
	var walk func(n *yaml.Node, prefix string, depth int) string
	walk = func(n *yaml.Node, prefix string, depth int) string {
		if depth > 50 {
			return ""
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p := walk(c, prefix, depth+1); p != "" {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				name := prefix + k.Value
				if k.Line == line && k.Value == key {
					return name
				}
				if p := walk(n.Content[i+1], name+".", depth+1); p != "" {
					return p
				}
			}
		case yaml.SequenceNode:
			base := strings.TrimSuffix(prefix, ".")
			for i, c := range n.Content {
				if p := walk(c, fmt.Sprintf("%s[%d].", base, i), depth+1); p != "" {
					return p
				}
			}
		}
		return ""
	}
	if p := walk(&root, "", 0); p != "" {
		return p
	}
	return key
}

// Parsers shared by the file, the environment and the flags. Their messages
// quote the value but not the setting, which the caller adds.

func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", v)
	}
	return n, nil
}

func parsePort(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", v)
	}
	return n, nil // Validate checks the range
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (true/false, 1/0, yes/no)", v)
}

// parseSeconds reads a whole number of seconds, as FIZZ_APP_PING_INTERVAL is.
func parseSeconds(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number of seconds", v)
	}
	if n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
		return 0, fmt.Errorf("%q seconds is too long", v)
	}
	return time.Duration(n) * time.Second, nil
}

// parseTimeout reads a Go duration such as 30s or 1m, or a bare whole number
// of seconds as FIZZ_APP_PING_INTERVAL takes: FIZZ_APP_SIGNIN_TIMEOUT.
func parseTimeout(v string) (time.Duration, error) {
	t := strings.TrimSpace(v)
	if d, err := time.ParseDuration(t); err == nil {
		return d, nil
	}
	switch _, err := strconv.ParseInt(t, 10, 64); {
	case err == nil:
		return parseSeconds(v)
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%q seconds is too long", v)
	}
	return 0, fmt.Errorf("%q is not a duration (such as 30s or 1m) or a whole number of seconds", v)
}

// parseDuration reads a Go duration such as 2s or 500ms.
func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (such as 2s or 500ms)", v)
	}
	return d, nil
}

// webhookJSON describes what each key of a FIZZ_APP_WEBHOOKS object holds.
var webhookJSON = map[string]string{
	"":                                "an object",
	"url":                             "a string",
	"event_types":                     "a list of strings",
	"filter":                          "an object",
	"filter.channel_name_starts_with": "a string",
	"filter.channel_name_ends_with":   "a string",
	"headers":                         "an object of strings",
}

// parseWebhooks reads FIZZ_APP_WEBHOOKS: a JSON array of objects with the
// keys of the config file's webhooks. A problem inside one object is a
// settingError whose setting is its path ([1].url).
func parseWebhooks(v string) ([]apps.Webhook, error) {
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(v), &items); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not valid JSON: %s (at byte %d)", se, se.Offset)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("must be a JSON array of webhook objects, not a JSON %s", te.Value)
		}
		return nil, fmt.Errorf("not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	var hooks []apps.Webhook
	for j, item := range items {
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.DisallowUnknownFields()
		var w apps.Webhook
		if err := dec.Decode(&w); err != nil {
			at := fmt.Sprintf("[%d]", j)
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				if te.Field != "" {
					at += "." + te.Field
				}
				want, ok := webhookJSON[te.Field]
				if !ok {
					want = "a " + te.Type.String()
				}
				return nil, invalid(at, "must be %s, not a JSON %s", want, te.Value)
			}
			if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return nil, invalid(at, "unknown key %s (known keys: url, event_types, filter.channel_name_starts_with, filter.channel_name_ends_with, headers)", name)
			}
			return nil, invalid(at, "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		w.URL = strings.TrimSpace(w.URL)
		hooks = append(hooks, w)
	}
	return hooks, nil
}
