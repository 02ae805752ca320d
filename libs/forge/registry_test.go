package forge_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
)

type fakeForge struct{ name string }

func (f fakeForge) Name() string { return f.name }
func (fakeForge) ParseWebhook(http.Header, []byte, []byte) (forge.Trigger, error) {
	return forge.Trigger{}, nil
}
func (fakeForge) ReadFile(context.Context, string, string, string) ([]byte, error) { return nil, nil }
func (fakeForge) ResolveRef(context.Context, string, string) (string, error)       { return "", nil }
func (fakeForge) Checkout(context.Context, string, string, string) error           { return nil }

func TestRegistry(t *testing.T) {
	r, err := forge.NewRegistry(fakeForge{"local"}, fakeForge{"github"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := r.Lookup("github")
	if err != nil || f.Name() != "github" {
		t.Fatalf("Lookup(github) = %v, %v", f, err)
	}
	if got := r.Names(); !slices.Equal(got, []string{"github", "local"}) {
		t.Fatalf("Names = %v", got)
	}

	_, err = r.Lookup("gitlab")
	if !errors.Is(err, forge.ErrUnknownProvider) || !strings.Contains(err.Error(), "github, local") {
		t.Fatalf("Lookup(gitlab) = %v, want ErrUnknownProvider listing the known ones", err)
	}
	if err := r.Register(fakeForge{"local"}); err == nil {
		t.Fatal("registering a name twice succeeded")
	}
	for _, name := range []string{"", "GitHub", "a/b", "x y"} {
		if err := r.Register(fakeForge{name}); err == nil {
			t.Errorf("Register(%q) succeeded", name)
		}
	}
	if err := r.Register(nil); err == nil {
		t.Fatal("Register(nil) succeeded")
	}

	var empty forge.Registry
	if _, err := empty.Lookup("local"); !errors.Is(err, forge.ErrUnknownProvider) {
		t.Fatalf("zero Registry Lookup = %v", err)
	}
}
