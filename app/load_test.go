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
	"github.com/fizz-server/fizz/modules/webhooks"
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

	assert.Equal(t, app.Defaults(), app.Comparable(cfg))
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
		SubscriptionCount:      false,
		RequireSignin:          false,
		SigninTimeout:          30 * time.Second,
		RateLimit:              apps.RateLimit{MaxAttempts: apps.DefaultRateLimitMaxAttempts, Decay: apps.DefaultRateLimitDecay},
	}}, cfg.Apps)
	assert.Nil(t, cfg.Apps[0].Webhooks)
	assert.False(t, cfg.Apps[0].WebhookBatching)
	assert.Equal(t, apps.DefaultSigninTimeout, cfg.Apps[0].SigninTimeout)
	assert.Equal(t, webhooks.Config{
		LeaveDelay:  3 * time.Second,
		Timeout:     5 * time.Second,
		RetryFor:    5 * time.Minute,
		BatchWindow: 50 * time.Millisecond,
	}, cfg.Webhooks)
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
			name: "Sentinel from the environment",
			give: input{env: map[string]string{"FIZZ_REDIS_SENTINELS": "127.0.0.1:26379, [::1]:26380", "REVERB_REDIS_MASTER": " mymaster "}},
			want: defaultsWith(func(c *app.Config) {
				c.Scaling.RedisSentinels, c.Scaling.RedisMaster = []string{"127.0.0.1:26379", "[::1]:26380"}, "mymaster"
			}),
		},
		{
			name: "Sentinel from the file",
			give: input{args: []string{"--config", "{file}"}, file: "scaling:\n  redis_sentinels: [10.0.0.1:26379, 10.0.0.2:26379]\n  redis_master: mymaster\n"},
			want: defaultsWith(func(c *app.Config) {
				c.Scaling.RedisSentinels, c.Scaling.RedisMaster = []string{"10.0.0.1:26379", "10.0.0.2:26379"}, "mymaster"
			}),
		},
		{
			name: "Redis Cluster from the file, the environment's list wins",
			give: input{args: []string{"--config", "{file}"}, env: map[string]string{"REVERB_REDIS_CLUSTER": "10.0.0.9:7000"}, file: "scaling:\n  redis_cluster: [10.0.0.1:7000, 10.0.0.2:7000]\n"},
			want: defaultsWith(func(c *app.Config) { c.Scaling.RedisCluster = []string{"10.0.0.9:7000"} }),
		},
		{
			name: "Redis Cluster from the file",
			give: input{args: []string{"--config", "{file}"}, file: "scaling:\n  redis_cluster: [10.0.0.1:7000, 10.0.0.2:7000]\n"},
			want: defaultsWith(func(c *app.Config) { c.Scaling.RedisCluster = []string{"10.0.0.1:7000", "10.0.0.2:7000"} }),
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
				"FIZZ_APP_SUBSCRIPTION_COUNT": "true", "FIZZ_APP_REQUIRE_SIGNIN": "yes", "FIZZ_APP_SIGNIN_TIMEOUT": "45s",
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
					SubscriptionCount: true, RequireSignin: true, SigninTimeout: 45 * time.Second,
					RateLimit: apps.RateLimit{MaxAttempts: 60, Decay: time.Minute},
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
			assert.Equal(t, tt.want, app.Comparable(got))
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
		{"sentinel and cluster both set", input{env: map[string]string{"FIZZ_REDIS_SENTINELS": "127.0.0.1:26379", "FIZZ_REDIS_MASTER": "m", "FIZZ_REDIS_CLUSTER": "127.0.0.1:7000"}},
			`FIZZ_REDIS_CLUSTER: must not be set with the Sentinel list: choose Sentinel or Redis Cluster`},
		{"sentinels without a master", input{env: map[string]string{"REVERB_REDIS_SENTINELS": "127.0.0.1:26379"}}, `scaling.redis_master: must be set with the Sentinel list`},
		{"sentinel without a port", input{env: map[string]string{"FIZZ_REDIS_SENTINELS": "127.0.0.1", "FIZZ_REDIS_MASTER": "m"}}, `FIZZ_REDIS_SENTINELS: entry 1 "127.0.0.1" is not a host:port address`},
		{"cluster seed port out of range", input{env: map[string]string{"FIZZ_REDIS_CLUSTER": "a:7000,b:70000"}}, `FIZZ_REDIS_CLUSTER: entry 2 "b:70000" is not a host:port address`},
		{"cluster seed without a host", input{env: map[string]string{"FIZZ_REDIS_CLUSTER": ":7000"}}, `FIZZ_REDIS_CLUSTER: entry 1 ":7000" is not a host:port address`},
		{"cluster seed empty", input{env: map[string]string{"FIZZ_REDIS_CLUSTER": "a:7000,,b:7001"}}, `FIZZ_REDIS_CLUSTER: entry 2 is empty`},
		{"cluster seed list empty in the file", input{args: []string{"--config", "{file}"}, file: "scaling:\n  redis_cluster: []\n"}, `{file}:2: scaling.redis_cluster: the list is empty`},
		{"cluster seeds not a list in the file", input{args: []string{"--config", "{file}"}, file: "scaling:\n  redis_cluster: {a: b}\n"}, `scaling.redis_cluster: expected a list of host:port addresses`},
		{"cluster with a brace in the channel", input{env: map[string]string{"FIZZ_REDIS_CLUSTER": "a:7000", "FIZZ_SCALING_CHANNEL": "fi{zz}"}}, `FIZZ_REDIS_CLUSTER: the scaling channel "fi{zz}" must not contain { or }`},
		{"sentinels and master from the file, cluster from the environment", input{args: []string{"--config", "{file}"}, env: map[string]string{"FIZZ_REDIS_CLUSTER": "a:7000"},
			file: "scaling:\n  redis_sentinels: [127.0.0.1:26379]\n  redis_master: m\n"}, `FIZZ_REDIS_CLUSTER: must not be set with the Sentinel list`},
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
		{"unknown top-level key", input{args: []string{"--config", "{file}"}, file: "sever:\n  port: 1\n"}, `{file}:1: sever: unknown key (known keys: server, scaling, apps, metrics, log, webhooks)`},
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
		{"file app section not a mapping", input{args: []string{"--config", "{file}"}, file: "apps:\n  - {id: a, key: k, secret: s, rate_limiting: 5}\n"}, `{file}:2: an app's rate_limiting must be a mapping, not a single value`},
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

// hooksFile is the README's webhook example ("Webhooks") with the global settings.
const hooksFile = `webhooks: {leave_delay: 0s, timeout: 2s, retry_for: 1m, batch_window: 100ms}
apps:
  - id: a
    key: ka
    secret: sa
    webhook_batching: true
    webhooks:
      - url: "https://example.com/pusher/webhooks"
        event_types: [channel_occupied, channel_vacated]
        filter: {channel_name_starts_with: "private-", channel_name_ends_with: ""}
        headers: {X-Custom: "value", X-Count: 5}
      - url: http://10.0.0.1:8000/hooks
  - id: b
    key: kb
    secret: sb
`

func TestLoadWebhooks(t *testing.T) {
	fileHooks := []apps.Webhook{
		{
			URL:        "https://example.com/pusher/webhooks",
			EventTypes: []string{"channel_occupied", "channel_vacated"},
			Filter:     apps.WebhookFilter{ChannelNameStartsWith: "private-"},
			Headers:    map[string]string{"X-Custom": "value", "X-Count": "5"},
		},
		{URL: "http://10.0.0.1:8000/hooks"},
	}
	// fromFile is the configuration hooksFile gives, changed by edit.
	fromFile := func(edit func(c *app.Config)) app.Config {
		return defaultsWith(func(c *app.Config) {
			c.Webhooks = webhooks.Config{Timeout: 2 * time.Second, RetryFor: time.Minute, BatchWindow: 100 * time.Millisecond}
			a, b := fileApp("a", "ka", "sa"), fileApp("b", "kb", "sb")
			a.WebhookBatching, a.Webhooks = true, append([]apps.Webhook{}, fileHooks...)
			c.Apps = []apps.App{a, b}
			edit(c)
		})
	}
	const hooksJSON = `[
		{"url": "https://a.example.com/hook", "event_types": ["member_added", "member_removed"],
		 "filter": {"channel_name_starts_with": "presence-", "channel_name_ends_with": "-room"},
		 "headers": {"Authorization": "Bearer t0ken"}},
		{"url": " http://b.example.com:8080/ "}
	]`
	jsonHooks := []apps.Webhook{
		{
			URL:        "https://a.example.com/hook",
			EventTypes: []string{"member_added", "member_removed"},
			Filter:     apps.WebhookFilter{ChannelNameStartsWith: "presence-", ChannelNameEndsWith: "-room"},
			Headers:    map[string]string{"Authorization": "Bearer t0ken"},
		},
		{URL: "http://b.example.com:8080/"},
	}
	// withShorthand is jsonHooks and then FIZZ_APP_WEBHOOK_URL's webhook.
	withShorthand := func(url string) []apps.Webhook {
		return append(append([]apps.Webhook{}, jsonHooks...), apps.Webhook{URL: url})
	}

	tests := []struct {
		name string
		give input
		want app.Config
	}{
		{
			name: "nothing set",
			give: input{},
			want: app.Defaults(),
		},
		{
			name: "file",
			give: input{args: []string{"--config", "{file}"}, file: hooksFile},
			want: fromFile(func(*app.Config) {}),
		},
		{
			name: "file with null values keeps the defaults",
			give: input{
				args: []string{"--config", "{file}"},
				file: "webhooks:\n  timeout:\napps:\n  - id: a\n    key: k\n    secret: s\n    webhooks:\n    webhook_batching:\n",
			},
			want: defaultsWith(func(c *app.Config) { c.Apps = []apps.App{fileApp("a", "k", "s")} }),
		},
		{
			name: "file webhook with null fields, and an empty list",
			give: input{
				args: []string{"--config", "{file}"},
				file: "apps:\n  - id: a\n    key: k\n    secret: s\n    webhooks:\n      - {url: 'http://h', event_types: ~, filter: ~, headers: ~}\n" +
					"  - {id: b, key: kb, secret: s, webhooks: []}\n",
			},
			want: defaultsWith(func(c *app.Config) {
				a := fileApp("a", "k", "s")
				a.Webhooks = []apps.Webhook{{URL: "http://h"}}
				c.Apps = []apps.App{a, fileApp("b", "kb", "s")}
			}),
		},
		{
			name: "file webhook through a YAML alias",
			give: input{
				args: []string{"--config", "{file}"},
				file: "apps:\n  - {id: a, key: ka, secret: s, webhooks: [&hook {url: 'https://h', event_types: [cache_miss]}]}\n" +
					"  - {id: b, key: kb, secret: s, webhooks: [*hook]}\n",
			},
			want: defaultsWith(func(c *app.Config) {
				a, b := fileApp("a", "ka", "s"), fileApp("b", "kb", "s")
				a.Webhooks = []apps.Webhook{{URL: "https://h", EventTypes: []string{"cache_miss"}}}
				b.Webhooks = []apps.Webhook{{URL: "https://h", EventTypes: []string{"cache_miss"}}}
				c.Apps = []apps.App{a, b}
			}),
		},
		{
			name: "env JSON, then the shorthand, batching and settings",
			give: input{env: map[string]string{
				"FIZZ_APP_WEBHOOKS":         hooksJSON,
				"FIZZ_APP_WEBHOOK_URL":      " https://c.example.com/all ",
				"FIZZ_APP_WEBHOOK_BATCHING": "yes",
				"FIZZ_WEBHOOK_LEAVE_DELAY":  "1s",
				"FIZZ_WEBHOOK_TIMEOUT":      "750ms",
				"FIZZ_WEBHOOK_RETRY_FOR":    "1h",
				"FIZZ_WEBHOOK_BATCH_WINDOW": "10ms",
			}},
			want: defaultsWith(func(c *app.Config) {
				c.Apps[0].Webhooks = withShorthand("https://c.example.com/all")
				c.Apps[0].WebhookBatching = true
				c.Webhooks = webhooks.Config{LeaveDelay: time.Second, Timeout: 750 * time.Millisecond, RetryFor: time.Hour, BatchWindow: 10 * time.Millisecond}
			}),
		},
		{
			name: "env shorthand alone",
			give: input{env: map[string]string{"FIZZ_APP_WEBHOOK_URL": "http://localhost:8000/pusher"}},
			want: defaultsWith(func(c *app.Config) { c.Apps[0].Webhooks = []apps.Webhook{{URL: "http://localhost:8000/pusher"}} }),
		},
		{
			name: "env JSON empty array",
			give: input{env: map[string]string{"FIZZ_APP_WEBHOOKS": " [ ] "}},
			want: app.Defaults(),
		},
		{
			name: "env JSON null",
			give: input{env: map[string]string{"REVERB_APP_WEBHOOKS": "null"}},
			want: app.Defaults(),
		},
		{
			name: "REVERB_ read when FIZZ_ unset",
			give: input{env: map[string]string{
				"REVERB_APP_WEBHOOKS":         hooksJSON,
				"REVERB_APP_WEBHOOK_URL":      "https://c.example.com/all",
				"REVERB_APP_WEBHOOK_BATCHING": "true",
				"REVERB_WEBHOOK_LEAVE_DELAY":  "0s",
				"REVERB_WEBHOOK_TIMEOUT":      "1s",
				"REVERB_WEBHOOK_RETRY_FOR":    "30s",
				"REVERB_WEBHOOK_BATCH_WINDOW": "1s",
			}},
			want: defaultsWith(func(c *app.Config) {
				c.Apps[0].Webhooks = withShorthand("https://c.example.com/all")
				c.Apps[0].WebhookBatching = true
				c.Webhooks = webhooks.Config{LeaveDelay: 0, Timeout: time.Second, RetryFor: 30 * time.Second, BatchWindow: time.Second}
			}),
		},
		{
			name: "FIZZ_ wins over REVERB_",
			give: input{env: map[string]string{
				"FIZZ_APP_WEBHOOKS": "[]", "REVERB_APP_WEBHOOKS": hooksJSON,
				"FIZZ_APP_WEBHOOK_URL": "https://fizz.example.com", "REVERB_APP_WEBHOOK_URL": "https://reverb.example.com",
				"FIZZ_APP_WEBHOOK_BATCHING": "false", "REVERB_APP_WEBHOOK_BATCHING": "true",
				"FIZZ_WEBHOOK_TIMEOUT": "9s", "REVERB_WEBHOOK_TIMEOUT": "8s",
			}},
			want: defaultsWith(func(c *app.Config) {
				c.Apps[0].Webhooks = []apps.Webhook{{URL: "https://fizz.example.com"}}
				c.Webhooks.Timeout = 9 * time.Second
			}),
		},
		{
			name: "env settings override the file",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_WEBHOOK_LEAVE_DELAY": "5s", "REVERB_WEBHOOK_BATCH_WINDOW": "1s"},
				file: hooksFile,
			},
			want: fromFile(func(c *app.Config) { c.Webhooks.LeaveDelay, c.Webhooks.BatchWindow = 5*time.Second, time.Second }),
		},
		{
			name: "env shorthand replaces a file app's webhooks",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_APP_ID": "a", "FIZZ_APP_WEBHOOK_URL": "https://env.example.com"},
				file: hooksFile,
			},
			want: fromFile(func(c *app.Config) { c.Apps[0].Webhooks = []apps.Webhook{{URL: "https://env.example.com"}} }),
		},
		{
			name: "env JSON and shorthand replace a file app's webhooks",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_APP_ID": "a", "FIZZ_APP_WEBHOOKS": hooksJSON, "FIZZ_APP_WEBHOOK_URL": "https://env.example.com"},
				file: hooksFile,
			},
			want: fromFile(func(c *app.Config) { c.Apps[0].Webhooks = withShorthand("https://env.example.com") }),
		},
		{
			name: "env empty JSON removes a file app's webhooks",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_APP_ID": "a", "FIZZ_APP_WEBHOOKS": "[]"},
				file: hooksFile,
			},
			want: fromFile(func(c *app.Config) { c.Apps[0].Webhooks = nil }),
		},
		{
			name: "env batching alone keeps a file app's webhooks",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_APP_ID": "a", "FIZZ_APP_WEBHOOK_BATCHING": "false"},
				file: hooksFile,
			},
			want: fromFile(func(c *app.Config) { c.Apps[0].WebhookBatching = false }),
		},
		{
			name: "env app with webhooks appended to the file's apps",
			give: input{
				args: []string{"--config", "{file}"},
				env:  map[string]string{"FIZZ_APP_ID": "c", "FIZZ_APP_KEY": "kc", "FIZZ_APP_SECRET": "sc", "FIZZ_APP_WEBHOOK_URL": "https://env.example.com"},
				file: hooksFile,
			},
			want: fromFile(func(c *app.Config) {
				env := fileApp("c", "kc", "sc")
				env.Webhooks = []apps.Webhook{{URL: "https://env.example.com"}}
				c.Apps = append(c.Apps, env)
			}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := load(t, tt.give)
			require.NoError(t, err)
			assert.Equal(t, tt.want, app.Comparable(got))
		})
	}
}

func TestLoadWebhookErrors(t *testing.T) {
	cfgFile := []string{"--config", "{file}"}
	// hook is a file with one app whose webhooks list is lines, from line 6.
	hook := func(lines string) string {
		return "apps:\n  - id: a\n    key: k\n    secret: s\n    webhooks:\n" + lines
	}
	// env is the environment with one variable.
	env := func(name, value string) map[string]string { return map[string]string{name: value} }
	tests := []struct {
		name string
		give input
		want string // "{file}" is the config file's path
	}{
		// The global settings.
		{"leave delay negative", input{env: env("FIZZ_WEBHOOK_LEAVE_DELAY", "-1s")}, `FIZZ_WEBHOOK_LEAVE_DELAY: -1s must not be negative (0 means no delay)`},
		{"leave delay not a duration", input{env: env("FIZZ_WEBHOOK_LEAVE_DELAY", "3")}, `FIZZ_WEBHOOK_LEAVE_DELAY: "3" is not a duration (such as 2s or 500ms)`},
		{"timeout zero", input{env: env("FIZZ_WEBHOOK_TIMEOUT", "0s")}, `FIZZ_WEBHOOK_TIMEOUT: 0s must be more than 0`},
		{"timeout not a duration", input{env: env("FIZZ_WEBHOOK_TIMEOUT", "5")}, `FIZZ_WEBHOOK_TIMEOUT: "5" is not a duration`},
		{"REVERB_ retry for negative", input{env: env("REVERB_WEBHOOK_RETRY_FOR", "-5m")}, `REVERB_WEBHOOK_RETRY_FOR: -5m0s must be more than 0`},
		{"retry for not a duration", input{env: env("FIZZ_WEBHOOK_RETRY_FOR", "forever")}, `FIZZ_WEBHOOK_RETRY_FOR: "forever" is not a duration`},
		{"batch window zero", input{env: env("FIZZ_WEBHOOK_BATCH_WINDOW", "0")}, `FIZZ_WEBHOOK_BATCH_WINDOW: 0s must be more than 0`},
		{"batch window not a duration", input{env: env("FIZZ_WEBHOOK_BATCH_WINDOW", "fast")}, `FIZZ_WEBHOOK_BATCH_WINDOW: "fast" is not a duration`},
		{"env timeout beats a valid file", input{args: cfgFile, env: env("FIZZ_WEBHOOK_TIMEOUT", "-1s"), file: "webhooks: {timeout: 1s}\n"}, `FIZZ_WEBHOOK_TIMEOUT: -1s must be more than 0`},
		{"file leave delay negative", input{args: cfgFile, file: "webhooks:\n  leave_delay: -3s\n"}, `{file}:2: webhooks.leave_delay: -3s must not be negative`},
		{"file timeout zero", input{args: cfgFile, file: "webhooks:\n  timeout: 0s\n"}, `{file}:2: webhooks.timeout: 0s must be more than 0`},
		{"file retry for not a duration", input{args: cfgFile, file: "webhooks: {retry_for: 5}\n"}, `{file}:1: webhooks.retry_for: "5" is not a duration`},
		{"file batch window negative", input{args: cfgFile, file: "webhooks:\n  batch_window: -1ms\n"}, `{file}:2: webhooks.batch_window: -1ms must be more than 0`},
		{"file webhooks section a list", input{args: cfgFile, file: "webhooks: [1]\n"}, `{file}:1: webhooks must be a mapping, not a list`},
		{"file webhooks section unknown key", input{args: cfgFile, file: "webhooks: {delay: 1s}\n"}, `{file}:1: webhooks.delay: unknown key (known keys: leave_delay, timeout, retry_for, batch_window)`},

		// Batching.
		{"batching not a boolean", input{env: env("FIZZ_APP_WEBHOOK_BATCHING", "sometimes")}, `FIZZ_APP_WEBHOOK_BATCHING: "sometimes" is not a boolean`},
		{"REVERB_ batching not a boolean", input{env: env("REVERB_APP_WEBHOOK_BATCHING", "on")}, `REVERB_APP_WEBHOOK_BATCHING: "on" is not a boolean`},
		{"file batching not a boolean", input{args: cfgFile, file: "apps:\n  - id: a\n    key: k\n    secret: s\n    webhook_batching: maybe\n"}, `{file}:5: apps[0].webhook_batching: "maybe" is not a boolean`},

		// FIZZ_APP_WEBHOOKS: its JSON and its shape.
		{"JSON syntax", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": }]`)}, `FIZZ_APP_WEBHOOKS: not valid JSON: invalid character '}' looking for beginning of value (at byte 10)`},
		{"JSON cut short", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "http://h"}`)}, `FIZZ_APP_WEBHOOKS: not valid JSON: unexpected end of JSON input`},
		{"JSON with data after the array", input{env: env("FIZZ_APP_WEBHOOKS", `[] []`)}, `FIZZ_APP_WEBHOOKS: not valid JSON: invalid character '[' after top-level value`},
		{"JSON only spaces", input{env: env("FIZZ_APP_WEBHOOKS", ` `)}, `FIZZ_APP_WEBHOOKS: not valid JSON: unexpected end of JSON input`},
		{"REVERB_ JSON syntax", input{env: env("REVERB_APP_WEBHOOKS", `https://example.com`)}, `REVERB_APP_WEBHOOKS: not valid JSON: invalid character 'h'`},
		{"JSON object, not an array", input{env: env("FIZZ_APP_WEBHOOKS", `{"url": "https://h"}`)}, `FIZZ_APP_WEBHOOKS: must be a JSON array of webhook objects, not a JSON object`},
		{"JSON string, not an array", input{env: env("FIZZ_APP_WEBHOOKS", `"https://h"`)}, `FIZZ_APP_WEBHOOKS: must be a JSON array of webhook objects, not a JSON string`},
		{"JSON entry not an object", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h"}, 1]`)}, `FIZZ_APP_WEBHOOKS[1]: must be an object, not a JSON number`},
		{"JSON url a number", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": 1}]`)}, `FIZZ_APP_WEBHOOKS[0].url: must be a string, not a JSON number`},
		{"JSON event types a string", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h"}, {"url": "https://h", "event_types": "cache_miss"}]`)}, `FIZZ_APP_WEBHOOKS[1].event_types: must be a list of strings, not a JSON string`},
		{"JSON filter a string", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "filter": "private-"}]`)}, `FIZZ_APP_WEBHOOKS[0].filter: must be an object, not a JSON string`},
		{"JSON filter value a bool", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "filter": {"channel_name_ends_with": true}}]`)}, `FIZZ_APP_WEBHOOKS[0].filter.channel_name_ends_with: must be a string, not a JSON bool`},
		{"JSON header value a number", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "headers": {"X-A": 5}}]`)}, `FIZZ_APP_WEBHOOKS[0].headers: must be an object of strings, not a JSON number`},
		{"JSON unknown key", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "events": ["cache_miss"]}]`)}, `FIZZ_APP_WEBHOOKS[0]: unknown key "events" (known keys: url, event_types, filter.channel_name_starts_with, filter.channel_name_ends_with, headers)`},
		{"JSON unknown filter key", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "filter": {"prefix": "a"}}]`)}, `FIZZ_APP_WEBHOOKS[0]: unknown key "prefix"`},

		// Each webhook from the environment.
		{"JSON url empty", input{env: env("FIZZ_APP_WEBHOOKS", `[{"event_types": ["cache_miss"]}]`)}, `FIZZ_APP_WEBHOOKS[0].url: must not be empty`},
		{"JSON null entry", input{env: env("FIZZ_APP_WEBHOOKS", `[null]`)}, `FIZZ_APP_WEBHOOKS[0].url: must not be empty`},
		{"JSON url scheme", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h"}, {"url": "ftp://h/x"}]`)}, `FIZZ_APP_WEBHOOKS[1].url: scheme "ftp" is not http or https`},
		{"JSON event type unknown", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "event_types": ["channel_occupied", "channel_created"]}]`)},
			`FIZZ_APP_WEBHOOKS[0].event_types: "channel_created" is not a webhook event (channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss, subscription_count)`},
		{"JSON event types empty", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "event_types": []}]`)}, `FIZZ_APP_WEBHOOKS[0].event_types: is empty; list at least one event type, or leave the key out for every type`},
		{"JSON X-Pusher header", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "headers": {"x-pusher-signature": "forged"}}]`)}, `FIZZ_APP_WEBHOOKS[0].headers: "x-pusher-signature": X-Pusher-* headers cannot be overridden`},
		{"JSON header name not a token", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "headers": {"X Custom": "v"}}]`)}, `FIZZ_APP_WEBHOOKS[0].headers: "X Custom" is not a valid header name`},
		{"JSON header name empty", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "headers": {"": "v"}}]`)}, `FIZZ_APP_WEBHOOKS[0].headers: "" is not a valid header name`},
		{"JSON header name with LF", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "headers": {"X-A\nB": "v"}}]`)}, `FIZZ_APP_WEBHOOKS[0].headers: "X-A\nB" is not a valid header name`},
		{"JSON header value with CR LF", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "headers": {"X-A": "v\r\nX-Pusher-Key: forged"}}]`)},
			`FIZZ_APP_WEBHOOKS[0].headers: the value of "X-A" must not contain CR, LF or other control characters`},
		{"JSON header twice", input{env: env("FIZZ_APP_WEBHOOKS", `[{"url": "https://h", "headers": {"X-A": "1", "x-a": "2"}}]`)}, `FIZZ_APP_WEBHOOKS[0].headers: "X-A" and "x-a" are the same header`},
		{"shorthand without scheme", input{env: env("FIZZ_APP_WEBHOOK_URL", "example.com/hook")}, `FIZZ_APP_WEBHOOK_URL: has no scheme (http:// or https://)`},
		{"shorthand without host", input{env: env("FIZZ_APP_WEBHOOK_URL", "https://u:hunter2@/hook")}, `FIZZ_APP_WEBHOOK_URL: has no host`},
		{"shorthand unparsable", input{env: env("FIZZ_APP_WEBHOOK_URL", "https://exa mple.com")}, `FIZZ_APP_WEBHOOK_URL: not a URL: invalid character " " in host name`},
		{"shorthand bad port", input{env: env("FIZZ_APP_WEBHOOK_URL", "https://h:99999/x?token=hunter2")}, `FIZZ_APP_WEBHOOK_URL: port "99999" is not a port number`},
		{"REVERB_ shorthand scheme", input{env: env("REVERB_APP_WEBHOOK_URL", "ws://h")}, `REVERB_APP_WEBHOOK_URL: scheme "ws" is not http or https`},
		{"shorthand after JSON", input{env: map[string]string{"FIZZ_APP_WEBHOOKS": `[{"url": "https://h"}]`, "FIZZ_APP_WEBHOOK_URL": "ftp://h"}}, `FIZZ_APP_WEBHOOK_URL: scheme "ftp" is not http or https`},
		{"shorthand with file apps and no id", input{args: cfgFile, env: env("FIZZ_APP_WEBHOOK_URL", "https://h"), file: hook("      - url: https://h\n")},
			`FIZZ_APP_WEBHOOK_URL: set, but {file} lists apps and none has id "app-id"`},
		{"JSON with file apps and no id", input{args: cfgFile, env: env("REVERB_APP_WEBHOOKS", `[]`), file: hook("      - url: https://h\n")},
			`REVERB_APP_WEBHOOKS: set, but {file} lists apps and none has id "app-id"`},
		{"shorthand replacing a file app's webhooks", input{args: cfgFile, env: map[string]string{"FIZZ_APP_ID": "a", "FIZZ_APP_WEBHOOK_URL": "ftp://h"}, file: hook("      - url: https://h\n")},
			`FIZZ_APP_WEBHOOK_URL: scheme "ftp"`},
		{"JSON replacing a file app's webhooks", input{
			args: cfgFile,
			env:  map[string]string{"FIZZ_APP_ID": "a", "FIZZ_APP_WEBHOOKS": `[{"url": "https://h", "event_types": ["nope"]}]`},
			file: hook("      - url: https://h\n        event_types: [cache_miss]\n"),
		}, `FIZZ_APP_WEBHOOKS[0].event_types: "nope" is not a webhook event`},

		// Each webhook from the file.
		{"file url scheme", input{args: cfgFile, file: hook("      - url: https://h\n      - url: mailto:ops@example.com\n")}, `{file}:7: apps[0].webhooks[1].url: scheme "mailto" is not http or https`},
		{"file url missing", input{args: cfgFile, file: hook("      - event_types: [cache_miss]\n")}, `{file}:6: apps[0].webhooks[0].url: must not be empty`},
		{"file url null", input{args: cfgFile, file: hook("      - url:\n        event_types: [cache_miss]\n")}, `{file}:6: apps[0].webhooks[0].url: must not be empty`},
		{"file webhook empty", input{args: cfgFile, file: hook("      - {}\n")}, `{file}: apps[0].webhooks[0].url: must not be empty`},
		{"file webhook a bare dash", input{args: cfgFile, file: hook("      -\n")}, `{file}: apps[0].webhooks[0].url: must not be empty`},
		{"file url a list", input{args: cfgFile, file: hook("      - url: [https://h]\n")}, `{file}:6: apps[0].webhooks[0].url: expected a single value`},
		{"file event type unknown", input{args: cfgFile, file: hook("      - url: https://h\n        event_types:\n          - channel_occupied\n          - member_joined\n")},
			`{file}:8: apps[0].webhooks[0].event_types: "member_joined" is not a webhook event`},
		{"file event types a string", input{args: cfgFile, file: hook("      - url: https://h\n        event_types: cache_miss\n")}, `{file}:7: apps[0].webhooks[0].event_types: expected a list of event types`},
		{"file event types empty", input{args: cfgFile, file: hook("      - url: https://h\n        event_types: []\n")}, `{file}:7: apps[0].webhooks[0].event_types: is empty`},
		{"file event types of mappings", input{args: cfgFile, file: hook("      - url: https://h\n        event_types: [{a: b}]\n")}, `{file}:7: apps[0].webhooks[0].event_types: expected a list of strings`},
		{"file X-Pusher header", input{args: cfgFile, file: hook("      - url: https://h\n        headers:\n          X-Pusher-Key: other\n")},
			`{file}:8: apps[0].webhooks[0].headers: "X-Pusher-Key": X-Pusher-* headers cannot be overridden`},
		{"file header name not a token", input{args: cfgFile, file: hook("      - url: https://h\n        headers: {'X:A': v}\n")}, `{file}:7: apps[0].webhooks[0].headers: "X:A" is not a valid header name`},
		{"file header value with LF", input{args: cfgFile, file: hook("      - url: https://h\n        headers: {X-A: \"a\\nb\"}\n")}, `{file}:7: apps[0].webhooks[0].headers: the value of "X-A" must not contain CR, LF`},
		{"file headers a list", input{args: cfgFile, file: hook("      - url: https://h\n        headers: [X-A]\n")}, `{file}:7: apps[0].webhooks[0].headers: expected a mapping of header names to values`},
		{"file header value a list", input{args: cfgFile, file: hook("      - url: https://h\n        headers: {X-A: [1]}\n")}, `{file}:7: apps[0].webhooks[0].headers: header "X-A": expected a single value`},
		{"file filter value a list", input{args: cfgFile, file: hook("      - url: https://h\n        filter: {channel_name_starts_with: [a]}\n")},
			`{file}:7: apps[0].webhooks[0].filter.channel_name_starts_with: expected a single value`},
		{"file webhooks a mapping", input{args: cfgFile, file: hook("      url: https://h\n")}, `{file}:6: an app's webhooks must be a list, not a mapping`},
		{"file webhook a string", input{args: cfgFile, file: hook("      - https://h\n")}, `{file}:6: each webhook must be a mapping, not a single value`},
		{"file filter a list", input{args: cfgFile, file: hook("      - url: https://h\n        filter: [private-]\n")}, `{file}:7: a webhook's filter must be a mapping, not a list`},
		{"file webhook unknown key", input{args: cfgFile, file: hook("      - url: https://h\n        events: [cache_miss]\n")},
			`{file}:7: apps[0].webhooks[0].events: unknown key (known keys: url, event_types, filter, headers)`},
		{"file filter unknown key", input{args: cfgFile, file: hook("      - url: https://h\n        filter: {prefix: private-}\n")},
			`{file}:7: apps[0].webhooks[0].filter.prefix: unknown key (known keys: channel_name_starts_with, channel_name_ends_with)`},
		{"file webhook of a second app", input{args: cfgFile, file: "apps:\n  - {id: a, key: ka, secret: s}\n  - id: b\n    key: kb\n    secret: s\n    webhooks: [{url: 'http://'}]\n"},
			`{file}:6: apps[1].webhooks[0].url: has no host`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, tt.give)
			require.Error(t, err)
			assert.Contains(t, err.Error(), strings.ReplaceAll(tt.want, "{file}", path))
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.NotContains(t, err.Error(), "hunter2", "no secret in messages")
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
	assert.Equal(t, app.Defaults(), app.Comparable(cfg))
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
		{"webhook leave delay negative", defaultsWith(func(c *app.Config) { c.Webhooks.LeaveDelay = -time.Second }), `webhooks.leave_delay: -1s must not be negative (0 means no delay)`},
		{"webhook timeout zero", defaultsWith(func(c *app.Config) { c.Webhooks.Timeout = 0 }), `webhooks.timeout: 0s must be more than 0`},
		{"webhook retry for zero", defaultsWith(func(c *app.Config) { c.Webhooks.RetryFor = 0 }), `webhooks.retry_for: 0s must be more than 0`},
		{"webhook batch window zero", defaultsWith(func(c *app.Config) { c.Webhooks.BatchWindow = 0 }), `webhooks.batch_window: 0s must be more than 0`},
		{"webhook without host", defaultsWith(func(c *app.Config) {
			c.Apps[0].Webhooks = []apps.Webhook{{URL: "https://h"}, {URL: "http:///x"}}
		}), `apps[0].webhooks[1].url: has no host`},
		{"webhook X-Pusher header", defaultsWith(func(c *app.Config) {
			c.Apps[0].Webhooks = []apps.Webhook{{URL: "https://h", Headers: map[string]string{"X-PUSHER-KEY": "k"}}}
		}), `apps[0].webhooks[0].headers: "X-PUSHER-KEY": X-Pusher-* headers cannot be overridden`},
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
		{"no webhook leave delay", defaultsWith(func(c *app.Config) { c.Webhooks.LeaveDelay = 0 })},
		{"webhooks of every kind", defaultsWith(func(c *app.Config) {
			c.Apps[0].Webhooks = []apps.Webhook{
				{URL: "http://user:pw@[::1]:8080/hook?x=1", EventTypes: []string{"cache_miss", "subscription_count"}},
				{URL: "https://Example.COM", Headers: map[string]string{"X-Pusher": "not the reserved prefix", "Authorization": "Bearer\tx", "X-Empty": ""}},
				{URL: "https://h", Filter: apps.WebhookFilter{ChannelNameStartsWith: "private-"}},
			}
		})},
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

// TestLoadProvenance: Load records which setting gave each port (a busy
// port names it; a default port gives way) and whether the credentials
// were left at their defaults (the start-up warning), not merely equal to
// them.
func TestLoadProvenance(t *testing.T) {
	creds := map[string]string{"FIZZ_APP_KEY": "k", "FIZZ_APP_SECRET": "s"}
	tests := []struct {
		name         string
		give         input
		wantServer   string // Server.PortSetting; "{file}" is the file's path
		wantMetrics  string
		wantDefaults bool
	}{
		{name: "defaults", wantDefaults: true},
		{name: "env", give: input{env: map[string]string{"FIZZ_SERVER_PORT": "9000", "FIZZ_METRICS_PORT": "9001",
			"FIZZ_APP_KEY": "k", "FIZZ_APP_SECRET": "s"}},
			wantServer: "FIZZ_SERVER_PORT", wantMetrics: "FIZZ_METRICS_PORT"},
		{name: "REVERB_ env", give: input{env: map[string]string{"REVERB_SERVER_PORT": "9000", "FIZZ_APP_KEY": "k", "FIZZ_APP_SECRET": "s"}},
			wantServer: "REVERB_SERVER_PORT"},
		{name: "flag", give: input{args: []string{"--port", "9000"}, env: creds}, wantServer: "--port"},
		{name: "file", give: input{args: []string{"--config", "{file}"},
			file: "server: {port: 9000}\nmetrics: {port: 9001}\napps:\n  - {id: a, key: k, secret: s}\n"},
			wantServer: "{file}:1: server.port", wantMetrics: "{file}:2: metrics.port"},
		{name: "default values set explicitly", give: input{env: map[string]string{"FIZZ_APP_KEY": "app-key", "FIZZ_APP_SECRET": "app-secret"}}},
		{name: "only the key set", give: input{env: map[string]string{"FIZZ_APP_KEY": "k"}}, wantDefaults: true},
		{name: "only the secret set", give: input{env: map[string]string{"FIZZ_APP_SECRET": "s"}}, wantDefaults: true},
		{name: "REVERB_ credentials", give: input{env: map[string]string{"REVERB_APP_KEY": "app-key", "REVERB_APP_SECRET": "app-secret"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, path, err := load(t, tt.give)
			require.NoError(t, err)
			assert.Equal(t, strings.ReplaceAll(tt.wantServer, "{file}", path), got.Server.PortSetting)
			assert.Equal(t, strings.ReplaceAll(tt.wantMetrics, "{file}", path), got.Metrics.PortSetting)
			assert.Equal(t, tt.wantDefaults, got.UsesDefaultCredentials())
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
	f.Add(hooksFile)
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
	f.Add(`[{"url": "https://h", "event_types": ["cache_miss"], "headers": {"X-A": "b"}}]`)
	f.Fuzz(func(t *testing.T, value string) {
		names := []string{
			"FIZZ_SERVER_HOST", "FIZZ_SERVER_PORT", "FIZZ_SERVER_PATH", "FIZZ_MAX_REQUEST_SIZE", "FIZZ_DEBUG",
			"FIZZ_APP_ID", "FIZZ_APP_KEY", "FIZZ_APP_SECRET", "FIZZ_APP_PING_INTERVAL", "FIZZ_APP_ACTIVITY_TIMEOUT",
			"FIZZ_APP_MAX_MESSAGE_SIZE", "FIZZ_APP_MAX_CONNECTIONS", "FIZZ_APP_ALLOWED_ORIGINS",
			"FIZZ_APP_ACCEPT_CLIENT_EVENTS_FROM", "FIZZ_APP_MAX_PRESENCE_MEMBERS", "FIZZ_APP_MAX_PRESENCE_USER_INFO",
			"FIZZ_APP_CLIENT_EVENTS_PER_SECOND", "FIZZ_SCALING_ENABLED", "FIZZ_SCALING_CHANNEL", "FIZZ_SCALING_TIMEOUT",
			"FIZZ_METRICS_HOST", "FIZZ_METRICS_PORT", "FIZZ_LOG_FORMAT", "FIZZ_LOG_LEVEL", "FIZZ_TLS_CERT",
			"FIZZ_TLS_KEY", "FIZZ_SHUTDOWN_GRACE", "REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_DB",
			"FIZZ_APP_WEBHOOKS", "FIZZ_APP_WEBHOOK_URL", "FIZZ_APP_WEBHOOK_BATCHING", "FIZZ_WEBHOOK_LEAVE_DELAY",
			"FIZZ_WEBHOOK_TIMEOUT", "FIZZ_WEBHOOK_RETRY_FOR", "FIZZ_WEBHOOK_BATCH_WINDOW",
			"FIZZ_APP_SUBSCRIPTION_COUNT", "FIZZ_APP_REQUIRE_SIGNIN", "FIZZ_APP_SIGNIN_TIMEOUT",
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
