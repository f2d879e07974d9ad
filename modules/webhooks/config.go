package webhooks

import "time"

// Defaults of Config, as README.md ("Webhooks") documents them.
const (
	DefaultLeaveDelay  = 3 * time.Second
	DefaultTimeout     = 5 * time.Second
	DefaultRetryFor    = 5 * time.Minute
	DefaultBatchWindow = 50 * time.Millisecond
)

// Config is how every app's webhooks are sent (the FIZZ_WEBHOOK_*
// settings); each app lists its own webhooks (apps.App.Webhooks).
type Config struct {
	// LeaveDelay holds channel_vacated and member_removed this long; the
	// channel_occupied or member_added that undoes one within it drops both.
	LeaveDelay time.Duration
	// Timeout bounds one POST.
	Timeout time.Duration
	// RetryFor is how long a webhook that failed (non-2xx, timeout) is
	// tried again, with exponential back-off, before it is given up.
	RetryFor time.Duration
	// BatchWindow is how long events gather for one POST with batching.
	BatchWindow time.Duration
}

// WithDefaults returns c with every unset duration given its default.
func (c Config) WithDefaults() Config {
	if c.LeaveDelay < 0 {
		c.LeaveDelay = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryFor <= 0 {
		c.RetryFor = DefaultRetryFor
	}
	if c.BatchWindow <= 0 {
		c.BatchWindow = DefaultBatchWindow
	}
	return c
}
