package service_test

import (
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/simpleci/simpleci/libs/platform/id"
	"google.golang.org/grpc/codes"
)

// webhookCount reads simpleci_webhooks_total for provider and outcome, and whether any
// series is labelled with provider at all.
func webhookCount(t *testing.T, provider, outcome string) (n float64, labelled bool) {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "simpleci_webhooks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["provider"] == provider {
				labelled = true
				if l["outcome"] == outcome {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n, labelled
}

// TestWebhookMetrics: deliveries count by provider and outcome; a provider the
// deployment does not have counts as unknown, so the URL cannot grow the label set.
func TestWebhookMetrics(t *testing.T) {
	e := newEnv(t)
	bogus := "p" + id.New()
	before, _ := webhookCount(t, "unknown", "not_found")
	wantError(t, e.send(http.MethodPost, "/api/v1/webhooks/"+bogus+"/app", "", nil, -1), http.StatusNotFound, codes.NotFound, bogus)
	if n, _ := webhookCount(t, "unknown", "not_found"); n != before+1 {
		t.Errorf("unknown provider: webhooks_total{provider=unknown,outcome=not_found} went %g -> %g, want +1", before, n)
	}
	if _, labelled := webhookCount(t, bogus, "not_found"); labelled {
		t.Errorf("a provider from the URL became a label: %s", bogus)
	}
	before, _ = webhookCount(t, "local", "too_large")
	body := &hostileBody{size: 30 << 20}
	e.send(http.MethodPost, "/api/v1/webhooks/local/app", "", body, body.size)
	if n, _ := webhookCount(t, "local", "too_large"); n != before+1 {
		t.Errorf("too large: webhooks_total{provider=local,outcome=too_large} went %g -> %g, want +1", before, n)
	}
}
