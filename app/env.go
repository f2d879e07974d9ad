package app

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/fizz-server/fizz/modules/apps"
)

// lookup returns FIZZ_<suffix> when it is set and not empty, else
// REVERB_<suffix> (a Laravel Reverb .env works unchanged), with the name of
// the variable it read.
func (l *loader) lookup(suffix string) (name, value string) {
	for _, name := range []string{"FIZZ_" + suffix, "REVERB_" + suffix} {
		if v := l.getenv(name); suffix != "" && v != "" {
			return name, v
		}
	}
	return "", ""
}

// applyRows applies to o, whose settings are at prefix, the values that look
// (lookup or flagValue) finds for rows, with the names it gives them.
func applyRows[O any](l *loader, rows []setting[O], o *O, prefix string, look func(string) (string, string)) error {
	for _, r := range rows {
		if name, v := look(r.env); name != "" {
			if err := apply(l, o, r, prefix+r.name(), name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadRedisEnv applies REDIS_URL or, as Laravel does when it is unset, the
// URL built from REDIS_HOST and the other parts that are set.
func (l *loader) loadRedisEnv() error {
	if v := l.getenv("REDIS_URL"); v != "" {
		return apply(l, &l.cfg, redisURL, redisURL.path, "REDIS_URL", v)
	}
	part, set := map[string]string{}, []string{}
	for _, name := range []string{"REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_DB"} {
		if v := l.getenv(name); v != "" && v != "null" && v != "(null)" { // Laravel's .env spelling of "unset"
			part[name], set = v, append(set, name)
		}
	}
	port, portErr := redisNumber(part["REDIS_PORT"], "6379", 1, 65535, "REDIS_PORT: %q is not a port number")
	db, dbErr := redisNumber(part["REDIS_DB"], "0", 0, math.MaxInt, "REDIS_DB: %q is not a database number")
	if len(set) == 0 || portErr != nil || dbErr != nil {
		return cmp.Or(portErr, dbErr)
	}
	u := url.URL{Scheme: "redis", Host: net.JoinHostPort(strings.TrimSpace(cmp.Or(part["REDIS_HOST"], "127.0.0.1")), port), Path: "/" + db}
	if user, password := part["REDIS_USERNAME"], part["REDIS_PASSWORD"]; password != "" {
		u.User = url.UserPassword(user, password)
	} else if user != "" {
		u.User = url.User(user)
	}
	return apply(l, &l.cfg, redisURL, redisURL.path, strings.Join(set, ", "), u.String())
}

// redisNumber is v as a number from lo to hi, or def when v is empty.
func redisNumber(v, def string, lo, hi int, msg string) (string, error) {
	n, err := strconv.Atoi(strings.TrimSpace(cmp.Or(v, def)))
	return strconv.Itoa(n), failIf(err != nil || n < lo || n > hi, msg, v)
}

// loadAppEnv applies the FIZZ_APP_* variables by the rule in Load's comment,
// and notes whether an app is left with the default key or secret.
func (l *loader) loadAppEnv() error {
	has := func(suffix string) bool { name, _ := l.lookup(suffix); return name != "" }
	_, fileApps := l.sources["apps[0]"]
	// Only the environment's app may lack them: a file's app must give both.
	l.cfg.defaultCredentials = !fileApps && !(has("APP_KEY") && has("APP_SECRET"))
	first := slices.IndexFunc(appSettings, func(r setting[apps.App]) bool { return has(r.env) })
	if first < 0 {
		return nil
	}
	_, id := l.lookup("APP_ID")
	id, target := cmp.Or(id, Defaults().Apps[0].ID), 0
	if fileApps {
		target = slices.IndexFunc(l.cfg.Apps, func(a apps.App) bool { return a.ID == id })
	}
	if target < 0 && !has("APP_KEY") {
		name, _ := l.lookup(appSettings[first].env)
		return fmt.Errorf("%s: set, but %s lists apps and none has id %q; set FIZZ_APP_ID to pick one of them, or FIZZ_APP_KEY to add an app", name, l.file, id)
	}
	if target < 0 {
		l.cfg.Apps, target = append(l.cfg.Apps, Defaults().Apps[0]), len(l.cfg.Apps)
		l.cfg.defaultCredentials = !has("APP_SECRET")
	}
	if has("APP_WEBHOOK_URL") {
		l.cfg.Apps[target].Webhooks = nil // the shorthand replaces a file app's webhooks, as FIZZ_APP_WEBHOOKS does
	}
	return applyRows(l, appSettings, &l.cfg.Apps[target], fmt.Sprintf("apps[%d].", target), l.lookup)
}

// parseWebhooks reads FIZZ_APP_WEBHOOKS: a JSON array of objects with the
// keys of the config file's webhooks. A problem inside one object is a
// settingError whose setting is its path ([1].url).
func parseWebhooks(v string) ([]apps.Webhook, error) {
	var items []json.RawMessage
	switch err := json.Unmarshal([]byte(v), &items).(type) {
	case nil:
	case *json.SyntaxError:
		return nil, fmt.Errorf("not valid JSON: %s (at byte %d)", err, err.Offset)
	case *json.UnmarshalTypeError:
		return nil, fmt.Errorf("must be a JSON array of webhook objects, not a JSON %s", err.Value)
	default:
		return nil, fmt.Errorf("not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	var hooks []apps.Webhook
	for j, item := range items {
		var w apps.Webhook
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&w); err != nil {
			return nil, within(fmt.Sprintf("[%d]", j), jsonError(err))
		}
		w.URL = strings.TrimSpace(w.URL)
		hooks = append(hooks, w)
	}
	return hooks, nil
}

// jsonError words a problem with one object of FIZZ_APP_WEBHOOKS by the
// webhook rows: what each key holds, and which keys there are.
func jsonError(err error) error {
	var paths []string
	for _, r := range webhookSettings {
		paths = append(paths, r.path)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		want := "an object" // the webhook, or its filter
		if i := slices.Index(paths, te.Field); i >= 0 {
			switch webhookSettings[i].value.(type) {
			case field[apps.Webhook, []string]:
				want = "a list of strings"
			case field[apps.Webhook, map[string]string]:
				want = "an object of strings"
			default:
				want = "a string"
			}
		}
		// The path of the key inside the object, but none for the object itself.
		return within(strings.TrimSuffix("."+te.Field, "."), fmt.Errorf("must be %s, not a JSON %s", want, te.Value))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown key %s (known keys: %s)", name, strings.Join(paths, ", "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}
