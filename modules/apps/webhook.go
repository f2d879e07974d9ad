package apps

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fizz-server/fizz/modules/pusher"
)

// The rules an app's webhooks follow, which the configuration checks. Their
// messages name no setting: the caller does.

// CheckWebhookURL checks where a webhook is sent: an http or https URL with
// a host. Its messages never quote raw: its user or query part may hold a
// token.
func CheckWebhookURL(raw string) error {
	if raw == "" {
		return errors.New("must not be empty")
	}
	u, err := CheckURL(raw, "http", "https")
	if u != nil && u.Scheme == "" {
		return errors.New("has no scheme (http:// or https://)")
	}
	return err
}

// CheckURL parses raw, a URL with a host and the scheme a or b. It returns
// the URL when raw parses, with an error when it is not such a URL. Its
// messages never quote raw.
func CheckURL(raw, a, b string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %v", err.(*url.Error).Err) // url.Parse's errors are *url.Error
	}
	if u.Scheme != a && u.Scheme != b {
		return u, fmt.Errorf("scheme %q is not %s or %s", u.Scheme, a, b)
	}
	if u.Hostname() == "" {
		return u, errors.New("has no host")
	}
	if n, err := strconv.Atoi(u.Port()); u.Port() != "" && (err != nil || n < 1 || n > 65535) {
		return u, fmt.Errorf("port %q is not a port number", u.Port())
	}
	return u, nil
}

// CheckEventTypes checks a webhook's event types: nil for every one, else
// names of pusher.WebhookEvents.
func CheckEventTypes(list []string) error {
	if list != nil && len(list) == 0 { // it would mean every type
		return errors.New("is empty; list at least one event type, or leave the key out for every type")
	}
	for _, e := range list {
		if !pusher.ValidWebhookEvent(e) {
			return fmt.Errorf("%q is not a webhook event (%s)", e, strings.Join(pusher.WebhookEvents, ", "))
		}
	}
	return nil
}

// CheckHeaders checks a webhook's headers: HTTP tokens for names (RFC 9110),
// and values net/http sends, without control characters but tab (so no CR
// or LF to split the request with). None may be X-Pusher-*, nor twice.
func CheckHeaders(h map[string]string) error {
	const token = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	seen := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(h)) {
		other, twice := seen[strings.ToLower(name)]
		switch {
		case name == "" || strings.Trim(name, token) != "":
			return fmt.Errorf("%q is not a valid header name", name)
		case len(name) >= len("X-Pusher-") && strings.EqualFold(name[:len("X-Pusher-")], "X-Pusher-"):
			return fmt.Errorf("%q: X-Pusher-* headers cannot be overridden", name)
		case strings.ContainsFunc(h[name], func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
			return fmt.Errorf("the value of %q must not contain CR, LF or other control characters", name)
		case twice:
			return fmt.Errorf("%q and %q are the same header", other, name)
		}
		seen[strings.ToLower(name)] = name
	}
	return nil
}
