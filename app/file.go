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

// fileDoc is the config file being read.
type fileDoc struct {
	path       string
	sources    map[string]string // the loader's: read notes "file:line: key" for each setting
	shape, bad error             // the first problem with the file's shape, which comes before any bad value
}

// loadFile applies the config file at path, which source (--config,
// FIZZ_CONFIG or REVERB_CONFIG) named. It reports whether the file lists apps.
func (l *loader) loadFile(path, source string) (hasApps bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("%s: %w", source, err)
	}
	defer func() {
		if recover() != nil { // the YAML library must not take the process down
			err = fmt.Errorf("%s: cannot be read as YAML", path)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return false, nil // an empty file
	} else if err != nil {
		return false, yamlError(path, err)
	}
	d := &fileDoc{path: path, sources: l.sources}
	mapping(d, settings, &l.cfg, root.Content[0], "", "", "the file", "%s")
	if d.shape == nil && !errors.Is(dec.Decode(new(yaml.Node)), io.EOF) {
		d.shape = fmt.Errorf("%s: holds more than one YAML document", path)
	}
	_, hasApps = l.sources[appsKey+"[0]"]
	return hasApps, cmp.Or(d.shape, d.bad)
}

// yamlError puts the YAML library's first message on one line, after
// file:line when it names a line.
func yamlError(path string, err error) error {
	msg := err.Error()
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(strings.ReplaceAll(msg, "\n", " "), "yaml: ")
	if line, text, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok && strings.HasPrefix(msg, "line ") && strings.Trim(line, "0123456789") == "" {
		return fmt.Errorf("%s:%s: %s", path, line, text)
	}
	return fmt.Errorf("%s: %s", path, msg)
}

// mapping reads n, a mapping at key, into o: each of its keys is that of a
// row under prefix, or of a section of rows (server: {port: ...}). section
// names n in messages, and part the sections in it. It returns the first
// line with a value.
func mapping[O any](d *fileDoc, rows []setting[O], o *O, n *yaml.Node, key, prefix, section, part string) (first int) {
	if n = resolve(n); n.Kind != yaml.MappingNode {
		return d.wrongKind(n, section, "a mapping")
	}
	var m map[string]yaml.Node
	if err := n.Decode(&m); err != nil { // it refuses a key given twice, and applies merge keys (<<)
		d.shape = cmp.Or(d.shape, yamlError(d.path, err))
	}
	known := keys(rows, prefix)
	for _, k := range inOrder(n, m) {
		v, path, at := m[k.name], prefix+k.name, strings.TrimPrefix(key+"."+k.name, ".")
		switch i := slices.IndexFunc(rows, func(r setting[O]) bool { return r.path == path }); {
		case i >= 0:
			first = earliest(first, rows[i].read(o, d, &v, at))
		case slices.Contains(known, k.name):
			first = earliest(first, mapping(d, rows, o, &v, at, path+".", fmt.Sprintf(part, k.name), part))
		default:
			d.shape = cmp.Or(d.shape, fmt.Errorf("%s: unknown key (known keys: %s)", d.source(k.line, at), strings.Join(known, ", ")))
		}
	}
	return first
}

// fileKey is a key of a mapping and its line.
type fileKey struct {
	name string
	line int
}

// inOrder lists m's keys in the file's order: n's own, then those merged in.
func inOrder(n *yaml.Node, m map[string]yaml.Node) (list []fileKey) {
	listed := func(name string) bool {
		return slices.ContainsFunc(list, func(k fileKey) bool { return k.name == name })
	}
	for i := 0; i < len(n.Content); i += 2 {
		if name := resolve(n.Content[i]).Value; m[name].Kind != 0 && !listed(name) {
			list = append(list, fileKey{name, n.Content[i].Line})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		if !listed(name) {
			list = append(list, fileKey{name, m[name].Line})
		}
	}
	return list
}

// keys lists the keys of rows under prefix, in order.
func keys[O any](rows []setting[O], prefix string) (list []string) {
	for _, r := range rows {
		if rest, ok := strings.CutPrefix(r.path, prefix); ok && rest != "" {
			if k, _, _ := strings.Cut(rest, "."); !slices.Contains(list, k) {
				list = append(list, k)
			}
		}
	}
	return list
}

// read parses the file's value n at key, unless it is null.
func (f field[O, T]) read(o *O, d *fileDoc, n *yaml.Node, key string) int {
	v, err := *new(T), error(nil)
	switch r := resolve(n); {
	case isNull(r):
		return n.Line
	case f.node != nil:
		v, err = f.node(r)
	case r.Kind != yaml.ScalarNode:
		err = errNotSingle
	default:
		v, err = f.parse(r.Value)
	}
	if err != nil {
		d.bad = cmp.Or(d.bad, fmt.Errorf("%s: %w", d.source(n.Line, key), err))
	}
	*f.at(o), d.sources[key] = v, d.source(n.Line, key)
	return n.Line
}

// read builds the list from the file's entries, each from the defaults but
// for the settings an entry must give.
func (e entries[O, E]) read(o *O, d *fileDoc, n *yaml.Node, key string) int {
	if n = resolve(n); n.Kind != yaml.SequenceNode {
		return d.wrongKind(n, e.names[0], "a list")
	}
	var list []E
	for _, item := range n.Content {
		if isNull(resolve(item)) && !e.keepNull {
			continue
		}
		at, x := fmt.Sprintf("%s[%d]", key, len(list)), new(E)
		resetRows(e.rows, x, true)
		d.sources[at] = d.source(mapping(d, e.rows, x, item, at, "", e.names[1], e.names[2]), at)
		list = append(list, *x)
	}
	if len(list) == 0 && e.empty != "" {
		d.bad = cmp.Or(d.bad, fmt.Errorf("%s: %s: %s", d.path, key, e.empty))
	}
	*e.at(o) = list
	return 0
}

// source is "file:line: key", or "file: key" without a line.
func (d *fileDoc) source(line int, key string) string {
	if line == 0 {
		return d.path + ": " + key
	}
	return fmt.Sprintf("%s:%d: %s", d.path, line, key)
}

// wrongKind notes n as a problem unless it is null: section must be want.
// (The YAML library checked a mapping's keys first.)
func (d *fileDoc) wrongKind(n *yaml.Node, section, want string) int {
	if err := n.Decode(new(map[string]yaml.Node)); n.Kind == yaml.MappingNode && err != nil {
		d.shape = cmp.Or(d.shape, yamlError(d.path, err))
	}
	kind := map[yaml.Kind]string{yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[n.Kind]
	if !isNull(n) {
		d.shape = cmp.Or(d.shape, fmt.Errorf("%s:%d: %s must be %s, not %s", d.path, n.Line, section, want, cmp.Or(kind, "a single value")))
	}
	return 0
}

var errNotSingle = errors.New("expected a single value, not a list or mapping")

// originNode reads allowed_origins: a list, or one comma-separated value.
func originNode(n *yaml.Node) ([]string, error) {
	if n.Kind == yaml.ScalarNode {
		return origins(n.Value)
	}
	return stringList(n, errNotSingle)
}

func eventTypeNode(n *yaml.Node) ([]string, error) {
	return stringList(n, errors.New("expected a list of event types, such as [channel_occupied, channel_vacated]"))
}

// stringList reads a list of single values; notList is the error for n that
// is not a list.
func stringList(n *yaml.Node, notList error) ([]string, error) {
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

// headerNode reads a webhook's headers: a mapping of names to values. (A
// name given twice is caught by the check, as the same header.)
func headerNode(n *yaml.Node) (headers map[string]string, err error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("expected a mapping of header names to values")
	}
	for k := 0; k+1 < len(n.Content); k += 2 {
		name, value := resolve(n.Content[k]), resolve(n.Content[k+1])
		switch {
		case name.Kind != yaml.ScalarNode:
			return nil, errors.New("expected a mapping of header names to values")
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

// earliest is the first of two lines, where 0 is none.
func earliest(a, b int) int {
	if a == 0 || b > 0 && b < a {
		return b
	}
	return a
}
