package app

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/connection"
	"github.com/fizz-server/fizz/modules/server"
	"github.com/fizz-server/fizz/modules/webhooks"
	"github.com/fizz-server/fizz/scaling"
)

// settings are the node's settings, one row each, in the config file's
// order. Defaults, the file, the environment, the flags, --help and Validate
// all read the rows, so a new setting is a new row.
var settings = []setting[Config]{
	{path: "server.host", env: "SERVER_HOST", flag: "host H", help: "listen address", value: of(func(c *Config) *string { return &c.Server.Host }, "0.0.0.0", trimmed, nil)},
	{path: "server.port", env: "SERVER_PORT", flag: "port P", help: "listen port", value: of(func(c *Config) *int { return &c.Server.Port }, 8080, portNumber, port)},
	{path: "server.path", env: "SERVER_PATH", flag: "path PREFIX", help: "prefix before every route, e.g. /ws",
		value: of(func(c *Config) *string { return &c.Server.Path }, "", trimmed, routePrefix)},
	{path: "server.max_request_size", env: "MAX_REQUEST_SIZE", value: of(func(c *Config) *int { return &c.Server.MaxRequestSize }, 102_400, wholeNumber, moreBytes)},
	{env: "TLS_CERT", value: of(func(c *Config) *string { return &c.Server.TLSCert }, "", raw, required("must be set when FIZZ_TLS_KEY is")).
		onlyIf(func(c *Config) bool { return c.Server.TLSKey != "" })},
	{env: "TLS_KEY", value: of(func(c *Config) *string { return &c.Server.TLSKey }, "", raw, required("must be set when FIZZ_TLS_CERT is")).
		onlyIf(func(c *Config) bool { return c.Server.TLSCert != "" })},
	{env: "SHUTDOWN_GRACE", value: of(func(c *Config) *time.Duration { return &c.Server.ShutdownGrace }, 3*time.Second, duration, notNegative("%s must not be negative"))},
	{path: "server.header_timeout", env: "HEADER_TIMEOUT",
		value: of(func(c *Config) *time.Duration { return &c.Server.HeaderTimeout }, server.DefaultHeaderTimeout, duration, positive)},
	{path: "server.max_handshakes", env: "MAX_HANDSHAKES", value: of(func(c *Config) *int { return &c.Server.MaxHandshakes }, 0, wholeNumber, noCap)},
	{path: "server.max_sockets", env: "MAX_SOCKETS", value: of(func(c *Config) *int { return &c.Server.MaxSockets }, 0, wholeNumber, noCap)},
	{path: "server.slow_consumer_grace", env: "SLOW_CONSUMER_GRACE",
		value: of(func(c *Config) *time.Duration { return &c.Server.SlowConsumerGrace }, connection.DefaultSlowConsumerGrace, duration, positive)},
	{path: "server.max_queued_bytes", env: "MAX_QUEUED_BYTES",
		value: of(func(c *Config) *int { return &c.Server.MaxQueuedBytes }, connection.DefaultMaxQueuedBytes, wholeNumber, moreBytes)},
	{path: "scaling.enabled", env: "SCALING_ENABLED", value: of(func(c *Config) *bool { return &c.Scaling.Enabled }, false, boolean, nil)},
	{path: "scaling.channel", env: "SCALING_CHANNEL", value: of(func(c *Config) *string { return &c.Scaling.Channel }, "fizz", trimmed, channelName)},
	redisURL,
	{path: "scaling.redis_sentinels", env: "REDIS_SENTINELS", value: of(func(c *Config) *[]string { return &c.Scaling.RedisSentinels }, nil, commaList, addresses).
		fromNode(stringList(errNotAddresses))},
	{path: "scaling.redis_master", env: "REDIS_MASTER", value: of(func(c *Config) *string { return &c.Scaling.RedisMaster }, "", trimmed,
		required("must be set with the Sentinel list: the name of the master the sentinels watch")).onlyIf(func(c *Config) bool { return c.Scaling.RedisSentinels != nil })},
	{path: "scaling.redis_cluster", env: "REDIS_CLUSTER", value: of(func(c *Config) *[]string { return &c.Scaling.RedisCluster }, nil, commaList, addresses).
		fromNode(stringList(errNotAddresses)).alsoCheck(func(c *Config) error {
		if c.Scaling.RedisCluster == nil {
			return nil
		}
		return cmp.Or(failIf(c.Scaling.RedisSentinels != nil, "must not be set with the Sentinel list: choose Sentinel or Redis Cluster"),
			failIf(strings.ContainsAny(c.Scaling.Channel, "{}"), "the scaling channel %q must not contain { or }: on a Redis Cluster it is the keys' hash tag", c.Scaling.Channel))
	})},
	{path: "scaling.timeout", env: "SCALING_TIMEOUT", value: of(func(c *Config) *time.Duration { return &c.Scaling.Timeout }, 2*time.Second, duration, positive)},
	{path: "scaling.lease", env: "SCALING_LEASE",
		value: of(func(c *Config) *time.Duration { return &c.Scaling.Lease }, scaling.DefaultLease, duration, atLeast(300*time.Millisecond, "%s must be at least 300ms"))},
	{path: "apps", value: entries[Config, apps.App]{field: of(func(c *Config) *[]apps.App { return &c.Apps }, nil, nil, distinctApps), rows: appSettings, initial: 1,
		names: [3]string{"apps", "each app", "an app's %s"}, empty: "the list is empty; list at least one app, or remove the key to use the app from the environment"}},
	{path: "metrics.host", env: "METRICS_HOST", value: of(func(c *Config) *string { return &c.Metrics.Host }, "127.0.0.1", trimmed, nil)},
	{path: "metrics.port", env: "METRICS_PORT", value: of(func(c *Config) *int { return &c.Metrics.Port }, 9601, portNumber, port)},
	{path: "log.format", env: "LOG_FORMAT", value: of(func(c *Config) *string { return &c.Log.Format }, "", lower, oneOf(`%q is not text or json`, "", "text", "json"))},
	{path: "log.level", env: "LOG_LEVEL",
		value: of(func(c *Config) *string { return &c.Log.Level }, "info", lower, oneOf(`%q is not debug, info, warn or error`, "debug", "info", "warn", "error"))},
	{path: "webhooks.leave_delay", env: "WEBHOOK_LEAVE_DELAY", value: of(func(c *Config) *time.Duration { return &c.Webhooks.LeaveDelay }, webhooks.DefaultLeaveDelay,
		duration, notNegative("%s must not be negative (0 means no delay)"))},
	{path: "webhooks.timeout", env: "WEBHOOK_TIMEOUT", value: of(func(c *Config) *time.Duration { return &c.Webhooks.Timeout }, webhooks.DefaultTimeout, duration, positive)},
	{path: "webhooks.retry_for", env: "WEBHOOK_RETRY_FOR", value: of(func(c *Config) *time.Duration { return &c.Webhooks.RetryFor }, webhooks.DefaultRetryFor, duration, positive)},
	{path: "webhooks.batch_window", env: "WEBHOOK_BATCH_WINDOW",
		value: of(func(c *Config) *time.Duration { return &c.Webhooks.BatchWindow }, webhooks.DefaultBatchWindow, duration, positive)},
	// The file the other settings may come from: Load reads it first, and no field keeps it.
	{env: "CONFIG", flag: "config FILE", help: "YAML config file, for several apps", value: setter[Config](func(*Config, string) error { return nil })},
	{env: "DEBUG", flag: "debug", help: "log every frame in and out", value: of(func(c *Config) *bool { return &c.Log.Debug }, false, boolean, nil)},
}

// redisURL also comes from REDIS_URL, or Laravel's REDIS_HOST and others
// (loadRedisEnv). It is checked only for a cluster: a Laravel .env may
// describe a Redis that Fizz never uses.
var redisURL = setting[Config]{path: "scaling.redis_url", value: of(func(c *Config) *string { return &c.Scaling.RedisURL }, "redis://127.0.0.1:6379/0", trimmed,
	redisAddress).onlyIf(func(c *Config) bool { return c.Scaling.Enabled })}

// Parsers and checks that several rows share.
var (
	wholeNumber, portNumber   = whole("a whole number"), whole("a port number")
	positive, positiveSeconds = atLeast(time.Nanosecond, "%s must be more than 0"), atLeast(time.Nanosecond, "%s must be more than 0 seconds")
	moreBytes, noCap          = atLeast(1, "%d must be more than 0 bytes"), atLeast(0, "%d must not be negative (0 means no cap)")
	notNegative               = func(msg string) func(time.Duration) error { return atLeast(time.Duration(0), msg) }
)

// appSettings are each app's, in the order of an app's keys in the file. The
// id picks the app the FIZZ_APP_ variables apply to, and a key adds one
// (loadAppEnv); a key or secret left to its default draws a warning.
var appSettings = []setting[apps.App]{
	{path: "id", env: "APP_ID", given: true, value: of(func(a *apps.App) *string { return &a.ID }, "app-id", raw, credential)},
	{path: "key", env: "APP_KEY", given: true, value: of(func(a *apps.App) *string { return &a.Key }, "app-key", raw, credential)},
	{path: "secret", env: "APP_SECRET", given: true, value: of(func(a *apps.App) *string { return &a.Secret }, "app-secret", raw, credential)},
	{path: "ping_interval", env: "APP_PING_INTERVAL", value: of(func(a *apps.App) *time.Duration { return &a.PingInterval }, apps.DefaultPingInterval, seconds, positiveSeconds)},
	{path: "activity_timeout", env: "APP_ACTIVITY_TIMEOUT",
		value: of(func(a *apps.App) *time.Duration { return &a.ActivityTimeout }, apps.DefaultActivityTimeout, seconds, positiveSeconds)},
	{path: "max_message_size", env: "APP_MAX_MESSAGE_SIZE", value: of(func(a *apps.App) *int { return &a.MaxMessageSize }, apps.DefaultMaxMessageSize, wholeNumber, moreBytes)},
	{path: "max_connections", env: "APP_MAX_CONNECTIONS", value: of(func(a *apps.App) *int { return &a.MaxConnections }, 0, wholeNumber, noCap)},
	{path: "allowed_origins", env: "APP_ALLOWED_ORIGINS",
		value: of(func(a *apps.App) *[]string { return &a.AllowedOrigins }, []string{"*"}, commaList, originList).fromNode(stringList(errNotSingle))},
	{path: "accept_client_events_from", env: "APP_ACCEPT_CLIENT_EVENTS_FROM", value: of(func(a *apps.App) *string { return &a.AcceptClientEventsFrom },
		apps.ClientEventsMembers, lower, oneOf(`%q is not members, all or none`, apps.ClientEventsMembers, apps.ClientEventsAll, apps.ClientEventsNone))},
	{path: "max_presence_members", env: "APP_MAX_PRESENCE_MEMBERS",
		value: of(func(a *apps.App) *int { return &a.MaxPresenceMembers }, apps.DefaultMaxPresenceMembers, wholeNumber, atLeast(1, "%d must be more than 0"))},
	{path: "max_presence_user_info", env: "APP_MAX_PRESENCE_USER_INFO",
		value: of(func(a *apps.App) *int { return &a.MaxPresenceUserInfo }, apps.DefaultMaxPresenceUserInfo, wholeNumber, moreBytes)},
	{path: "client_events_per_second", env: "APP_CLIENT_EVENTS_PER_SECOND",
		value: of(func(a *apps.App) *int { return &a.ClientEventsPerSecond }, apps.DefaultClientEventsPerSecond, wholeNumber, noCap)},
	{path: "rate_limiting.enabled", env: "APP_RATE_LIMITING_ENABLED", value: of(func(a *apps.App) *bool { return &a.RateLimit.Enabled }, false, boolean, nil)},
	{path: "rate_limiting.max_attempts", env: "APP_RATE_LIMIT_MAX_ATTEMPTS",
		value: of(func(a *apps.App) *int { return &a.RateLimit.MaxAttempts }, apps.DefaultRateLimitMaxAttempts, wholeNumber, atLeast(1, "%d must be more than 0"))},
	{path: "rate_limiting.decay_seconds", env: "APP_RATE_LIMIT_DECAY_SECONDS",
		value: of(func(a *apps.App) *time.Duration { return &a.RateLimit.Decay }, apps.DefaultRateLimitDecay, seconds, positiveSeconds)},
	{path: "rate_limiting.terminate_on_limit", env: "APP_RATE_LIMIT_TERMINATE", value: of(func(a *apps.App) *bool { return &a.RateLimit.Terminate }, false, boolean, nil)},
	{path: "webhook_batching", env: "APP_WEBHOOK_BATCHING", value: of(func(a *apps.App) *bool { return &a.WebhookBatching }, false, boolean, nil)},
	{path: "webhooks", env: "APP_WEBHOOKS", value: entries[apps.App, apps.Webhook]{field: of(func(a *apps.App) *[]apps.Webhook { return &a.Webhooks }, nil, parseWebhooks, nil),
		rows: webhookSettings, names: [3]string{"an app's webhooks", "each webhook", "a webhook's %s"}, keepNull: true}},
	{path: "subscription_count", env: "APP_SUBSCRIPTION_COUNT", value: of(func(a *apps.App) *bool { return &a.SubscriptionCount }, false, boolean, nil)},
	{path: "require_signin", env: "APP_REQUIRE_SIGNIN", value: of(func(a *apps.App) *bool { return &a.RequireSignin }, false, boolean, nil)},
	{path: "signin_timeout", env: "APP_SIGNIN_TIMEOUT", value: of(func(a *apps.App) *time.Duration { return &a.SigninTimeout }, apps.DefaultSigninTimeout, timeout, positive)},
	// One more webhook, for every event. Its URL is checked here, so that a
	// message names the variable.
	{env: "APP_WEBHOOK_URL", value: setter[apps.App](func(a *apps.App, v string) error {
		a.Webhooks = append(a.Webhooks, apps.Webhook{URL: strings.TrimSpace(v)})
		return apps.CheckWebhookURL(strings.TrimSpace(v))
	})},
}

// webhookSettings are each webhook's keys, in the file and in FIZZ_APP_WEBHOOKS.
var webhookSettings = []setting[apps.Webhook]{
	{path: "url", value: of(func(w *apps.Webhook) *string { return &w.URL }, "", trimmed, apps.CheckWebhookURL)},
	{path: "event_types", value: of(func(w *apps.Webhook) *[]string { return &w.EventTypes }, nil, nil, apps.CheckEventTypes).
		fromNode(stringList(errors.New("expected a list of event types, such as [channel_occupied, channel_vacated]")))},
	{path: "filter.channel_name_starts_with", value: of(func(w *apps.Webhook) *string { return &w.Filter.ChannelNameStartsWith }, "", raw, nil)},
	{path: "filter.channel_name_ends_with", value: of(func(w *apps.Webhook) *string { return &w.Filter.ChannelNameEndsWith }, "", raw, nil)},
	{path: "headers", value: of(func(w *apps.Webhook) *map[string]string { return &w.Headers }, nil, nil, apps.CheckHeaders).fromNode(headerNode)},
}

// A setting is one row: a value of O (the Config, an app or a webhook) and
// its names in each source.
type setting[O any] struct {
	path  string // dotted key in the file, within an app or webhook for theirs; "" for none
	env   string // suffix of its FIZZ_ and REVERB_ variables; "" for none
	flag  string // its flag and the flag's argument in --help ("port P"), "" for none; a row with a flag has a variable
	help  string // what --help says the flag is
	given bool   // an entry of the file must give it: the default is the environment app's only
	value[O]
}

// name is the setting in Validate's messages: its key in the file, else its variable.
func (s setting[O]) name() string { return cmp.Or(s.path, "FIZZ_"+s.env) }

// value is what a row does with its value: a field of O, a list of entries,
// or something else (setter).
type value[O any] interface {
	reset(o *O, toDefault bool)                         // to the default, else to zero
	set(o *O, raw string) error                         // from a variable or a flag
	read(o *O, l *loader, n *yaml.Node, key string) int // from the file's node n at key; n's line
	check(o *O) error
}

// resetRows sets o to the defaults of rows, but for those a file's entry must give.
func resetRows[O any](rows []setting[O], o *O, inFile bool) {
	for _, r := range rows {
		r.reset(o, !inFile || !r.given)
	}
}

// field is a setting kept in one field of O.
type field[O, T any] struct {
	at    func(*O) *T
	def   T
	parse func(string) (T, error)     // a variable's, a flag's or a single value's in the file
	node  func(*yaml.Node) (T, error) // the file's other nodes, for a value that may be a list or mapping
	valid func(T) error
	when  func(*O) bool  // whether to check it; nil for always
	also  func(*O) error // a check against other settings, once valid passed; nil for none
}

func of[O, T any](at func(*O) *T, def T, parse func(string) (T, error), valid func(T) error) field[O, T] {
	return field[O, T]{at: at, def: def, parse: parse, valid: valid}
}

func (f field[O, T]) fromNode(node func(*yaml.Node) (T, error)) field[O, T] { f.node = node; return f }
func (f field[O, T]) onlyIf(when func(*O) bool) field[O, T]                 { f.when = when; return f }
func (f field[O, T]) alsoCheck(also func(*O) error) field[O, T]             { f.also = also; return f }

func (f field[O, T]) reset(o *O, toDefault bool) {
	if *f.at(o) = *new(T); toDefault {
		*f.at(o) = f.def
	}
	if list, ok := any(*f.at(o)).([]string); ok { // no two configurations share a list
		*f.at(o) = any(slices.Clone(list)).(T)
	}
}

func (f field[O, T]) set(o *O, raw string) (err error) {
	*f.at(o), err = f.parse(raw)
	return err
}

func (f field[O, T]) check(o *O) error {
	if f.valid == nil || f.when != nil && !f.when(o) {
		return nil
	}
	if err := f.valid(*f.at(o)); err != nil || f.also == nil {
		return err
	}
	return f.also(o)
}

// String is the default in --help, "" for the zero value.
func (f field[O, T]) String() string {
	if s := fmt.Sprint(f.def); s != fmt.Sprint(*new(T)) {
		return s
	}
	return ""
}

// entries is a setting that is a list of E (the apps, an app's webhooks):
// a field whose parse is the environment's form, if any, and whose check
// is of the whole list, once rows have checked each entry.
type entries[O, E any] struct {
	field[O, []E]
	rows     []setting[E]
	initial  int       // entries by default: the apps have the environment's app
	empty    string    // why the file's list must not be empty; "" when it may
	names    [3]string // in messages about the file: the list, each entry, a mapping in one
	keepNull bool      // a null entry in the file is an empty one, not none
}

func (e entries[O, E]) reset(o *O, toDefault bool) {
	var list []E
	for i := 0; toDefault && i < e.initial; i++ {
		list = append(list, *new(E))
		resetRows(e.rows, &list[i], false)
	}
	*e.at(o) = list
}

func (e entries[O, E]) check(o *O) error {
	for i := range *e.at(o) {
		if err := checkRows(e.rows, &(*e.at(o))[i]); err != nil {
			return within(fmt.Sprintf("[%d].", i), err)
		}
	}
	return e.field.check(o)
}

// setter is a setting that the environment or a flag gives and no field
// keeps as it is: the config file's name, the webhook shorthand.
type setter[O any] func(o *O, raw string) error

func (f setter[O]) set(o *O, raw string) error             { return f(o, raw) }
func (setter[O]) reset(*O, bool)                           {}
func (setter[O]) read(*O, *loader, *yaml.Node, string) int { return 0 }
func (setter[O]) check(*O) error                           { return nil }

// The parsers of the environment's, the flags' and the file's values. Their
// messages quote the value but not the setting, which the caller adds.

func raw(v string) (string, error)     { return v, nil }
func trimmed(v string) (string, error) { return strings.TrimSpace(v), nil }
func lower(v string) (string, error)   { return strings.ToLower(strings.TrimSpace(v)), nil }

// commaList reads a comma-separated list: of origins, or of host:port addresses.
func commaList(v string) ([]string, error) {
	list := strings.Split(v, ",")
	for i := range list {
		list[i] = strings.TrimSpace(list[i])
	}
	return list, nil
}

// whole reads a whole number; what names it in the message. Its check says
// whether it is in range.
func whole(what string) func(string) (int, error) {
	return func(v string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return n, failIf(err != nil, "%q is not %s", v, what)
	}
}

func boolean(v string) (bool, error) {
	b, ok := map[string]bool{"true": true, "1": true, "yes": true, "false": false, "0": false, "no": false}[strings.ToLower(strings.TrimSpace(v))]
	return b, failIf(!ok, "%q is not a boolean (true/false, 1/0, yes/no)", v)
}

// seconds reads a whole number of seconds, as Reverb's ping interval is.
func seconds(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	long := n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second)
	return time.Duration(n) * time.Second, cmp.Or(failIf(err != nil, "%q is not a whole number of seconds", v), failIf(long, "%q seconds is too long", v))
}

// timeout reads a Go duration such as 30s, or a whole number of seconds.
func timeout(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(strings.TrimSpace(v)); err == nil {
		return d, nil
	}
	switch _, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); {
	case err == nil:
		return seconds(v)
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%q seconds is too long", v)
	}
	return 0, fmt.Errorf("%q is not a duration (such as 30s or 1m) or a whole number of seconds", v)
}

// duration reads a Go duration such as 2s or 500ms.
func duration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	return d, failIf(err != nil, "%q is not a duration (such as 2s or 500ms)", v)
}
