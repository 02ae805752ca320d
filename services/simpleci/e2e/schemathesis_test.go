package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSchemathesis runs schemathesis (PyPI, pinned in deploy/local/schemathesis.sh) with
// all its checks against `simpleci dev`'s served document, /openapi.json, with a valid
// token: every operation is fuzzed with data the document allows and data it does not,
// and every answer must be one the document states, in the shape it states. Under
// `make test` (the servers' addresses are set) the tool is installed when missing; run
// alone without it, the test skips and says how to install it.
func TestSchemathesis(t *testing.T) {
	st := schemathesis(t)
	data := t.TempDir()
	a, _ := startDevWith(t, nil, data, nil, "--tier", "standard:timeout="+tierTimeout.String())

	// The served document carries this deployment's forges and the scheduler's tiers.
	var served struct {
		Tiers []struct {
			Name string `json:"name"`
		} `json:"tiers"`
	}
	a.json("GET", "/api/v1/tiers", nil, http.StatusOK, &served)
	tiers := []string{""}
	for _, t := range served.Tiers {
		tiers = append(tiers, t.Name)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	eventually(t, 30*time.Second, "the served tiers in /openapi.json", func() bool {
		a.json("GET", "/openapi.json", nil, http.StatusOK, &doc)
		props := doc.Components.Schemas["v1CreateProjectRequest"].Properties
		return slices.Equal(props["tier"].Enum, tiers) && slices.Contains(props["provider"].Enum, "local")
	})

	// Data for the operations that need something to exist: a project whose repository
	// is an empty directory (its runs end errored at once, so fuzzing starts no jobs) and one run.
	var p struct {
		ID string `json:"id"`
	}
	a.json("POST", "/api/v1/projects", map[string]any{"name": "fuzz", "provider": "local",
		"repository": repoDir(t), "events": []string{"manual"}}, http.StatusOK, &p)
	var r run
	a.json("POST", "/api/v1/projects/fuzz/runs", map[string]string{"ref": "main"}, http.StatusOK, &r)
	a.json("PUT", "/api/v1/projects/fuzz/secrets/FUZZ_SECRET", map[string]string{"value": "fuzz-secret-value"}, http.StatusOK, nil)
	a.json("POST", "/api/v1/teams", map[string]string{"name": "fuzz-team", "role": "viewer"}, http.StatusOK, nil)
	var tokens []string // for RevokeToken to revoke
	for i := range 3 {
		var tok struct {
			ID string `json:"id"`
		}
		a.json("POST", "/api/v1/tokens", map[string]string{"name": fmt.Sprintf("fuzz-%d", i), "expiresIn": "1h"}, http.StatusOK, &tok)
		tokens = append(tokens, fmt.Sprintf("%q", tok.ID))
	}

	work := t.TempDir() // schemathesis keeps its example database in its working directory
	config := fmt.Sprintf(`# Known ids, used for half of the generated path parameters.
[dictionaries.projects]
values = ["fuzz", %q]
[dictionaries.runs]
values = [%q]
[dictionaries.secrets]
values = ["FUZZ_SECRET"]
[dictionaries.tokens]
values = [%s]
[dictionaries.teams]
values = ["fuzz-team"]
[parameters]
"path.project" = { dictionary = "projects", probability = 0.5 }
"path.run" = { dictionary = "runs", probability = 0.5 }
"path.name" = { dictionary = "secrets", probability = 0.5 }
"path.id" = { dictionary = "tokens", probability = 0.5 }
"path.team" = { dictionary = "teams", probability = 0.5 }
# The repository list needs a GitHub sign-in, which this server has none of: a documented
# 400 (FailedPrecondition) for every request, which is what this operation is to answer here.
[[operations]]
include-operation-id = "GitHubService_ListGitHubRepositories"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
# The fuzz project's run errored before it started (its repository is empty), so it has no
# pipeline to re-run: a documented 400 (FailedPrecondition), as for an unfinished run.
[[operations]]
include-operation-id = "RunService_RerunRun"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
# Cron expressions, time zones and refs are checked by the scheduler (5 cron fields, an
# IANA zone, git's ref rules), not by patterns, and the fuzz project's events lack
# schedule: a documented 400 for generated schedules.
[[operations]]
include-operation-id = "RunService_SetSchedules"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
`, p.ID, r.ID, strings.Join(tokens, ", "))
	if err := os.WriteFile(filepath.Join(work, "schemathesis.toml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// A fixed seed keeps make test repeatable; SIMPLECI_SCHEMATHESIS_SEED and
	// SIMPLECI_SCHEMATHESIS_EXAMPLES explore further by hand.
	seed, examples := envOr("SIMPLECI_SCHEMATHESIS_SEED", "20261203"), envOr("SIMPLECI_SCHEMATHESIS_EXAMPLES", "40")
	base := []string{"run", "--checks", "all", "--seed", seed, "--no-color",
		"-H", "Authorization: Bearer " + a.token, "--url", a.base, a.base + "/openapi.json"}
	// Revoking tokens last and alone: the stateful phase lists the caller's tokens and
	// revokes them, its own included, after which every call would be 401.
	runSchemathesis(t, st, work, append(base, "--max-examples", examples, "--exclude-operation-id", "TokenService_RevokeToken")...)
	runSchemathesis(t, st, work, append(base, "--max-examples", "20", "--include-operation-id", "TokenService_RevokeToken")...)
}

// schemathesis returns the schemathesis command, installing it under `make test`.
func schemathesis(t *testing.T) string {
	return localTool(t, "schemathesis.sh", "schemathesis")
}

func runSchemathesis(t *testing.T, st, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, st, args...)
	cmd.Dir = dir
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("schemathesis %s: %v after %s\n%s", strings.Join(args[len(args)-2:], " "), err, time.Since(start).Round(time.Second), out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("schemathesis in %s: %s", time.Since(start).Round(time.Second), lines[len(lines)-1])
	if os.Getenv("SIMPLECI_SCHEMATHESIS_OUTPUT") != "" {
		t.Logf("%s", out)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
