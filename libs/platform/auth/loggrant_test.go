package auth

import (
	"strings"
	"testing"
	"time"

	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestLogGrant(t *testing.T) {
	const secret = "int_deployment-secret"
	now := time.Now()
	grant := func() *runnerv1.LogGrant {
		g := &runnerv1.LogGrant{RunId: "run1", Attempt: 2, Runner: "runner-1", OrgId: "org1", ProjectId: "p1",
			RunLogBytes: 1 << 20, ExpiresAt: timestamppb.New(now.Add(time.Hour))}
		if err := SignLogGrant(secret, g); err != nil {
			t.Fatal(err)
		}
		return g
	}
	if err := VerifyLogGrant(secret, grant(), "runner-1", now); err != nil {
		t.Fatalf("the scheduler's grant, presented by its runner: %v", err)
	}
	altered := func(f func(g *runnerv1.LogGrant)) *runnerv1.LogGrant { g := grant(); f(g); return g }
	tests := []struct {
		name   string
		secret string
		g      *runnerv1.LogGrant
		runner string
		at     time.Time
		want   string
	}{
		{"none", secret, nil, "runner-1", now, "no log grant"},
		{"no mac", secret, altered(func(g *runnerv1.LogGrant) { g.Mac = nil }), "runner-1", now, "no log grant"},
		{"another run", secret, altered(func(g *runnerv1.LogGrant) { g.RunId = "run2" }), "runner-1", now, "forged or altered"},
		{"another attempt", secret, altered(func(g *runnerv1.LogGrant) { g.Attempt = 3 }), "runner-1", now, "forged or altered"},
		{"another organisation", secret, altered(func(g *runnerv1.LogGrant) { g.OrgId = "org2" }), "runner-1", now, "forged or altered"},
		{"another project", secret, altered(func(g *runnerv1.LogGrant) { g.ProjectId = "p2" }), "runner-1", now, "forged or altered"},
		{"a larger log cap", secret, altered(func(g *runnerv1.LogGrant) { g.RunLogBytes = 0 }), "runner-1", now, "forged or altered"},
		{"a later expiry", secret, altered(func(g *runnerv1.LogGrant) { g.ExpiresAt = timestamppb.New(now.Add(48 * time.Hour)) }), "runner-1", now, "forged or altered"},
		{"renamed to the caller", secret, altered(func(g *runnerv1.LogGrant) { g.Runner = "intruder" }), "intruder", now, "forged or altered"},
		{"a MAC under another secret", "int_other-deployment", grant(), "runner-1", now, "forged or altered"},
		{"another runner presents it", secret, grant(), "intruder", now, "issued to runner runner-1, not intruder"},
		{"expired", secret, grant(), "runner-1", now.Add(time.Hour), "expired"},
		{"no secret here", "", grant(), "runner-1", now, "no deployment secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyLogGrant(tt.secret, tt.g, tt.runner, tt.at)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error saying %q", err, tt.want)
			}
			if g := grant(); strings.Contains(err.Error(), string(g.Mac)) || strings.Contains(err.Error(), secret) {
				t.Fatalf("the error shows the MAC or the secret: %v", err)
			}
		})
	}
	// A grant's fields are length-prefixed: moving a byte between two fields changes the MAC.
	a := grant()
	b := proto.Clone(a).(*runnerv1.LogGrant)
	b.OrgId, b.ProjectId = "org1p", "1"
	if err := SignLogGrant(secret, b); err != nil || string(a.Mac) == string(b.Mac) {
		t.Fatalf("two grants share a MAC: %v", err)
	}
	if err := SignLogGrant("", grant()); err == nil {
		t.Fatal("signed without a secret")
	}
	if err := SignLogGrant(secret, &runnerv1.LogGrant{RunId: "run1", Runner: "r", Attempt: 1}); err == nil {
		t.Fatal("signed a grant without an expiry")
	}
}
