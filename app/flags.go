package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// helpError is returned for --help: its message is the usage text.
type helpError struct{}

func (helpError) Error() string { return usage() }
func (helpError) Unwrap() error { return flag.ErrHelp }

// parseArgs parses the command line: an optional "start" and the flags, in
// any order. It returns the flags given, by their rows' variable suffix, as
// written: the rows parse them when the flags are applied, after the
// environment.
func parseArgs(args []string) (map[string][2]string, error) {
	given := map[string][2]string{}
	fs := flag.NewFlagSet("fizz", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, s := range settings {
		name, arg, _ := strings.Cut(s.flag, " ")
		set := func(v string) (err error) {
			if given[s.env] = [2]string{"--" + name, v}; arg == "" { // a switch, --debug or --debug=false, whose value is checked at once
				_, err = boolean(v)
			}
			return err
		}
		if arg != "" {
			fs.Func(name, s.help, set)
		} else if name != "" {
			fs.BoolFunc(name, s.help, set)
		}
	}
	for start := false; ; start = true {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, helpError{}
		} else if err != nil {
			return nil, fmt.Errorf("%w (see --help)", err)
		}
		if args = fs.Args(); len(args) == 0 {
			return given, nil
		}
		if args[0] != "start" || start {
			return nil, fmt.Errorf("unexpected argument %q: the only command is start (see --help)", args[0])
		}
		args = args[1:]
	}
}

// flagValue returns the flag given for the row whose variable suffix is suffix,
// as "--port" and its value, like lookup does for the environment.
func (l *loader) flagValue(suffix string) (name, value string) {
	return l.flags[suffix][0], l.flags[suffix][1]
}

// usage is the text of --help: the rows with a flag, with their variables
// and defaults.
func usage() string {
	var synopsis, list strings.Builder
	for _, s := range settings {
		if s.flag != "" {
			about := "FIZZ_" + s.env
			if def, ok := s.value.(fmt.Stringer); ok && def.String() != "" {
				about += ", default " + def.String()
			}
			fmt.Fprintf(&synopsis, " [--%s]", s.flag)
			fmt.Fprintf(&list, "  %-16s %s (%s)\n", "--"+s.flag, s.help, about)
		}
	}
	return "Usage: fizz [start]" + synopsis.String() + `

Starts a Fizz node, a Pusher-protocol WebSocket server.

Flags:
` + list.String() + `  -h, --help       print this text

Flags override environment variables, which override the config file.
Where a FIZZ_ variable is unset, the REVERB_ variable of the same suffix is
read, so a Laravel Reverb .env works unchanged.`
}
