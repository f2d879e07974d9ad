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

// loadEnv applies the environment: the node's variables, Redis's, then the
// app's. file is the config file's path, for messages; fileApps says whether
// it listed apps.
func (l *loader) loadEnv(file string, fileApps bool) error {
	for _, s := range settings {
		if name, v := l.lookup(s.env); name != "" {
			if err := apply(l, &l.cfg, s, s.name(), name, v); err != nil {
				return err
			}
		}
	}
	if err := l.loadRedisEnv(); err != nil {
		return err
	}
	return l.loadAppEnv(file, fileApps)
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
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if v == "" {
		return def, nil
	}
	return strconv.Itoa(n), failIf(err != nil || n < lo || n > hi, msg, v)
}

// loadAppEnv applies the FIZZ_APP_* variables by the rule in Load's comment,
// and notes whether an app is left with the default key or secret.
func (l *loader) loadAppEnv(file string, fileApps bool) error {
	type variable struct {
		row         setting[apps.App]
		name, value string
	}
	var set []variable
	id, given := defaultApp().ID, map[string]bool{}
	for _, r := range appSettings {
		if name, v := l.lookup(r.env); name != "" {
			set, given[r.env] = append(set, variable{r, name, v}), true
			if r.env == appID.env {
				id = v
			}
		}
	}
	// Only the environment's app may lack them: a file's app must give both.
	l.cfg.defaultCredentials = !fileApps && !(given[appKey.env] && given[appSecret.env])
	if len(set) == 0 {
		return nil
	}
	target := 0
	if fileApps {
		target = slices.IndexFunc(l.cfg.Apps, func(a apps.App) bool { return a.ID == id })
	}
	if target < 0 && !given[appKey.env] {
		return fmt.Errorf("%s: set, but %s lists apps and none has id %q; set FIZZ_%s to pick one of them, or FIZZ_%s to add an app",
			set[0].name, file, id, appID.env, appKey.env)
	}
	if target < 0 {
		l.cfg.Apps, target = append(l.cfg.Apps, defaultApp()), len(l.cfg.Apps)
		l.cfg.defaultCredentials = !given[appSecret.env]
	}
	if slices.ContainsFunc(set, func(v variable) bool { _, ok := v.row.value.(setter[apps.App]); return ok }) {
		l.cfg.Apps[target].Webhooks = nil // the shorthand replaces a file app's webhooks, as FIZZ_APP_WEBHOOKS does
	}
	for _, v := range set {
		if err := apply(l, &l.cfg.Apps[target], v.row, fmt.Sprintf("%s[%d].%s", appsKey, target, v.row.name()), v.name, v.value); err != nil {
			return err
		}
	}
	return nil
}

// parseWebhooks reads FIZZ_APP_WEBHOOKS: a JSON array of objects with the
// keys of the config file's webhooks. A problem inside one object is a
// settingError whose setting is its path ([1].url).
func parseWebhooks(v string) ([]apps.Webhook, error) {
	var items []json.RawMessage
	if err := json.Unmarshal([]byte(v), &items); err != nil {
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return nil, fmt.Errorf("not valid JSON: %s (at byte %d)", se, se.Offset)
		}
		if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return nil, fmt.Errorf("must be a JSON array of webhook objects, not a JSON %s", te.Value)
		}
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
			want = jsonKind(webhookSettings[i].value)
		}
		if err = fmt.Errorf("must be %s, not a JSON %s", want, te.Value); te.Field != "" {
			return within("."+te.Field, err)
		}
		return err
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown key %s (known keys: %s)", name, strings.Join(paths, ", "))
	}
	return errors.New(strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind is what a webhook's value is in JSON, by its row's type.
func jsonKind(v value[apps.Webhook]) string {
	switch v.(type) {
	case field[apps.Webhook, []string]:
		return "a list of strings"
	case field[apps.Webhook, map[string]string]:
		return "an object of strings"
	}
	return "a string"
}
