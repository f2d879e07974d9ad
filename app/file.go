package app

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// loadFile applies the config file named by --config, else FIZZ_CONFIG or
// REVERB_CONFIG, if any.
func (l *loader) loadFile() (err error) {
	source, file := l.lookup("CONFIG")
	if name, v := l.flagValue("CONFIG"); name != "" {
		source, file = name, v
	}
	if l.file = file; file == "" {
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %w", source, err)
	}
	defer func() {
		if recover() != nil { // the YAML library must not take the process down
			err = fmt.Errorf("%s: cannot be read as YAML", l.file)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return nil // an empty file
	} else if err != nil {
		return l.yamlError(err)
	}
	mapping(l, settings, &l.cfg, root.Content[0], "", "", "the file", "%s")
	if l.shape == nil && !errors.Is(dec.Decode(new(yaml.Node)), io.EOF) {
		l.shape = fmt.Errorf("%s: holds more than one YAML document", l.file)
	}
	return cmp.Or(l.shape, l.bad)
}

// yamlError puts the YAML library's first message on one line, after
// file:line when it names a line.
func (l *loader) yamlError(err error) error {
	msg := err.Error()
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(strings.ReplaceAll(msg, "\n", " "), "yaml: ")
	if line, text, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok && strings.HasPrefix(msg, "line ") && strings.Trim(line, "0123456789") == "" {
		return fmt.Errorf("%s:%s: %s", l.file, line, text)
	}
	return fmt.Errorf("%s: %s", l.file, msg)
}

// mapping reads n, a mapping at key, into o: each of its keys is that of a
// row under prefix, or of a section of rows (server: {port: ...}). section
// names n in messages, and part the sections in it. It returns the first
// line with a value.
func mapping[O any](l *loader, rows []setting[O], o *O, n *yaml.Node, key, prefix, section, part string) (first int) {
	if n = resolve(n); n.Kind != yaml.MappingNode {
		return l.wrongKind(n, section, "a mapping")
	}
	var m map[string]yaml.Node
	if err := n.Decode(&m); err != nil { // it refuses a key given twice, and applies merge keys (<<)
		l.shape = cmp.Or(l.shape, l.yamlError(err))
	}
	var known []string // the keys of rows under prefix
	for _, r := range rows {
		rest, ok := strings.CutPrefix(r.path, prefix)
		if k, _, _ := strings.Cut(rest, "."); ok && k != "" && !slices.Contains(known, k) {
			known = append(known, k)
		}
	}
	var order []*yaml.Node // m's keys in the file's order, n's own then those merged in, with their lines
	seen := map[string]bool{}
	for i := 0; i < len(n.Content); i += 2 {
		if name := resolve(n.Content[i]).Value; m[name].Kind != 0 && !seen[name] {
			seen[name], order = true, append(order, &yaml.Node{Value: name, Line: n.Content[i].Line})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if !seen[name] {
			order = append(order, &yaml.Node{Value: name, Line: m[name].Line})
		}
	}
	for _, k := range order {
		v, path, at, line := m[k.Value], prefix+k.Value, strings.TrimPrefix(key+"."+k.Value, "."), 0
		switch i := slices.IndexFunc(rows, func(r setting[O]) bool { return r.path == path }); {
		case i >= 0:
			line = rows[i].read(o, l, &v, at)
		case slices.Contains(known, k.Value):
			line = mapping(l, rows, o, &v, at, path+".", fmt.Sprintf(part, k.Value), part)
		default:
			l.shape = cmp.Or(l.shape, fmt.Errorf("%s: unknown key (known keys: %s)", l.source(k.Line, at), strings.Join(known, ", ")))
		}
		if line > 0 && (first == 0 || line < first) {
			first = line
		}
	}
	return first
}

// read parses the file's value n at key, unless it is null.
func (f field[O, T]) read(o *O, l *loader, n *yaml.Node, key string) int {
	var err error
	switch r := resolve(n); {
	case isNull(r):
		return n.Line
	case r.Kind == yaml.ScalarNode && f.parse != nil:
		*f.at(o), err = f.parse(r.Value)
	case f.node != nil:
		*f.at(o), err = f.node(r)
	default:
		err = errNotSingle
	}
	if err != nil {
		l.bad = cmp.Or(l.bad, fmt.Errorf("%s: %w", l.source(n.Line, key), err))
	}
	l.sources[key] = l.source(n.Line, key)
	return n.Line
}

// read builds the list from the file's entries, each from the defaults but
// for the settings an entry must give.
func (e entries[O, E]) read(o *O, l *loader, n *yaml.Node, key string) int {
	if n = resolve(n); n.Kind != yaml.SequenceNode {
		return l.wrongKind(n, e.names[0], "a list")
	}
	var list []E
	for _, item := range n.Content {
		if isNull(resolve(item)) && !e.keepNull {
			continue
		}
		at, x := fmt.Sprintf("%s[%d]", key, len(list)), new(E)
		resetRows(e.rows, x, true)
		l.sources[at] = l.source(mapping(l, e.rows, x, item, at, "", e.names[1], e.names[2]), at)
		list = append(list, *x)
	}
	if len(list) == 0 && e.empty != "" {
		l.bad = cmp.Or(l.bad, fmt.Errorf("%s: %s: %s", l.file, key, e.empty))
	}
	*e.at(o) = list
	return 0
}

// source is "file:line: key", or "file: key" without a line.
func (l *loader) source(line int, key string) string {
	if line == 0 {
		return l.file + ": " + key
	}
	return fmt.Sprintf("%s:%d: %s", l.file, line, key)
}

// wrongKind notes n as a problem unless it is null: section must be want.
// (The YAML library checked a mapping's keys first.)
func (l *loader) wrongKind(n *yaml.Node, section, want string) int {
	if err := n.Decode(new(map[string]yaml.Node)); n.Kind == yaml.MappingNode && err != nil {
		l.shape = cmp.Or(l.shape, l.yamlError(err))
	}
	kind := map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[n.Kind]
	if !isNull(n) {
		l.shape = cmp.Or(l.shape, fmt.Errorf("%s:%d: %s must be %s, not %s", l.file, n.Line, section, want, cmp.Or(kind, "a single value")))
	}
	return 0
}

var errNotSingle = errors.New("expected a single value, not a list or mapping")

// stringList reads a list of single values; notList is the error for a node
// that is not a list.
func stringList(notList error) func(*yaml.Node) ([]string, error) {
	return func(n *yaml.Node) ([]string, error) {
		if n.Kind != yaml.SequenceNode {
			return nil, notList
		}
		out := make([]string, len(n.Content))
		for i, item := range n.Content {
			if item = resolve(item); item.Kind != yaml.ScalarNode {
				return nil, errors.New("expected a list of strings")
			}
			out[i] = strings.TrimSpace(item.Value)
		}
		return out, nil
	}
}

// headerNode reads a webhook's headers: a mapping of names to values. (A
// name given twice is caught by the check, as the same header.)
func headerNode(n *yaml.Node) (headers map[string]string, err error) {
	notMapping := errors.New("expected a mapping of header names to values")
	if n.Kind != yaml.MappingNode {
		return nil, notMapping
	}
	for k := 0; k+1 < len(n.Content); k += 2 {
		name, value := resolve(n.Content[k]), resolve(n.Content[k+1])
		switch {
		case name.Kind != yaml.ScalarNode:
			return nil, notMapping
		case value.Kind != yaml.ScalarNode:
			return nil, fmt.Errorf("header %q: %w", name.Value, errNotSingle)
		case headers == nil:
			headers = map[string]string{}
		}
		if headers[name.Value] = value.Value; isNull(value) {
			headers[name.Value] = ""
		}
	}
	return headers, nil
}

// resolve follows an alias (*name) to the node it names, never an alias.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }
