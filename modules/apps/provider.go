package apps

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned when no app has the id or key asked for.
var ErrNotFound = errors.New("app not found")

// Provider finds apps by id or key. It mirrors Reverb's ApplicationProvider.
type Provider struct {
	all   []*App
	byID  map[string]*App
	byKey map[string]*App
}

// ClashError says that two apps of a list share an id or a key, so that one
// of them could not be found by it.
type ClashError struct {
	Field  string // "id" or "key"
	Value  string
	First  int // the earlier app's index
	Second int // the later app's index
}

func (e *ClashError) Error() string {
	return fmt.Sprintf("apps: duplicate app %s %q", e.Field, e.Value)
}

// FindClash returns the first app of list, in order, whose id or else key an
// earlier app has, or nil when ids and keys are unique. NewProvider refuses
// such a list, and the configuration names the clash when it is loaded.
func FindClash(list []App) *ClashError {
	ids, keys := map[string]int{}, map[string]int{}
	for i, a := range list {
		for _, f := range []struct {
			name, value string
			seen        map[string]int
		}{{"id", a.ID, ids}, {"key", a.Key, keys}} {
			if j, ok := f.seen[f.value]; ok {
				return &ClashError{Field: f.name, Value: f.value, First: j, Second: i}
			}
			f.seen[f.value] = i
		}
	}
	return nil
}

// NewProvider returns a Provider for list. Ids and keys must be unique.
func NewProvider(list []App) (*Provider, error) {
	if c := FindClash(list); c != nil {
		return nil, c
	}
	p := &Provider{byID: make(map[string]*App), byKey: make(map[string]*App)}
	for i := range list {
		a := list[i].WithDefaults()
		p.all = append(p.all, &a)
		p.byID[a.ID] = &a
		p.byKey[a.Key] = &a
	}
	return p, nil
}

// FindByID returns the app with id, or ErrNotFound.
func (p *Provider) FindByID(id string) (*App, error) {
	if a, ok := p.byID[id]; ok {
		return a, nil
	}
	return nil, ErrNotFound
}

// FindByKey returns the app with key, or ErrNotFound.
func (p *Provider) FindByKey(key string) (*App, error) {
	if a, ok := p.byKey[key]; ok {
		return a, nil
	}
	return nil, ErrNotFound
}

// All returns every app, in configuration order.
func (p *Provider) All() []*App {
	return p.all
}
