package app_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
)

// signinFile has two apps: a sets the three user settings, b leaves them out.
const signinFile = `apps:
  - id: a
    key: ka
    secret: sa
    subscription_count: true
    require_signin: true
    signin_timeout: 45s
  - id: b
    key: kb
    secret: sb
`

// TestLoadUserSettings covers FIZZ_APP_SUBSCRIPTION_COUNT,
// FIZZ_APP_REQUIRE_SIGNIN and FIZZ_APP_SIGNIN_TIMEOUT and their YAML keys.
func TestLoadUserSettings(t *testing.T) {
	cfgFile := []string{"--config", "{file}"}
	// withApp is the defaults with the env app changed by edit.
	withApp := func(edit func(a *apps.App)) app.Config {
		return defaultsWith(func(c *app.Config) { edit(&c.Apps[0]) })
	}
	// fromFile is the configuration signinFile gives, changed by edit.
	fromFile := func(edit func(c *app.Config)) app.Config {
		return defaultsWith(func(c *app.Config) {
			a, b := fileApp("a", "ka", "sa"), fileApp("b", "kb", "sb")
			a.SubscriptionCount, a.RequireSignin, a.SigninTimeout = true, true, 45*time.Second
			c.Apps = []apps.App{a, b}
			edit(c)
		})
	}

	tests := []struct {
		name string
		give input
		want app.Config
	}{
		{
			name: "defaults",
			give: input{},
			want: withApp(func(a *apps.App) {
				a.SubscriptionCount, a.RequireSignin, a.SigninTimeout = false, false, 30*time.Second
			}),
		},
		{
			name: "env",
			give: input{env: map[string]string{
				"FIZZ_APP_SUBSCRIPTION_COUNT": "true", "FIZZ_APP_REQUIRE_SIGNIN": "1", "FIZZ_APP_SIGNIN_TIMEOUT": "1m30s",
			}},
			want: withApp(func(a *apps.App) { a.SubscriptionCount, a.RequireSignin, a.SigninTimeout = true, true, 90*time.Second }),
		},
		{
			name: "env booleans false",
			give: input{env: map[string]string{"FIZZ_APP_SUBSCRIPTION_COUNT": "FALSE", "FIZZ_APP_REQUIRE_SIGNIN": "no"}},
			want: app.Defaults(),
		},
		{
			name: "env timeout a bare number of seconds",
			give: input{env: map[string]string{"FIZZ_APP_REQUIRE_SIGNIN": "yes", "FIZZ_APP_SIGNIN_TIMEOUT": " 10 "}},
			want: withApp(func(a *apps.App) { a.RequireSignin, a.SigninTimeout = true, 10*time.Second }),
		},
		{
			name: "env timeout under a second",
			give: input{env: map[string]string{"FIZZ_APP_SIGNIN_TIMEOUT": "500ms"}},
			want: withApp(func(a *apps.App) { a.SigninTimeout = 500 * time.Millisecond }),
		},
		{
			name: "env timeout without require_signin is allowed",
			give: input{env: map[string]string{"FIZZ_APP_SIGNIN_TIMEOUT": "5s"}},
			want: withApp(func(a *apps.App) { a.SigninTimeout = 5 * time.Second }),
		},
		{
			name: "REVERB_ read when FIZZ_ unset",
			give: input{env: map[string]string{
				"REVERB_APP_SUBSCRIPTION_COUNT": "true", "REVERB_APP_REQUIRE_SIGNIN": "true", "REVERB_APP_SIGNIN_TIMEOUT": "20",
			}},
			want: withApp(func(a *apps.App) { a.SubscriptionCount, a.RequireSignin, a.SigninTimeout = true, true, 20*time.Second }),
		},
		{
			name: "empty FIZZ_ falls through to REVERB_",
			give: input{env: map[string]string{
				"FIZZ_APP_SUBSCRIPTION_COUNT": "", "REVERB_APP_SUBSCRIPTION_COUNT": "yes",
				"FIZZ_APP_SIGNIN_TIMEOUT": "", "REVERB_APP_SIGNIN_TIMEOUT": "2m",
			}},
			want: withApp(func(a *apps.App) { a.SubscriptionCount, a.SigninTimeout = true, 2*time.Minute }),
		},
		{
			name: "FIZZ_ wins over REVERB_",
			give: input{env: map[string]string{
				"FIZZ_APP_SUBSCRIPTION_COUNT": "false", "REVERB_APP_SUBSCRIPTION_COUNT": "true",
				"FIZZ_APP_REQUIRE_SIGNIN": "true", "REVERB_APP_REQUIRE_SIGNIN": "false",
				"FIZZ_APP_SIGNIN_TIMEOUT": "7s", "REVERB_APP_SIGNIN_TIMEOUT": "0",
			}},
			want: withApp(func(a *apps.App) { a.RequireSignin, a.SigninTimeout = true, 7*time.Second }),
		},
		{
			name: "file",
			give: input{args: cfgFile, file: signinFile},
			want: fromFile(func(*app.Config) {}),
		},
		{
			name: "file timeout a bare number of seconds, and without require_signin",
			give: input{args: cfgFile, file: "apps:\n  - {id: a, key: k, secret: s, signin_timeout: 12, require_signin: false}\n"},
			want: defaultsWith(func(c *app.Config) {
				a := fileApp("a", "k", "s")
				a.SigninTimeout = 12 * time.Second
				c.Apps = []apps.App{a}
			}),
		},
		{
			name: "file values that YAML reads as strings",
			give: input{args: cfgFile, file: "apps:\n  - {id: a, key: k, secret: s, subscription_count: 'yes', require_signin: \"1\", signin_timeout: '3s'}\n"},
			want: defaultsWith(func(c *app.Config) {
				a := fileApp("a", "k", "s")
				a.SubscriptionCount, a.RequireSignin, a.SigninTimeout = true, true, 3*time.Second
				c.Apps = []apps.App{a}
			}),
		},
		{
			name: "file null values keep the defaults",
			give: input{args: cfgFile, file: "apps:\n  - id: a\n    key: k\n    secret: s\n    subscription_count:\n    require_signin: ~\n    signin_timeout:\n"},
			want: defaultsWith(func(c *app.Config) { c.Apps = []apps.App{fileApp("a", "k", "s")} }),
		},
		{
			name: "env beats the file for the app with its id",
			give: input{
				args: cfgFile,
				env: map[string]string{
					"FIZZ_APP_ID": "a", "FIZZ_APP_SUBSCRIPTION_COUNT": "false", "REVERB_APP_REQUIRE_SIGNIN": "false", "FIZZ_APP_SIGNIN_TIMEOUT": "5",
				},
				file: signinFile,
			},
			want: fromFile(func(c *app.Config) {
				c.Apps[0].SubscriptionCount, c.Apps[0].RequireSignin, c.Apps[0].SigninTimeout = false, false, 5*time.Second
			}),
		},
		{
			name: "env sets a file app that leaves them out",
			give: input{args: cfgFile, env: map[string]string{"FIZZ_APP_ID": "b", "FIZZ_APP_REQUIRE_SIGNIN": "true"}, file: signinFile},
			want: fromFile(func(c *app.Config) { c.Apps[1].RequireSignin = true }),
		},
		{
			name: "env app with a new id and a key is appended to the file's apps",
			give: input{
				args: cfgFile,
				env: map[string]string{
					"FIZZ_APP_ID": "c", "FIZZ_APP_KEY": "kc", "FIZZ_APP_SECRET": "sc",
					"FIZZ_APP_SUBSCRIPTION_COUNT": "true", "FIZZ_APP_SIGNIN_TIMEOUT": "1m",
				},
				file: signinFile,
			},
			want: fromFile(func(c *app.Config) {
				env := fileApp("c", "kc", "sc")
				env.SubscriptionCount, env.SigninTimeout = true, time.Minute
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

func TestLoadUserSettingErrors(t *testing.T) {
	cfgFile := []string{"--config", "{file}"}
	// one is a file with one app whose line 5 is line.
	one := func(line string) string { return "apps:\n  - id: a\n    key: k\n    secret: s\n" + line }
	env := func(name, value string) map[string]string { return map[string]string{name: value} }
	tests := []struct {
		name string
		give input
		want string // the whole message; "{file}" is the config file's path
	}{
		// From the environment.
		{"subscription count not a boolean", input{env: env("FIZZ_APP_SUBSCRIPTION_COUNT", "sometimes")},
			`FIZZ_APP_SUBSCRIPTION_COUNT: "sometimes" is not a boolean (true/false, 1/0, yes/no)`},
		{"REVERB_ subscription count not a boolean", input{env: env("REVERB_APP_SUBSCRIPTION_COUNT", "on")},
			`REVERB_APP_SUBSCRIPTION_COUNT: "on" is not a boolean (true/false, 1/0, yes/no)`},
		{"require signin not a boolean", input{env: env("FIZZ_APP_REQUIRE_SIGNIN", "maybe")},
			`FIZZ_APP_REQUIRE_SIGNIN: "maybe" is not a boolean (true/false, 1/0, yes/no)`},
		{"REVERB_ require signin not a boolean", input{env: env("REVERB_APP_REQUIRE_SIGNIN", "2")},
			`REVERB_APP_REQUIRE_SIGNIN: "2" is not a boolean (true/false, 1/0, yes/no)`},
		{"signin timeout 0", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "0")}, `FIZZ_APP_SIGNIN_TIMEOUT: 0s must be more than 0`},
		{"signin timeout 0s", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "0s")}, `FIZZ_APP_SIGNIN_TIMEOUT: 0s must be more than 0`},
		{"signin timeout negative duration", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "-5s")}, `FIZZ_APP_SIGNIN_TIMEOUT: -5s must be more than 0`},
		{"signin timeout negative seconds", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "-5")}, `FIZZ_APP_SIGNIN_TIMEOUT: -5s must be more than 0`},
		{"REVERB_ signin timeout 0", input{env: env("REVERB_APP_SIGNIN_TIMEOUT", "0")}, `REVERB_APP_SIGNIN_TIMEOUT: 0s must be more than 0`},
		{"signin timeout 0 with require signin", input{env: map[string]string{"FIZZ_APP_REQUIRE_SIGNIN": "true", "FIZZ_APP_SIGNIN_TIMEOUT": "0"}},
			`FIZZ_APP_SIGNIN_TIMEOUT: 0s must be more than 0`},
		{"signin timeout not a duration", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "soon")},
			`FIZZ_APP_SIGNIN_TIMEOUT: "soon" is not a duration (such as 30s or 1m) or a whole number of seconds`},
		{"signin timeout fractional seconds", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "1.5")},
			`FIZZ_APP_SIGNIN_TIMEOUT: "1.5" is not a duration (such as 30s or 1m) or a whole number of seconds`},
		{"signin timeout empty after trimming", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", " ")},
			`FIZZ_APP_SIGNIN_TIMEOUT: " " is not a duration (such as 30s or 1m) or a whole number of seconds`},
		{"signin timeout seconds overflow", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "99999999999")},
			`FIZZ_APP_SIGNIN_TIMEOUT: "99999999999" seconds is too long`},
		{"signin timeout seconds out of int64", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "99999999999999999999")},
			`FIZZ_APP_SIGNIN_TIMEOUT: "99999999999999999999" seconds is too long`},
		{"signin timeout duration overflow", input{env: env("FIZZ_APP_SIGNIN_TIMEOUT", "9999999h")},
			`FIZZ_APP_SIGNIN_TIMEOUT: "9999999h" is not a duration (such as 30s or 1m) or a whole number of seconds`},
		{"env with file apps and no id", input{args: cfgFile, env: env("FIZZ_APP_REQUIRE_SIGNIN", "true"), file: signinFile},
			`FIZZ_APP_REQUIRE_SIGNIN: set, but {file} lists apps and none has id "app-id"; set FIZZ_APP_ID to pick one of them, or FIZZ_APP_KEY to add an app`},
		{"REVERB_ env with file apps and no id", input{args: cfgFile, env: env("REVERB_APP_SUBSCRIPTION_COUNT", "false"), file: signinFile},
			`REVERB_APP_SUBSCRIPTION_COUNT: set, but {file} lists apps and none has id "app-id"; set FIZZ_APP_ID to pick one of them, or FIZZ_APP_KEY to add an app`},
		{"env timeout beats a valid file", input{args: cfgFile, env: map[string]string{"FIZZ_APP_ID": "a", "FIZZ_APP_SIGNIN_TIMEOUT": "-1s"}, file: signinFile},
			`FIZZ_APP_SIGNIN_TIMEOUT: -1s must be more than 0`},

		// From the file.
		{"file subscription count not a boolean", input{args: cfgFile, file: one("    subscription_count: maybe\n")},
			`{file}:5: apps[0].subscription_count: "maybe" is not a boolean (true/false, 1/0, yes/no)`},
		{"file require signin not a boolean", input{args: cfgFile, file: one("    require_signin: on\n")},
			`{file}:5: apps[0].require_signin: "on" is not a boolean (true/false, 1/0, yes/no)`},
		{"file require signin a list", input{args: cfgFile, file: one("    require_signin: [true]\n")},
			`{file}:5: apps[0].require_signin: expected a single value, not a list or mapping`},
		{"file signin timeout 0", input{args: cfgFile, file: one("    signin_timeout: 0\n")}, `{file}:5: apps[0].signin_timeout: 0s must be more than 0`},
		{"file signin timeout negative", input{args: cfgFile, file: one("    require_signin: true\n    signin_timeout: -30s\n")},
			`{file}:6: apps[0].signin_timeout: -30s must be more than 0`},
		{"file signin timeout not a duration", input{args: cfgFile, file: one("    signin_timeout: forever\n")},
			`{file}:5: apps[0].signin_timeout: "forever" is not a duration (such as 30s or 1m) or a whole number of seconds`},
		{"file signin timeout a mapping", input{args: cfgFile, file: one("    signin_timeout: {s: 1}\n")},
			`{file}:5: apps[0].signin_timeout: expected a single value, not a list or mapping`},
		{"file signin timeout of a second app", input{args: cfgFile, file: signinFile + "    signin_timeout: 0s\n"},
			`{file}:11: apps[1].signin_timeout: 0s must be more than 0`},
		{"file misspelt key", input{args: cfgFile, file: one("    signin_timout: 5s\n")},
			`{file}:5: apps[0].signin_timout: unknown key (known keys: id, key, secret, ping_interval, activity_timeout, max_message_size, ` +
				`max_connections, allowed_origins, accept_client_events_from, max_presence_members, max_presence_user_info, ` +
				`client_events_per_second, rate_limiting, webhook_batching, webhooks, subscription_count, require_signin, signin_timeout)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path, err := load(t, tt.give)
			require.Error(t, err)
			assert.EqualError(t, err, strings.ReplaceAll(tt.want, "{file}", path))
		})
	}
}

func TestValidateUserSettings(t *testing.T) {
	tests := []struct {
		name string
		give app.Config
		want string // "" when valid
	}{
		{"defaults", app.Defaults(), ""},
		{"timeout without require signin", defaultsWith(func(c *app.Config) { c.Apps[0].SigninTimeout = time.Hour }), ""},
		{"every setting on", defaultsWith(func(c *app.Config) {
			c.Apps[0].SubscriptionCount, c.Apps[0].RequireSignin, c.Apps[0].SigninTimeout = true, true, time.Nanosecond
		}), ""},
		{"timeout zero", defaultsWith(func(c *app.Config) { c.Apps[0].SigninTimeout = 0 }), "apps[0].signin_timeout: 0s must be more than 0"},
		{"timeout negative with require signin", defaultsWith(func(c *app.Config) {
			c.Apps[0].RequireSignin, c.Apps[0].SigninTimeout = true, -time.Second
		}), "apps[0].signin_timeout: -1s must be more than 0"},
		{"timeout zero in a second app", defaultsWith(func(c *app.Config) {
			b := fileApp("b", "kb", "sb")
			b.SigninTimeout = 0
			c.Apps = append(c.Apps, b)
		}), "apps[1].signin_timeout: 0s must be more than 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.give.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.EqualError(t, err, tt.want)
		})
	}
}
