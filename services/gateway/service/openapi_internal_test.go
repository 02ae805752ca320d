package service

import (
	"context"
	"errors"
	"slices"
	"testing"

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
