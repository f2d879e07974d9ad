package app

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
)

// Load builds the configuration of a node from its command line (args is
// os.Args[1:]) and its environment (getenv is os.Getenv, or a map in tests).
// Each layer overrides the one before: Defaults, the YAML file named by
// --config (else FIZZ_CONFIG, else REVERB_CONFIG), the environment, the
// flags. Validate then checks the result. Load never reads the process's
// environment or command line itself, nor replaces a bad value by a default.
//
// Every error is one line that names the bad setting as the operator wrote
// it: the flag, the variable (REVERB_SERVER_PORT when that is where the value
// came from), or file:line and the key in the config file. --help returns an
// error that wraps flag.ErrHelp and whose message is the usage text.
//
// Where a FIZZ_X variable is unset or empty, REVERB_X is read. REDIS_URL sets
// the Redis URL; when it is unset, Laravel's REDIS_HOST, REDIS_PORT,
// REDIS_USERNAME, REDIS_PASSWORD and REDIS_DB build it ("null" is unset
// there). FIZZ_DEBUG or --debug also sets the log level to debug.
//
// An app of the config file must give its id, key and secret; the limits it
// leaves out take the defaults. The FIZZ_APP_* variables describe the app
// from the environment. When the file lists no apps, it is the only one: the
// default app with the variables applied. When the file lists apps, the
// variables, if any is set, apply to the app whose id is FIZZ_APP_ID (else
// app-id); with no such app, FIZZ_APP_KEY adds one after the file's, and
// without it Load fails, naming the first variable set. Its webhooks are
// FIZZ_APP_WEBHOOKS's (a JSON array of the file's webhook objects), then one
// for every event at FIZZ_APP_WEBHOOK_URL; either replaces a file app's.
func Load(args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	given, err := parseArgs(args)
	if err != nil {
		return Config{}, err
	}
	l := &loader{cfg: Defaults(), getenv: getenv, sources: map[string]string{}}
	source, file := l.lookup(configFile.env)
	if v, ok := given[flagName(configFile)]; ok {
		source, file = "--"+flagName(configFile), v
	}
	fileApps := false
	if file != "" {
		if fileApps, err = l.loadFile(file, source); err != nil {
			return Config{}, err
		}
	}
	if err := l.loadEnv(file, fileApps); err != nil {
		return Config{}, err
	}
	if err := l.loadFlags(given); err != nil {
		return Config{}, err
	}
	if l.cfg.Log.Debug {
		l.cfg.Log.Level = "debug"
	}
	if err := l.cfg.Validate(); err != nil {
		return Config{}, l.rename(err)
	}
	// A busy port names its setting; the defaults' names stay empty, so
	// that the default metrics port may give way to another node's.
	for _, s := range settings {
		if s.origin != nil {
			*s.origin(&l.cfg) = l.sources[s.name()]
		}
	}
	l.cfg.loaded = true
	if s := l.cfg.Server; s.TLSCert != "" {
		// A bad or missing certificate stops start-up here, with exit 2,
		// rather than at the first TLS handshake.
		if _, err := tls.LoadX509KeyPair(s.TLSCert, s.TLSKey); err != nil {
			return Config{}, fmt.Errorf("FIZZ_TLS_CERT / FIZZ_TLS_KEY: %s", strings.Join(strings.Fields(err.Error()), " "))
		}
	}
	return l.cfg, nil
}

// loader carries the configuration through the layers and remembers where
// each setting was last set, so that errors name the flag, variable or file
// line the operator wrote.
type loader struct {
	cfg     Config
	getenv  func(string) string
	sources map[string]string // setting key → "--port", "REVERB_SERVER_PORT", "fizz.yaml:3: server.port"
}

// apply sets the row s of o to raw, which source gave, and records source
// for the setting at key. A value set whole forgets where its parts came
// from (FIZZ_APP_WEBHOOKS replaces a file app's webhooks). A problem inside
// the value is named inside source (FIZZ_APP_WEBHOOKS[1].url).
func apply[O any](l *loader, o *O, s setting[O], key, source, raw string) error {
	if err := s.set(o, raw); err != nil {
		return within(source, err)
	}
	for k := range l.sources {
		if strings.HasPrefix(k, key+"[") || strings.HasPrefix(k, key+".") {
			delete(l.sources, k)
		}
	}
	l.sources[key] = source
	return nil
}

// rename replaces the setting key in a Validate error by its source.
func (l *loader) rename(err error) error {
	se, ok := errors.AsType[*settingError](err)
	if !ok {
		return err
	}
	// An unset field of a file app, or a part of a value set as a whole
	// (apps[0].webhooks[1].url from FIZZ_APP_WEBHOOKS): name the nearest
	// enclosing setting that has a source, and the path inside it.
	for key := se.setting; key != ""; key = key[:max(strings.LastIndexAny(key, ".["), 0)] {
		if src, ok := l.sources[key]; ok {
			return fmt.Errorf("%s%s: %s", src, se.setting[len(key):], se.msg)
		}
	}
	return err
}
