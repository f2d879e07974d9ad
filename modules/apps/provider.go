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

// NewProvider returns a Provider for list. Ids and keys must be unique.
func NewProvider(list []App) (*Provider, error) {
	p := &Provider{byID: make(map[string]*App), byKey: make(map[string]*App)}
	for i := range list {
		a := list[i].WithDefaults()
		if _, dup := p.byID[a.ID]; dup {
			return nil, fmt.Errorf("apps: duplicate app id %q", a.ID)
		}
		if _, dup := p.byKey[a.Key]; dup {
			return nil, fmt.Errorf("apps: duplicate app key %q", a.Key)
		}
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
