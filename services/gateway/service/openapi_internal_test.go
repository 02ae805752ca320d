package service

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/proto/simpleci/api/openapi"
)

// TestContractFollowsTheServedTiers: the document's tier enum is the scheduler's list,
// rebuilt when it changes, and kept (not emptied) while the scheduler cannot be asked.
func TestContractFollowsTheServedTiers(t *testing.T) {
	tiers, fail := []string{"standard"}, false
	cs := &contracts{providers: []string{"local"}, tiers: func(context.Context) ([]string, error) {
		if fail {
			return nil, errors.New("scheduler down")
		}
		return tiers, nil
	}}
	enum := func() []any {
		c, err := cs.get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return property(c.doc, "v1CreateProjectRequest", "tier").Enum
	}
	if got := enum(); !slices.Equal(got, []any{"", "standard"}) {
		t.Fatalf("tier enum %v", got)
	}
	tiers = []string{"large", "standard"}
	if got := enum(); !slices.Equal(got, []any{"", "large", "standard"}) {
		t.Fatalf("tier enum after a change %v", got)
	}
	fail = true
	if got := enum(); !slices.Equal(got, []any{"", "large", "standard"}) {
		t.Fatalf("tier enum while the scheduler is down %v, want the last known", got)
	}
}

// TestCommittedDocumentLeavesDeploymentFieldsOpen: without a deployment's forges and
// tiers, provider and tier have no enum (any deployment's values are allowed).
func TestCommittedDocumentLeavesDeploymentFieldsOpen(t *testing.T) {
	doc, err := completeSpec(openapi.Swagger, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"provider", "tier"} {
		if e := property(doc, "v1CreateProjectRequest", f).Enum; e != nil {
			t.Errorf("%s enum %v, want none", f, e)
		}
	}
}

// TestRefPatternWithinGitsRules: every ref the document allows passes the scheduler's
// check (forge.ValidateRef), so a ref the gateway lets through is never refused after.
func TestRefPatternWithinGitsRules(t *testing.T) {
	doc, err := completeSpec(openapi.Swagger, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := property(doc, "RunServiceTriggerRunBody", "ref")
	re := regexp.MustCompile(ref.Pattern)
	for _, s := range []string{"main", "refs/heads/main", "refs/tags/v1.2.3", "feature/x.y", strings.Repeat("a", 40)} {
		if !re.MatchString(s) {
			t.Errorf("%q should be allowed", s)
		}
	}
	for _, s := range []string{"a.lock", "refs/heads/x.lock", "a..b", "-x", "a//b", "a/", "@", "a@{b}", "a b", ".x", "x/.y"} {
		if re.MatchString(s) {
			t.Errorf("%q should be refused", s)
		}
	}
	alphabet := []byte("abcklmnoABC019_+=,-./@{~ :")
	rng := rand.New(rand.NewPCG(1, 2))
	matched := 0
	for range 300000 {
		b := make([]byte, 1+rng.IntN(12))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		if re.Match(b) {
			matched++
			if err := forge.ValidateRef(string(b)); err != nil {
				t.Fatalf("%q matches the document's pattern but %v", b, err)
			}
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d random refs matched: the test explores too little", matched)
	}
}

// BenchmarkValidate: the cost the document's check adds to an API request (docs/benchmarks.md).
func BenchmarkValidate(b *testing.B) {
	g := &gateway{contracts: &contracts{providers: []string{"local"}}}
	body := `{"name":"app","provider":"local","repository":"/srv/git/app","events":["push","manual"],"network":"off"}`
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/projects", strings.NewReader(body))
		if msg, err := g.validate(r); msg != "" || err != nil {
			b.Fatal(msg, err)
		}
	}
}

// TestRepositoryPatternFollowsTheProviders: "owner/name" passes the document only where
// the github provider is served; paths and URLs pass either way.
func TestRepositoryPatternFollowsTheProviders(t *testing.T) {
	for _, tt := range []struct {
		providers []string
		ownerName bool
	}{{[]string{"local"}, false}, {[]string{"local", "github"}, true}} {
		doc, err := completeSpec(openapi.Swagger, tt.providers, nil)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(property(doc, "v1CreateProjectRequest", "repository").Pattern)
		if got := re.MatchString("octo/app"); got != tt.ownerName {
			t.Errorf("providers %v: owner/name matches %v, want %v", tt.providers, got, tt.ownerName)
		}
		for _, ok := range []string{"/srv/git/app", "https://git.example.com/app.git"} {
			if !re.MatchString(ok) {
				t.Errorf("providers %v: %s refused", tt.providers, ok)
			}
		}
		if re.MatchString("octo/app/extra") || re.MatchString("-octo/app") {
			t.Errorf("providers %v: a malformed owner/name matches", tt.providers)
		}
	}
}
