package forge

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Registry maps provider names ("github", "local") to forges, so the gateway can
// serve /api/v1/webhooks/{provider} and the scheduler can find the provider a
// project is bound to. The zero value is empty and ready; it is safe for
// concurrent use.
type Registry struct {
	mu     sync.RWMutex
	forges map[string]Forge
}

// NewRegistry returns a registry holding forges; it fails like Register.
func NewRegistry(forges ...Forge) (*Registry, error) {
	r := &Registry{}
	for _, f := range forges {
		if err := r.Register(f); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds f under f.Name(). Names are lower-case letters, digits and
// "-"; registering a nil forge or a name twice is an error.
func (r *Registry) Register(f Forge) error {
	if f == nil {
		return fmt.Errorf("forge: register: nil forge")
	}
	name := f.Name()
	if !validName(name) {
		return fmt.Errorf("forge: register: provider name %q must be lower-case letters, digits and '-'", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.forges[name]; dup {
		return fmt.Errorf("forge: register: provider %q registered twice", name)
	}
	if r.forges == nil {
		r.forges = make(map[string]Forge)
	}
	r.forges[name] = f
	return nil
}

// Lookup returns the forge registered as name. An unknown name returns an
// error wrapping ErrUnknownProvider that lists the known providers.
func (r *Registry) Lookup(name string) (Forge, error) {
	r.mu.RLock()
	f, ok := r.forges[name]
	r.mu.RUnlock()
	if !ok {
		known := r.Names()
		if len(known) == 0 {
			return nil, fmt.Errorf("%w %q: no providers are configured", ErrUnknownProvider, name)
		}
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownProvider, name, strings.Join(known, ", "))
	}
	return f, nil
}

// Names returns the registered provider names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.forges))
	for n := range r.forges {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
