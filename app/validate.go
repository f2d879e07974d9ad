package app

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/fizz-server/fizz/modules/apps"
)

// Validate checks c and returns the first problem it finds as one line that
// starts with the setting: its config-file key (server.port, apps[1].key) or,
// for settings the file has no key for, its variable (FIZZ_TLS_KEY). Load
// renames the setting to the flag, variable or file line it came from.
func (c Config) Validate() error { return checkRows(settings, &c) }

// settingError is a problem with one setting, as Validate reports it.
type settingError struct{ setting, msg string }

func (e *settingError) Error() string { return e.setting + ": " + e.msg }

// checkRows checks o by its rows, naming the first problem's setting within o.
func checkRows[O any](rows []setting[O], o *O) error {
	for _, r := range rows {
		if err := r.check(o); err != nil {
			return within(r.name(), err)
		}
	}
	return nil
}

// within names err's setting as inside name: a settingError's setting is a
// path in it already ([1].url).
func within(name string, err error) error {
	if se, ok := errors.AsType[*settingError](err); ok {
		return &settingError{name + se.setting, se.msg}
	}
	return &settingError{name, err.Error()}
}

// failIf is the error msg formatted with args, when bad. The checks, like
// the parsers, leave the setting out of their messages.
func failIf(bad bool, msg string, args ...any) error {
	if bad {
		return fmt.Errorf(msg, args...)
	}
	return nil
}

// atLeast, oneOf and required make checks.
func atLeast[T ~int | ~int64](min T, msg string) func(T) error {
	return func(v T) error { return failIf(v < min, msg, v) }
}

func oneOf(msg string, allowed ...string) func(string) error {
	return func(v string) error { return failIf(!slices.Contains(allowed, v), msg, v) }
}

func required(msg string) func(string) error {
	return func(v string) error { return failIf(v == "", "%s", msg) }
}

func port(p int) error { return failIf(p < 0 || p > 65535, "%d is not a port number (0 to 65535)", p) }

func routePrefix(p string) error {
	return failIf(p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/")), "%q must be empty or start with / and not end with /", p)
}

func channelName(s string) error {
	return cmp.Or(failIf(s == "", "must not be empty"), failIf(strings.ContainsFunc(s, unicode.IsSpace), "%q must not contain spaces", s))
}

func credential(v string) error {
	return cmp.Or(failIf(v == "", "must not be empty"), failIf(strings.TrimSpace(v) != v, "has leading or trailing spaces"))
}

var errNotAddresses = errors.New("expected a list of host:port addresses")

// addresses checks a list of host:port addresses; nil is unset, an empty
// list is an error.
func addresses(list []string) error {
	for i, a := range list {
		host, p, err := net.SplitHostPort(a)
		n, perr := strconv.Atoi(p)
		switch {
		case a == "":
			return fmt.Errorf("entry %d is empty", i+1)
		case err != nil || host == "" || perr != nil || n < 1 || n > 65535:
			return fmt.Errorf("entry %d %q is not a host:port address", i+1, a)
		}
	}
	return failIf(list != nil && len(list) == 0, "the list is empty; list at least one host:port, or remove the setting")
}

func originList(list []string) error {
	i := slices.IndexFunc(list, func(o string) bool { return strings.TrimSpace(o) == "" })
	return cmp.Or(failIf(len(list) == 0, `must list at least one origin ("*" allows all)`), failIf(i >= 0, "entry %d is empty", i+1))
}

// distinctApps checks the apps as a whole: one at least, and no id or key
// twice, or the apps module could not tell them apart.
func distinctApps(list []apps.App) error {
	if c := apps.FindClash(list); c != nil {
		return &settingError{fmt.Sprintf("[%d].%s", c.Second, c.Field), fmt.Sprintf("duplicate %s %q (also apps[%d].%s)", c.Field, c.Value, c.First, c.Field)}
	}
	return failIf(len(list) == 0, "at least one app is required")
}

func redisAddress(raw string) error {
	u, err := apps.CheckURL(raw, "redis", "rediss")
	if err != nil {
		return err
	}
	db := strings.TrimPrefix(u.Path, "/")
	n, err := strconv.Atoi(db)
	return failIf(db != "" && (err != nil || n < 0), "database %q is not a number", db)
}
