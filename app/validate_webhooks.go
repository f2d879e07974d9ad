package app

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fizz-server/fizz/modules/apps"
	"github.com/fizz-server/fizz/modules/pusher"
	"github.com/fizz-server/fizz/modules/webhooks"
)

// validateWebhookConfig checks how webhooks are sent, the FIZZ_WEBHOOK_*
// settings.
func validateWebhookConfig(w webhooks.Config) error {
	if w.LeaveDelay < 0 {
		return invalid("webhooks.leave_delay", "%s must not be negative (0 means no delay)", w.LeaveDelay)
	}
	for _, d := range []struct {
		setting string
		value   any
		ok      bool
	}{
		{"webhooks.timeout", w.Timeout, w.Timeout > 0},
		{"webhooks.retry_for", w.RetryFor, w.RetryFor > 0},
		{"webhooks.batch_window", w.BatchWindow, w.BatchWindow > 0},
	} {
		if !d.ok {
			return invalid(d.setting, "%s must be more than 0", d.value)
		}
	}
	return nil
}

// validateWebhooks checks the webhooks of apps[i].
func validateWebhooks(i int, hooks []apps.Webhook) error {
	for j, w := range hooks {
		field := func(name string) string { return fmt.Sprintf("apps[%d].webhooks[%d].%s", i, j, name) }
		if err := checkWebhookURL(field("url"), w.URL); err != nil {
			return err
		}
		// An explicit empty list would silently mean every type.
		if w.EventTypes != nil && len(w.EventTypes) == 0 {
			return invalid(field("event_types"), "is empty; list at least one event type, or leave the key out for every type")
		}
		for _, e := range w.EventTypes {
			if !pusher.ValidWebhookEvent(e) {
				return invalid(field("event_types"), "%q is not a webhook event (%s)", e, strings.Join(pusher.WebhookEvents, ", "))
			}
		}
		seen := map[string]string{}
		for _, name := range slices.Sorted(maps.Keys(w.Headers)) {
			switch {
			case !validHeaderName(name):
				return invalid(field("headers"), "%q is not a valid header name", name)
			case len(name) >= len("X-Pusher-") && strings.EqualFold(name[:len("X-Pusher-")], "X-Pusher-"):
				return invalid(field("headers"), "%q: X-Pusher-* headers cannot be overridden", name)
			case !validHeaderValue(w.Headers[name]):
				return invalid(field("headers"), "the value of %q must not contain CR, LF or other control characters", name)
			}
			lower := strings.ToLower(name)
			if other, ok := seen[lower]; ok {
				return invalid(field("headers"), "%q and %q are the same header", other, name)
			}
			seen[lower] = name
		}
	}
	return nil
}

// checkWebhookURL checks a webhook's URL. Messages never quote it: its
// query or user part may hold a token.
func checkWebhookURL(setting, raw string) error {
	if raw == "" {
		return invalid(setting, "must not be empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return invalid(setting, "not a URL: %v", err)
	}
	if u.Scheme == "" {
		return invalid(setting, "has no scheme (http:// or https://)")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid(setting, "scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return invalid(setting, "has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return invalid(setting, "port %q is not a port number", p)
		}
	}
	return nil
}

// validHeaderName reports whether name is an HTTP token (RFC 9110).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue reports whether net/http sends v as a header value: no
// control characters but tab, so no CR or LF to split the request with.
func validHeaderValue(v string) bool {
	for i := range len(v) {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
