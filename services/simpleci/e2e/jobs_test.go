package e2e_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRunnerJobs: one runner (`simpleci dev`) with --jobs 3 runs three sleeping runs at
// once (their steps' intervals overlap, so the three take less than the sum of their
// steps), and with --jobs 1 one after another (no two steps overlap); either way every
// run succeeds with its whole log.
func TestRunnerJobs(t *testing.T) {
	for _, jobs := range []int{3, 1} {
		t.Run(fmt.Sprintf("jobs=%d", jobs), func(t *testing.T) {
			a, _ := startDevWith(t, nil, t.TempDir(), nil, "--tier", "standard:timeout=60s", "--jobs", fmt.Sprint(jobs))
			repo, shas := gitRepo(t, map[string]string{"main2": `{"steps": [
				{"name": "sleep", "run": "echo begin; sleep 2; echo end"}]}`})
			var p project
			a.json("POST", "/api/v1/projects", map[string]any{"name": "jobs", "provider": "local", "repository": repo,
				"events": []string{"push"}}, http.StatusOK, &p)
			var ids []string
			for range 3 {
				ids = append(ids, a.push(p, "main2", shas["main2"]))
			}
			type interval struct{ start, end time.Time }
			var steps []interval
			var sum time.Duration
			for _, id := range ids {
				if r := a.waitRun(id, 90*time.Second); r.Status != "succeeded" {
					t.Fatalf("run %s: %s (%s)", id, r.Status, r.Reason)
				}
				var r faultRun
				a.json("GET", "/api/v1/runs/"+id, nil, http.StatusOK, &r)
				if len(r.Steps) != 1 {
					t.Fatalf("run %s: steps %+v", id, r.Steps)
				}
				s, err1 := time.Parse(time.RFC3339Nano, r.Steps[0].Started)
				e, err2 := time.Parse(time.RFC3339Nano, r.Steps[0].Finished)
				if err1 != nil || err2 != nil || !e.After(s) {
					t.Fatalf("run %s: step from %q to %q", id, r.Steps[0].Started, r.Steps[0].Finished)
				}
				steps = append(steps, interval{s, e})
				sum += e.Sub(s)
				var text strings.Builder
				for _, c := range a.waitLogs(id) {
					if c.Stream == "stdout" {
						text.WriteString(c.Text)
					}
				}
				if text.String() != "begin\nend\n" {
					t.Fatalf("run %s: log %q, want begin and end", id, text.String())
				}
			}
			slices.SortFunc(steps, func(x, y interval) int { return x.start.Compare(y.start) })
			first, last := steps[0].start, steps[0].end
			for _, s := range steps {
				last = later(last, s.end)
			}
			switch jobs {
			case 3:
				// Every step started before any ended: the three ran at once.
				for _, s := range steps {
					for _, o := range steps {
						if !s.start.Before(o.end) {
							t.Fatalf("with --jobs 3, a step started at %v, after another ended at %v: %+v", s.start, o.end, steps)
						}
					}
				}
				if span := last.Sub(first); span >= sum {
					t.Fatalf("with --jobs 3 the three steps spanned %v, not less than their sum %v", span, sum)
				}
			case 1:
				for i := 1; i < len(steps); i++ {
					if steps[i].start.Before(steps[i-1].end) {
						t.Fatalf("with --jobs 1, a step started at %v before the one before it ended at %v", steps[i].start, steps[i-1].end)
					}
				}
			}
		})
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
