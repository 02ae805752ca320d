package e2e_test

import (
	"net/http"
	"slices"
	"testing"
	"time"
)

// benchWebhookToFirstStep measures, per run, the time from sending a signed webhook to
// the first step starting (the step's startedAt, same machine clock), and reports the
// median and the worst.
func benchWebhookToFirstStep(b *testing.B, a *api) {
	repo, shas := gitRepo(b, map[string]string{"main2": `{"steps": [{"name": "one", "run": "true"}]}`})
	var p project
	a.json("POST", "/api/v1/projects", map[string]any{"name": "latency", "provider": "local", "repository": repo,
		"events": []string{"push"}}, http.StatusOK, &p)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		r := a.waitRun(a.push(p, "main2", shas["main2"]), 60*time.Second)
		if r.Status != "succeeded" || len(r.Steps) == 0 {
			b.Fatalf("run %s: %s (%s)", r.ID, r.Status, r.Reason)
		}
		started, err := time.Parse(time.RFC3339Nano, r.Steps[0].Started)
		if err != nil {
			b.Fatalf("step start %q: %v", r.Steps[0].Started, err)
		}
		lat = append(lat, started.Sub(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "ms-max")
}

func BenchmarkWebhookToFirstStepDev(b *testing.B) { benchWebhookToFirstStep(b, startDev(b)) }

func BenchmarkWebhookToFirstStepServices(b *testing.B) {
	benchWebhookToFirstStep(b, startServices(b))
}
