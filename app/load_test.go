package app_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
)

// input is one start of Fizz: its arguments, its environment and the text
// of a config file. "{file}" in args and env values becomes the file's path.
type input struct {
	args []string
	env  map[string]string
	file string
}

// load writes in.file to a temporary file and calls app.Load with a
// map-backed getenv. It returns the file's path for messages.
func load(t *testing.T, in input) (app.Config, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fizz.yaml")
	require.NoError(t, os.WriteFile(path, []byte(in.file), 0o600))
	args := make([]string, len(in.args))
	for i, a := range in.args {
		args[i] = strings.ReplaceAll(a, "{file}", path)
	}
	env := map[string]string{}
	for k, v := range in.env {
		env[k] = strings.ReplaceAll(v, "{file}", path)
	}
	cfg, err := app.Load(args, func(name string) string { return env[name] })
	return cfg, path, err
}

// defaultsWith returns app.Defaults() changed by edit.
func defaultsWith(edit func(c *app.Config)) app.Config {
	c := app.Defaults()
	edit(&c)
	return c
}

// fileApp is an app as the config file gives it, with the defaults filled in.
func fileApp(id, key, secret string) apps.App {
	a := app.Defaults().Apps[0]
	a.ID, a.Key, a.Secret = id, key, secret
	return a
}

func TestDefaults(t *testing.T) {
	cfg, err := app.Load(nil, nil)
	require.NoError(t, err)

	assert.Equal(t, app.Defaults(), cfg)
	assert.Equal(t, "0.0.0.0", cfg.Server.Host)
	assert.Equal(t, 8080, cfg.Server.Port)
	assert.Equal(t, "", cfg.Server.Path)
	assert.Equal(t, 102400, cfg.Server.MaxRequestSize)
	assert.Equal(t, 3*time.Second, cfg.Server.ShutdownGrace)
	assert.Empty(t, cfg.Server.TLSCert)
	assert.Empty(t, cfg.Server.TLSKey)
	assert.False(t, cfg.Scaling.Enabled)
	assert.Equal(t, "fizz", cfg.Scaling.Channel)
	assert.Equal(t, "redis://127.0.0.1:6379/0", cfg.Scaling.RedisURL)
	assert.Equal(t, 2*time.Second, cfg.Scaling.Timeout)
	assert.Equal(t, app.MetricsConfig{Host: "127.0.0.1", Port: 9601}, cfg.Metrics)
	assert.Equal(t, app.LogConfig{Format: "", Level: "info"}, cfg.Log)
	assert.Equal(t, []apps.App{{
		ID:                     "app-id",
		Key:                    "app-key",
		Secret:                 "app-secret",
		PingInterval:           60 * time.Second,
		ActivityTimeout:        30 * time.Second,
		MaxMessageSize:         10000,
		MaxConnections:         0,
		AllowedOrigins:         []string{"*"},
		AcceptClientEventsFrom: apps.ClientEventsMembers,
		MaxPresenceMembers:     apps.DefaultMaxPresenceMembers,
		MaxPresenceUserInfo:    apps.DefaultMaxPresenceUserInfo,
		ClientEventsPerSecond:  apps.DefaultClientEventsPerSecond,
	}}, cfg.Apps)
	assert.True(t, cfg.UsesDefaultCredentials())
}

func TestLoad(t *testing.T) {
	multi, err := os.ReadFile(filepath.Join("testdata", "multi.yaml"))
	require.NoError(t, err)
	multiApps := []apps.App{fileApp("1001", "key-one", "secret-one"), fileApp("1002", "key-two", "secret-two"), fileApp("1003", "key-three", "secret-three")}
	multiApps[1].PingInterval = 20 * time.Second
	multiApps[1].ActivityTimeout = 15 * time.Second
	multiApps[1].MaxMessageSize = 4096
	multiApps[1].MaxConnections = 500
	multiApps[1].AllowedOrigins = []string{"example.com", "*.example.com"}
	multiApps[1].AcceptClientEventsFrom = apps.ClientEventsAll
	multiApps[1].MaxPresenceMembers = 50
	multiApps[1].MaxPresenceUserInfo = 1024
	multiApps[1].ClientEventsPerSecond = 0
	withApps := func(edit func(c *app.Config), extra ...apps.App) app.Config {
		return defaultsWith(func(c *app.Config) {
			// The multi file's server, scaling, metrics and log:
			c.Server.Host, c.Server.Port, c.Server.Path, c.Server.MaxRequestSize = "127.0.0.1", 9000, "/ws", 204800
			c.Scaling.Enabled, c.Scaling.Channel, c.Scaling.RedisURL, c.Scaling.Timeout = true, "fizz-test", "redis://10.0.0.5:6379/1", 500*time.Millisecond
			c.Metrics = app.MetricsConfig{Host: "0.0.0.0", Port: 9700}
			c.Log = app.LogConfig{Format: "json", Level: "warn"}
			c.Apps = append(append([]apps.App{}, multiApps...), extra...)
			edit(c)
		})
	}
	envApp := fileApp("2001", "key-env", "secret-env")

	tests := []struct {
		name string
		give input
		want app.Config
	}{
		{
			name: "defaults",
			give: input{},
			want: app.Defaults(),
		},
		{
			name: "file overrides default",
			give: input{args: []string{"--config", "{file}"}, file: "server: {port: 7000}\n"},
			want: defaultsWith(func(c *app.Config) { c.Server.Port = 7000 }),
		},
		{
			name: "env overrides file",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_SERVER_PORT": "7001"},
				file: "server: {port: 7000, host: 10.0.0.1}\n",
			},
			want: defaultsWith(func(c *app.Config) { c.Server.Port, c.Server.Host = 7001, "10.0.0.1" }),
		},
		{
			name: "flag overrides env and file",
			give: input{
				args: []string{"--config", "{file}", "--port", "7002", "--host", "127.0.0.2", "--path", "/flag"},
				env:  map[string]string{"FIZZ_SERVER_PORT": "7001", "FIZZ_SERVER_HOST": "127.0.0.1", "FIZZ_SERVER_PATH": "/env"},
				file: "server: {port: 7000, path: /file}\n",
			},
			want: defaultsWith(func(c *app.Config) { c.Server.Port, c.Server.Host, c.Server.Path = 7002, "127.0.0.2", "/flag" }),
		},
		{
			name: "start subcommand first",
			give: input{args: []string{"start", "--port", "0", "--debug"}},
			want: defaultsWith(func(c *app.Config) { c.Server.Port, c.Log.Debug, c.Log.Level = 0, true, "debug" }),
		},
		{
			name: "start subcommand after flags",
			give: input{args: []string{"-port=81", "start", "--path=/p"}},
			want: defaultsWith(func(c *app.Config) { c.Server.Port, c.Server.Path = 81, "/p" }),
		},
		{
			name: "REVERB_ read when FIZZ_ unset",
			give: input{env: map[string]string{
				"REVERB_SERVER_PORT": "6001", "REVERB_SERVER_HOST": "10.1.1.1", "REVERB_SCALING_ENABLED": "true",
				"REVERB_APP_ID": "reverb-id", "REVERB_APP_KEY": "reverb-key", "REVERB_APP_SECRET": "reverb-secret",
				"REVERB_APP_MAX_MESSAGE_SIZE": "2048", "REVERB_MAX_REQUEST_SIZE": "5000",
			}},
			want: defaultsWith(func(c *app.Config) {
				c.Server.Port, c.Server.Host, c.Server.MaxRequestSize, c.Scaling.Enabled = 6001, "10.1.1.1", 5000, true
				c.Apps[0].ID, c.Apps[0].Key, c.Apps[0].Secret, c.Apps[0].MaxMessageSize = "reverb-id", "reverb-key", "reverb-secret", 2048
			}),
		},
		{
			name: "FIZZ_ wins over REVERB_",
			give: input{env: map[string]string{
				"FIZZ_SERVER_PORT": "7000", "REVERB_SERVER_PORT": "6001",
				"FIZZ_APP_KEY": "fizz-key", "REVERB_APP_KEY": "reverb-key",
			}},
			want: defaultsWith(func(c *app.Config) { c.Server.Port, c.Apps[0].Key = 7000, "fizz-key" }),
		},
		{
			name: "empty FIZZ_ falls through to REVERB_",
			give: input{env: map[string]string{"FIZZ_SERVER_PORT": "", "REVERB_SERVER_PORT": "6001"}},
			want: defaultsWith(func(c *app.Config) { c.Server.Port = 6001 }),
		},
		{
			name: "REVERB_CONFIG names the file",
			give: input{env: map[string]string{"REVERB_CONFIG": "{file}"}, file: "log: {level: error}\n"},
			want: defaultsWith(func(c *app.Config) { c.Log.Level = "error" }),
		},
		{
			name: "FIZZ_CONFIG wins over REVERB_CONFIG",
			give: input{env: map[string]string{"FIZZ_CONFIG": "{file}", "REVERB_CONFIG": "/nonexistent/reverb.yaml"}, file: "log: {level: warn}\n"},
			want: defaultsWith(func(c *app.Config) { c.Log.Level = "warn" }),
		},
		{
			name: "--config wins over FIZZ_CONFIG",
			give: input{args: []string{"--config={file}"}, env: map[string]string{"FIZZ_CONFIG": "/nonexistent/fizz.yaml"}, file: "metrics: {port: 0}\n"},
			want: defaultsWith(func(c *app.Config) { c.Metrics.Port = 0 }),
		},
		{
			name: "empty --config turns the file off",
			give: input{args: []string{"--config="}, env: map[string]string{"FIZZ_CONFIG": "/nonexistent/fizz.yaml"}},
			want: app.Defaults(),
		},
		{
			name: "empty file",
			give: input{args: []string{"--config", "{file}"}, file: "# nothing here\n"},
			want: app.Defaults(),
		},
		{
			name: "null values in the file keep the defaults",
			give: input{args: []string{"--config", "{file}"}, file: "server:\n  port:\n  host: ~\nscaling:\n"},
			want: app.Defaults(),
		},
		{
			name: "REDIS_URL",
			give: input{env: map[string]string{"REDIS_URL": "rediss://user:pw@redis.example.com:6380/3", "REDIS_HOST": "ignored"}},
			want: defaultsWith(func(c *app.Config) { c.Scaling.RedisURL = "rediss://user:pw@redis.example.com:6380/3" }),
		},
		{
			name: "REDIS_URL overrides the file",
			give: input{args: []string{"--config", "{file}"}, env: map[string]string{"REDIS_URL": "redis://env:6379/0"}, file: "scaling: {redis_url: 'redis://file:6379/0'}\n"},
			want: defaultsWith(func(c *app.Config) { c.Scaling.RedisURL = "redis://env:6379/0" }),
		},
		{
			name: "REDIS_HOST and friends build the URL",
			give: input{env: map[string]string{
				"REDIS_HOST": "redis.internal", "REDIS_PORT": "6380", "REDIS_USERNAME": "us er",
				"REDIS_PASSWORD": "p@ss:w/rd", "REDIS_DB": "2",
			}},
			want: defaultsWith(func(c *app.Config) { c.Scaling.RedisURL = "redis://us%20er:p%40ss%3Aw%2Frd@redis.internal:6380/2" }),
		},
		{
			name: "REDIS_PASSWORD alone",
			give: input{env: map[string]string{"REDIS_PASSWORD": "s3cret"}},
			want: defaultsWith(func(c *app.Config) { c.Scaling.RedisURL = "redis://:s3cret@127.0.0.1:6379/0" }),
		},
		{
			name: "REDIS_HOST IPv6 and Laravel's null password",
			give: input{env: map[string]string{"REDIS_HOST": "::1", "REDIS_PASSWORD": "null"}},
			want: defaultsWith(func(c *app.Config) { c.Scaling.RedisURL = "redis://[::1]:6379/0" }),
		},
		{
			name: "every variable",
			give: input{env: map[string]string{
				"FIZZ_SERVER_HOST": "127.0.0.1", "FIZZ_SERVER_PORT": "0", "FIZZ_SERVER_PATH": "/ws",
				"FIZZ_MAX_REQUEST_SIZE": "2048", "FIZZ_DEBUG": "YES",
				"FIZZ_APP_ID": "id1", "FIZZ_APP_KEY": "key1", "FIZZ_APP_SECRET": "secret1",
				"FIZZ_APP_PING_INTERVAL": "15", "FIZZ_APP_ACTIVITY_TIMEOUT": " 10 ", "FIZZ_APP_MAX_MESSAGE_SIZE": "500",
				"FIZZ_APP_MAX_CONNECTIONS": "20", "FIZZ_APP_ALLOWED_ORIGINS": "a.com, *.b.com",
				"FIZZ_APP_ACCEPT_CLIENT_EVENTS_FROM": "None", "FIZZ_APP_MAX_PRESENCE_MEMBERS": "7",
				"FIZZ_APP_MAX_PRESENCE_USER_INFO": "99", "FIZZ_APP_CLIENT_EVENTS_PER_SECOND": "0",
				"FIZZ_SCALING_ENABLED": "1", "FIZZ_SCALING_CHANNEL": "cluster-a", "FIZZ_SCALING_TIMEOUT": "500ms",
				"FIZZ_SCALING_LEASE": "6s",
				"FIZZ_METRICS_HOST":  "0.0.0.0", "FIZZ_METRICS_PORT": "9999",
				"FIZZ_LOG_FORMAT": "JSON", "FIZZ_LOG_LEVEL": "warn",
				"FIZZ_SHUTDOWN_GRACE": "1m30s",
			}},
			want: defaultsWith(func(c *app.Config) {
				c.Server.Host, c.Server.Port, c.Server.Path, c.Server.MaxRequestSize = "127.0.0.1", 0, "/ws", 2048
				c.Server.ShutdownGrace = 90 * time.Second
				c.Apps[0] = apps.App{
					ID: "id1", Key: "key1", Secret: "secret1",
					PingInterval: 15 * time.Second, ActivityTimeout: 10 * time.Second,
					MaxMessageSize: 500, MaxConnections: 20, AllowedOrigins: []string{"a.com", "*.b.com"},
					AcceptClientEventsFrom: apps.ClientEventsNone,
					MaxPresenceMembers:     7, MaxPresenceUserInfo: 99, ClientEventsPerSecond: 0,
				}
				c.Scaling.Enabled, c.Scaling.Channel, c.Scaling.Timeout = true, "cluster-a", 500*time.Millisecond
				c.Scaling.Lease = 6 * time.Second
				c.Metrics = app.MetricsConfig{Host: "0.0.0.0", Port: 9999}
				c.Log = app.LogConfig{Format: "json", Level: "debug", Debug: true}
			}),
		},
		{
			name: "--debug=false beats FIZZ_DEBUG",
			give: input{args: []string{"--debug=false"}, env: map[string]string{"FIZZ_DEBUG": "true", "FIZZ_LOG_LEVEL": "error"}},
			want: defaultsWith(func(c *app.Config) { c.Log.Level = "error" }),
		},
		{
			name: "FIZZ_DEBUG=no",
			give: input{env: map[string]string{"FIZZ_DEBUG": "no"}},
			want: app.Defaults(),
		},
		{
			name: "multi-app file",
			give: input{args: []string{"--config", "{file}"}, file: string(multi)},
			want: withApps(func(*app.Config) {}),
		},
		{
			name: "env overrides the multi-app file's settings",
			give: input{args: []string{"--config", "{file}"}, env: map[string]string{"FIZZ_SERVER_PORT": "9001", "REVERB_LOG_LEVEL": "info"}, file: string(multi)},
			want: withApps(func(c *app.Config) { c.Server.Port, c.Log.Level = 9001, "info" }),
		},
		{
			name: "env app with a new id and a key is appended to the file's apps",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_APP_ID": "2001", "FIZZ_APP_KEY": "key-env", "REVERB_APP_SECRET": "secret-env"},
				file: string(multi),
			},
			want: withApps(func(*app.Config) {}, envApp),
		},
		{
			name: "env app with a file app's id overrides that app",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_APP_ID": "1002", "FIZZ_APP_SECRET": "rotated", "FIZZ_APP_MAX_CONNECTIONS": "10"},
				file: string(multi),
			},
			want: withApps(func(c *app.Config) { c.Apps[1].Secret, c.Apps[1].MaxConnections = "rotated", 10 }),
		},
		{
			name: "file apps used as they are without FIZZ_APP_ variables",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_SERVER_HOST": "0.0.0.0"},
				file: "apps:\n  - {id: a, key: b, secret: c}\n",
			},
			want: defaultsWith(func(c *app.Config) { c.Apps = []apps.App{fileApp("a", "b", "c")} }),
		},
		{
			name: "file app values that YAML reads as numbers or lists",
			give: input{
				args: []string{"--config", "{file}"},
				file: "apps:\n  - id: 1001\n    key: 0x1F\n    secret: true\n    allowed_origins: a.com,b.com\n    ping_interval: '5'\n",
			},
			want: defaultsWith(func(c *app.Config) {
				a := fileApp("1001", "0x1F", "true")
				a.AllowedOrigins, a.PingInterval = []string{"a.com", "b.com"}, 5*time.Second
				c.Apps = []apps.App{a}
			}),
		},
		{
			name: "YAML anchors and aliases",
			give: input{
				args: []string{"--config", "{file}"},
				file: "apps:\n  - {id: a, key: ka, secret: s, max_connections: &cap 42}\n  - {id: b, key: kb, secret: s, max_connections: *cap}\n",
			},
			want: defaultsWith(func(c *app.Config) {
				a, b := fileApp("a", "ka", "s"), fileApp("b", "kb", "s")
				a.MaxConnections, b.MaxConnections = 42, 42
				c.Apps = []apps.App{a, b}
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := load(t, tt.give)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	const twoApps = "apps:\n  - id: a\n    key: ka\n    secret: sa\n  - id: b\n    key: kb\n    secret: sb\n"
	tests := []struct {
		name string
		give input
		want string // "{file}" is the config file's path
	}{
		{"port not a number", input{env: map[string]string{"FIZZ_SERVER_PORT": "abc"}}, `FIZZ_SERVER_PORT: "abc" is not a port number`},
		{"port out of range", input{env: map[string]string{"FIZZ_SERVER_PORT": "70000"}}, `FIZZ_SERVER_PORT: 70000 is not a port number`},
		{"REVERB_ port negative", input{env: map[string]string{"REVERB_SERVER_PORT": "-1"}}, `REVERB_SERVER_PORT: -1 is not a port number`},
		{"port flag not a number", input{args: []string{"--port", "http"}}, `--port: "http" is not a port number`},
		{"port flag out of range beats valid env", input{args: []string{"--port=65536"}, env: map[string]string{"FIZZ_SERVER_PORT": "1"}}, `--port: 65536`},
		{"path without slash", input{env: map[string]string{"FIZZ_SERVER_PATH": "ws"}}, `FIZZ_SERVER_PATH: "ws" must be empty or start with /`},
		{"path flag with trailing slash", input{args: []string{"--path", "/ws/"}}, `--path: "/ws/"`},
		{"max request size zero", input{env: map[string]string{"FIZZ_MAX_REQUEST_SIZE": "0"}}, `FIZZ_MAX_REQUEST_SIZE: 0 must be more than 0`},
		{"max request size not a number", input{env: map[string]string{"REVERB_MAX_REQUEST_SIZE": "1MB"}}, `REVERB_MAX_REQUEST_SIZE: "1MB" is not a whole number`},
		{"debug not a boolean", input{env: map[string]string{"FIZZ_DEBUG": "maybe"}}, `FIZZ_DEBUG: "maybe" is not a boolean`},
		{"debug flag not a boolean", input{args: []string{"--debug=maybe"}}, `-debug`},
		{"app id only spaces", input{env: map[string]string{"FIZZ_APP_ID": " "}}, `FIZZ_APP_ID: has leading or trailing spaces`},
		{"app key with trailing space", input{env: map[string]string{"REVERB_APP_KEY": "key "}}, `REVERB_APP_KEY: has leading or trailing spaces`},
		{"ping interval zero", input{env: map[string]string{"FIZZ_APP_PING_INTERVAL": "0"}}, `FIZZ_APP_PING_INTERVAL: 0s must be more than 0 seconds`},
		{"ping interval with a unit", input{env: map[string]string{"FIZZ_APP_PING_INTERVAL": "1m"}}, `FIZZ_APP_PING_INTERVAL: "1m" is not a whole number of seconds`},
		{"ping interval overflows", input{env: map[string]string{"FIZZ_APP_PING_INTERVAL": "99999999999"}}, `FIZZ_APP_PING_INTERVAL: "99999999999" seconds is too long`},
		{"activity timeout negative", input{env: map[string]string{"FIZZ_APP_ACTIVITY_TIMEOUT": "-5"}}, `FIZZ_APP_ACTIVITY_TIMEOUT: -5s must be more than 0 seconds`},
		{"max message size zero", input{env: map[string]string{"FIZZ_APP_MAX_MESSAGE_SIZE": "0"}}, `FIZZ_APP_MAX_MESSAGE_SIZE: 0 must be more than 0 bytes`},
		{"max connections negative", input{env: map[string]string{"FIZZ_APP_MAX_CONNECTIONS": "-1"}}, `FIZZ_APP_MAX_CONNECTIONS: -1 must not be negative`},
		{"empty origin", input{env: map[string]string{"FIZZ_APP_ALLOWED_ORIGINS": "a.com,,b.com"}}, `FIZZ_APP_ALLOWED_ORIGINS: entry 2 is empty`},
		{"client events from everyone", input{env: map[string]string{"FIZZ_APP_ACCEPT_CLIENT_EVENTS_FROM": "everyone"}}, `FIZZ_APP_ACCEPT_CLIENT_EVENTS_FROM: "everyone" is not members, all or none`},
		{"presence members zero", input{env: map[string]string{"FIZZ_APP_MAX_PRESENCE_MEMBERS": "0"}}, `FIZZ_APP_MAX_PRESENCE_MEMBERS: 0 must be more than 0`},
		{"presence user info not a number", input{env: map[string]string{"REVERB_APP_MAX_PRESENCE_USER_INFO": "2k"}}, `REVERB_APP_MAX_PRESENCE_USER_INFO: "2k" is not a whole number`},
		{"client events per second negative", input{env: map[string]string{"FIZZ_APP_CLIENT_EVENTS_PER_SECOND": "-1"}}, `FIZZ_APP_CLIENT_EVENTS_PER_SECOND: -1 must not be negative`},
		{"scaling enabled not a boolean", input{env: map[string]string{"REVERB_SCALING_ENABLED": "on"}}, `REVERB_SCALING_ENABLED: "on" is not a boolean`},
		{"scaling channel with a space", input{env: map[string]string{"FIZZ_SCALING_CHANNEL": "my channel"}}, `FIZZ_SCALING_CHANNEL: "my channel" must not contain spaces`},
		{"scaling timeout without unit", input{env: map[string]string{"FIZZ_SCALING_TIMEOUT": "2"}}, `FIZZ_SCALING_TIMEOUT: "2" is not a duration`},
		{"scaling timeout zero", input{env: map[string]string{"FIZZ_SCALING_TIMEOUT": "0s"}}, `FIZZ_SCALING_TIMEOUT: 0s must be more than 0`},
		{"scaling lease too short", input{env: map[string]string{"FIZZ_SCALING_LEASE": "10ms"}}, `FIZZ_SCALING_LEASE: 10ms must be at least 300ms`},
		{"redis URL scheme", input{env: map[string]string{"FIZZ_SCALING_ENABLED": "true", "REDIS_URL": "http://u:hunter2@redis:6379"}}, `REDIS_URL: scheme "http" is not redis or rediss`},
		{"redis URL unparsable", input{env: map[string]string{"FIZZ_SCALING_ENABLED": "true", "REDIS_URL": "redis://u:hunter2@re dis:6379"}}, `REDIS_URL: not a URL`},
		{"redis URL bad database", input{env: map[string]string{"FIZZ_SCALING_ENABLED": "true", "REDIS_URL": "redis://redis:6379/x"}}, `REDIS_URL: database "x" is not a number`},
		{"redis URL from the file", input{args: []string{"--config", "{file}"}, file: "scaling:\n  enabled: true\n  redis_url: 'tcp://redis'\n"}, `{file}:3: scaling.redis_url: scheme "tcp"`},
		{"REDIS_PORT not a number", input{env: map[string]string{"REDIS_HOST": "redis", "REDIS_PORT": "abc"}}, `REDIS_PORT: "abc" is not a port number`},
		{"REDIS_DB negative", input{env: map[string]string{"REDIS_DB": "-1"}}, `REDIS_DB: "-1" is not a database number`},
		{"metrics port out of range", input{env: map[string]string{"FIZZ_METRICS_PORT": "99999"}}, `FIZZ_METRICS_PORT: 99999 is not a port number`},
		{"log format", input{env: map[string]string{"FIZZ_LOG_FORMAT": "xml"}}, `FIZZ_LOG_FORMAT: "xml" is not text or json`},
		{"log level", input{env: map[string]string{"REVERB_LOG_LEVEL": "verbose"}}, `REVERB_LOG_LEVEL: "verbose" is not debug, info, warn or error`},
		{"TLS cert without key", input{env: map[string]string{"FIZZ_TLS_CERT": "/c.pem"}}, `FIZZ_TLS_KEY: must be set when FIZZ_TLS_CERT is`},
		{"TLS key without cert", input{env: map[string]string{"REVERB_TLS_KEY": "/k.pem"}}, `FIZZ_TLS_CERT: must be set when FIZZ_TLS_KEY is`},
		{"shutdown grace negative", input{env: map[string]string{"FIZZ_SHUTDOWN_GRACE": "-1s"}}, `FIZZ_SHUTDOWN_GRACE: -1s must not be negative`},
		{"shutdown grace not a duration", input{env: map[string]string{"FIZZ_SHUTDOWN_GRACE": "soon"}}, `FIZZ_SHUTDOWN_GRACE: "soon" is not a duration`},
		{"unknown flag", input{args: []string{"--prot", "80"}}, `-prot`},
		{"flag without value", input{args: []string{"--port"}}, `-port`},
		{"unknown command", input{args: []string{"stop"}}, `unexpected argument "stop"`},
		{"start twice", input{args: []string{"start", "start"}}, `unexpected argument "start"`},
		{"word after flags", input{args: []string{"start", "--debug", "now"}}, `unexpected argument "now"`},
		{"missing file from --config", input{args: []string{"--config", "/nonexistent/fizz.yaml"}}, `--config: open /nonexistent/fizz.yaml`},
		{"missing file from FIZZ_CONFIG", input{env: map[string]string{"FIZZ_CONFIG": "/nonexistent/fizz.yaml"}}, `FIZZ_CONFIG: open /nonexistent/fizz.yaml`},
		{"missing file from REVERB_CONFIG", input{env: map[string]string{"REVERB_CONFIG": "/nonexistent/fizz.yaml"}}, `REVERB_CONFIG: open`},
		{"unknown top-level key", input{args: []string{"--config", "{file}"}, file: "sever:\n  port: 1\n"}, `{file}:1: sever: unknown key (known keys: server, scaling, apps, metrics, log)`},
		{"misspelt server key", input{args: []string{"--config", "{file}"}, file: "server:\n  host: x\n  prot: 1\n"}, `{file}:3: server.prot: unknown key`},
		{"misspelt app key", input{args: []string{"--config", "{file}"}, file: twoApps + "    pingInterval: 5\n"}, `{file}:8: apps[1].pingInterval: unknown key (known keys: id, key, secret, ping_interval`},
		{"file port not a number", input{args: []string{"--config", "{file}"}, file: "server:\n  port: abc\n"}, `{file}:2: server.port: "abc" is not a port number`},
		{"file port out of range", input{args: []string{"--config", "{file}"}, file: "server:\n  port: 100000\n"}, `{file}:2: server.port: 100000 is not a port number`},
		{"file port given a list", input{args: []string{"--config", "{file}"}, file: "server:\n  port: [1, 2]\n"}, `{file}:2: server.port: expected a single value`},
		{"file section given a list", input{args: []string{"--config", "{file}"}, file: "server: [1]\n"}, `{file}:1: server must be a mapping, not a list`},
		{"file apps given a mapping", input{args: []string{"--config", "{file}"}, file: "apps: {id: a}\n"}, `{file}:1: apps must be a list, not a mapping`},
		{"file is a list", input{args: []string{"--config", "{file}"}, file: "- 1\n"}, `{file}:1: the file must be a mapping`},
		{"file syntax error", input{args: []string{"--config", "{file}"}, file: "server: {port: 1\n"}, `{file}:`},
		{"file duplicate key", input{args: []string{"--config", "{file}"}, file: "server: {port: 1, port: 2}\n"}, `{file}:1: mapping key "port" already defined`},
		{"file with two documents", input{args: []string{"--config", "{file}"}, file: "server: {port: 1}\n---\nserver: {port: 2}\n"}, `{file}: holds more than one YAML document`},
		{"file apps empty", input{args: []string{"--config", "{file}"}, file: "apps: []\n"}, `{file}: apps: the list is empty`},
		{"file app without id", input{args: []string{"--config", "{file}"}, file: "apps:\n  - key: k\n    secret: s\n"}, `{file}:2: apps[0].id: must not be empty`},
		{"file app without secret", input{args: []string{"--config", "{file}"}, file: "apps:\n  - id: a\n    key: k\n"}, `{file}:2: apps[0].secret: must not be empty`},
		{"file app duplicate key", input{args: []string{"--config", "{file}"}, file: "apps:\n  - {id: a, key: k, secret: s}\n  - {id: b, key: k, secret: s}\n"}, `{file}:3: apps[1].key: duplicate key "k"`},
		{"file app duplicate id", input{args: []string{"--config", "{file}"}, file: "apps:\n  - {id: a, key: k1, secret: s}\n  - {id: a, key: k2, secret: s}\n"}, `{file}:3: apps[1].id: duplicate id "a"`},
		{"file app empty origins", input{args: []string{"--config", "{file}"}, file: "apps:\n  - {id: a, key: k, secret: s, allowed_origins: []}\n"}, `{file}:2: apps[0].allowed_origins: must list at least one origin`},
		{"file app origins of mappings", input{args: []string{"--config", "{file}"}, file: "apps:\n  - {id: a, key: k, secret: s, allowed_origins: [{a: b}]}\n"}, `{file}:2: apps[0].allowed_origins: expected a list of strings`},
		{"file app ping interval as duration", input{args: []string{"--config", "{file}"}, file: "apps:\n  - id: a\n    key: k\n    secret: s\n    ping_interval: 60s\n"}, `{file}:5: apps[0].ping_interval: "60s" is not a whole number of seconds`},
		{"file scaling timeout not a duration", input{args: []string{"--config", "{file}"}, file: "scaling: {timeout: forever}\n"}, `{file}:1: scaling.timeout: "forever" is not a duration`},
		{"env limit with file apps and no id", input{args: []string{"--config", "{file}"}, env: map[string]string{"FIZZ_APP_MAX_CONNECTIONS": "5"}, file: twoApps}, `FIZZ_APP_MAX_CONNECTIONS: set, but {file} lists apps and none has id "app-id"`},
		{"env id with file apps and no key", input{args: []string{"--config", "{file}"}, env: map[string]string{"REVERB_APP_ID": "zzz", "REVERB_APP_SECRET": "s"}, file: twoApps}, `REVERB_APP_ID: set, but {file} lists apps and none has id "zzz"`},
		{"env app key clashes with a file app", input{args: []string{"--config", "{file}"}, env: map[string]string{"FIZZ_APP_ID": "c", "FIZZ_APP_KEY": "ka"}, file: twoApps}, `FIZZ_APP_KEY: duplicate key "ka" (also apps[0].key)`},
		{"env value wrong for a file app", input{args: []string{"--config", "{file}"}, env: map[string]string{"FIZZ_APP_ID": "b", "FIZZ_APP_PING_INTERVAL": "-1"}, file: twoApps}, `FIZZ_APP_PING_INTERVAL: -1s must be more than 0 seconds`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, tt.give)
			require.Error(t, err)
			assert.Contains(t, err.Error(), strings.ReplaceAll(tt.want, "{file}", path))
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.NotContains(t, err.Error(), "hunter2", "no password in messages")
		})
	}
}

func TestLoadHelp(t *testing.T) {
	tests := []struct {
		name string
		give []string
	}{
		{"long", []string{"--help"}},
		{"short", []string{"-h"}},
		{"after start", []string{"start", "-help"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := app.Load(tt.give, nil)
			require.ErrorIs(t, err, flag.ErrHelp)
			assert.Contains(t, err.Error(), "Usage: fizz [start] [--host H] [--port P] [--path PREFIX] [--config FILE] [--debug]")
		})
	}
}

// Load reads only the getenv it is given, never the process environment.
func TestLoadIgnoresProcessEnvironment(t *testing.T) {
	t.Setenv("FIZZ_SERVER_PORT", "1234")
	t.Setenv("REDIS_URL", "redis://elsewhere:6379/0")

	cfg, err := app.Load(nil, func(string) string { return "" })
	require.NoError(t, err)
	assert.Equal(t, app.Defaults(), cfg)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		give app.Config
		want string
	}{
		{"no apps", defaultsWith(func(c *app.Config) { c.Apps = nil }), "apps: at least one app is required"},
		{"empty key", defaultsWith(func(c *app.Config) { c.Apps[0].Key = "" }), "apps[0].key: must not be empty"},
		{"duplicate id", defaultsWith(func(c *app.Config) {
			b := c.Apps[0]
			b.Key = "other"
			c.Apps = append(c.Apps, b)
		}), `apps[1].id: duplicate id "app-id" (also apps[0].id)`},
		{"path only a slash", defaultsWith(func(c *app.Config) { c.Server.Path = "/" }), `server.path: "/" must be empty or start with / and not end with /`},
		{"empty channel", defaultsWith(func(c *app.Config) { c.Scaling.Channel = "" }), "scaling.channel: must not be empty"},
		{"redis without host", defaultsWith(func(c *app.Config) { c.Scaling.Enabled, c.Scaling.RedisURL = true, "redis:///0" }), "scaling.redis_url: has no host"},
		{"redis bad port", defaultsWith(func(c *app.Config) { c.Scaling.Enabled, c.Scaling.RedisURL = true, "redis://h:0/0" }), `scaling.redis_url: port "0" is not a port number`},
		{"nil origins", defaultsWith(func(c *app.Config) { c.Apps[0].AllowedOrigins = nil }), `apps[0].allowed_origins: must list at least one origin ("*" allows all)`},
		{"empty level", defaultsWith(func(c *app.Config) { c.Log.Level = "" }), `log.level: "" is not debug, info, warn or error`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.EqualError(t, tt.give.Validate(), tt.want)
		})
	}
}

func TestValidateAcceptsEdgeValues(t *testing.T) {
	tests := []struct {
		name string
		give app.Config
	}{
		{"defaults", app.Defaults()},
		{"port 0 and metrics off", defaultsWith(func(c *app.Config) { c.Server.Port, c.Metrics.Port = 0, 0 })},
		{"no shutdown grace", defaultsWith(func(c *app.Config) { c.Server.ShutdownGrace = 0 })},
		{"bad redis URL while scaling is off", defaultsWith(func(c *app.Config) { c.Scaling.RedisURL = "unix:///tmp/redis.sock" })},
		{"rediss with user and db", defaultsWith(func(c *app.Config) {
			c.Scaling.Enabled, c.Scaling.RedisURL = true, "rediss://u:p@redis.example.com:6380/15"
		})},
		{"text logs", defaultsWith(func(c *app.Config) { c.Log.Format = "text" })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.NoError(t, tt.give.Validate())
		})
	}
}

func TestUsesDefaultCredentials(t *testing.T) {
	custom := fileApp("1", "key", "secret")
	tests := []struct {
		name string
		give []apps.App
		want bool
	}{
		{"defaults", app.Defaults().Apps, true},
		{"custom", []apps.App{custom}, false},
		{"default secret", []apps.App{fileApp("1", "key", "app-secret")}, true},
		{"default key", []apps.App{fileApp("1", "app-key", "secret")}, true},
		{"second app default", []apps.App{custom, fileApp("2", "key2", "app-secret")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, app.Config{Apps: tt.give}.UsesDefaultCredentials())
		})
	}
}

// FuzzLoadFile feeds arbitrary config files to Load: it must never panic,
// and what it accepts must be valid. Seeds are in testdata/fuzz.
func FuzzLoadFile(f *testing.F) {
	multi, err := os.ReadFile(filepath.Join("testdata", "multi.yaml"))
	require.NoError(f, err)
	f.Add(string(multi))
	f.Add("server: {port: 1}\n")
	f.Fuzz(func(t *testing.T, file string) {
		cfg, _, err := load(t, input{args: []string{"--config", "{file}"}, file: file})
		if err == nil {
			assert.NoError(t, cfg.Validate())
		}
	})
}

// FuzzLoadEnv sets every variable to the same arbitrary value.
func FuzzLoadEnv(f *testing.F) {
	f.Add("1")
	f.Add("true")
	f.Add("redis://:p@h:1/2")
	f.Fuzz(func(t *testing.T, value string) {
		names := []string{
			"FIZZ_SERVER_HOST", "FIZZ_SERVER_PORT", "FIZZ_SERVER_PATH", "FIZZ_MAX_REQUEST_SIZE", "FIZZ_DEBUG",
			"FIZZ_APP_ID", "FIZZ_APP_KEY", "FIZZ_APP_SECRET", "FIZZ_APP_PING_INTERVAL", "FIZZ_APP_ACTIVITY_TIMEOUT",
			"FIZZ_APP_MAX_MESSAGE_SIZE", "FIZZ_APP_MAX_CONNECTIONS", "FIZZ_APP_ALLOWED_ORIGINS",
			"FIZZ_APP_ACCEPT_CLIENT_EVENTS_FROM", "FIZZ_APP_MAX_PRESENCE_MEMBERS", "FIZZ_APP_MAX_PRESENCE_USER_INFO",
			"FIZZ_APP_CLIENT_EVENTS_PER_SECOND", "FIZZ_SCALING_ENABLED", "FIZZ_SCALING_CHANNEL", "FIZZ_SCALING_TIMEOUT",
			"FIZZ_METRICS_HOST", "FIZZ_METRICS_PORT", "FIZZ_LOG_FORMAT", "FIZZ_LOG_LEVEL", "FIZZ_TLS_CERT",
			"FIZZ_TLS_KEY", "FIZZ_SHUTDOWN_GRACE", "REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_DB",
		}
		env := map[string]string{}
		for _, n := range names {
			env[n] = value
		}
		cfg, err := app.Load([]string{"--port", value}, func(name string) string { return env[name] })
		if err == nil {
			assert.NoError(t, cfg.Validate())
		}
	})
}
