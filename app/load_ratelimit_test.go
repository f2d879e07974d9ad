package app_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fizz-server/fizz/app"
	"github.com/fizz-server/fizz/modules/apps"
)

// TestLoadRateLimiting: Reverb's rate_limiting, from its .env variables and
// from the file, off by default with Reverb's numbers.
func TestLoadRateLimiting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fizz.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`apps:
  - id: a
    key: ka
    secret: sa
    rate_limiting: {enabled: true, max_attempts: 5, decay_seconds: 2, terminate_on_limit: true}
  - {id: b, key: kb, secret: sb}
`), 0o600))
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []apps.RateLimit
		wantErr string
	}{
		{name: "defaults", want: []apps.RateLimit{{MaxAttempts: 60, Decay: time.Minute}}},
		{name: "a Reverb .env", env: map[string]string{
			"REVERB_APP_RATE_LIMITING_ENABLED": "true", "REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS": "10",
			"REVERB_APP_RATE_LIMIT_DECAY_SECONDS": "30", "REVERB_APP_RATE_LIMIT_TERMINATE": "true",
		}, want: []apps.RateLimit{{Enabled: true, MaxAttempts: 10, Decay: 30 * time.Second, Terminate: true}}},
		{name: "Fizz's names beat Reverb's", env: map[string]string{
			"REVERB_APP_RATE_LIMIT_MAX_ATTEMPTS": "10", "FIZZ_APP_RATE_LIMIT_MAX_ATTEMPTS": "20",
		}, want: []apps.RateLimit{{MaxAttempts: 20, Decay: time.Minute}}},
		{name: "the file", args: []string{"--config", file}, want: []apps.RateLimit{
			{Enabled: true, MaxAttempts: 5, Decay: 2 * time.Second, Terminate: true}, {MaxAttempts: 60, Decay: time.Minute},
		}},
		{name: "zero attempts", env: map[string]string{"FIZZ_APP_RATE_LIMIT_MAX_ATTEMPTS": "0"},
			wantErr: "FIZZ_APP_RATE_LIMIT_MAX_ATTEMPTS: 0 must be more than 0"},
		{name: "not seconds", env: map[string]string{"REVERB_APP_RATE_LIMIT_DECAY_SECONDS": "1m"},
			wantErr: `REVERB_APP_RATE_LIMIT_DECAY_SECONDS: "1m" is not a whole number of seconds`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"FIZZ_APP_KEY": "k", "FIZZ_APP_SECRET": "s"}
			if len(tt.args) > 0 {
				env = map[string]string{}
			}
			for k, v := range tt.env {
				env[k] = v
			}
			cfg, err := app.Load(tt.args, func(k string) string { return env[k] })
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			var got []apps.RateLimit
			for _, a := range cfg.Apps {
				got = append(got, a.RateLimit)
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
