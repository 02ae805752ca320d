package e2e_test

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// TestTraces: with OTEL_TRACES_EXPORTER=otlp, one run driven by a signed push webhook is
// one trace, exported over OTLP/HTTP to a receiver in the test: the gateway's webhook
// span, the scheduler's consumption of RunRequested and its claim decision, the runner's
// job with its Report and AppendLogs calls, the log service storing the chunks and
// finishing the run's log on RunFinished all share its trace id. In the split deployment
// (Kafka, the outboxes of the gateway and of the scheduler's event store) each process
// names itself (service.name simpleci-NAME); `simpleci dev` is one process (simpleci).
func TestTraces(t *testing.T) {
	t.Run("dev", func(t *testing.T) {
		rc := newOTLPReceiver(t)
		a, _ := startDevWith(t, nil, t.TempDir(), rc.env(), "--tier", "standard:timeout="+tierTimeout.String())
		checkRunTrace(t, a, rc, nil)
	})
	t.Run("split", func(t *testing.T) {
		rc := newOTLPReceiver(t)
		c := startClusterEnv(t, 1, rc.env(), "--tier", "standard:timeout=60s", "--lease", "10s")
		checkRunTrace(t, c.api, rc, []string{"simpleci-gateway", "simpleci-scheduler", "simpleci-runner", "simpleci-log"})
	})
}

// checkRunTrace runs faultPipeline through a webhook and checks the spans of its trace;
// services, when given, must each have spans in it.
func checkRunTrace(t *testing.T, a *api, rc *otlpReceiver, services []string) {
	p, sha := a.faultProject("traces")
	id := a.push(p, "main2", sha)
	if r := a.waitRun(id, 90*time.Second); r.Status != "succeeded" {
		t.Fatalf("run %s: %s (%s)", id, r.Status, r.Reason)
	}
	a.waitLogs(id)
	// The spans every run has, by name (and by the event a consumer span handled).
	want := []string{
		"POST /api/v1/webhooks/{provider}/{project}", // gateway: the webhook
		"simpleci.run-requests process",              // scheduler: RunRequested
		"claim job",                                  // scheduler: the run's start
		"simpleci.runner.v1.RunnerService/ClaimJob",  // the claim call, linked (not in the trace)
		"run job", // runner
		"simpleci.runner.v1.RunnerService/Report",        // runner → scheduler
		"simpleci.runner.v1.RunnerLogService/AppendLogs", // runner → log service
		"simpleci.logs process",                          // log service: storing chunks
		"simpleci.runs process simpleci.events.v1.RunFinished",
	}
	var missing []string
	var trace []span
	check := func() bool {
		trace = rc.traceOf(id)
		missing = nil
		names := map[string]bool{}
		svcs := map[string]bool{}
		for _, s := range trace {
			names[s.name] = true
			if s.event != "" {
				names[s.name+" "+s.event] = true
			}
			svcs[s.service] = true
		}
		for _, n := range want {
			if n == "simpleci.runner.v1.RunnerService/ClaimJob" {
				continue // checked below: a link
			}
			if !names[n] {
				missing = append(missing, n)
			}
		}
		for _, s := range services {
			if !svcs[s] {
				missing = append(missing, "service "+s)
			}
		}
		return len(missing) == 0
	}
	for deadline := time.Now().Add(30 * time.Second); !check() && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Fatalf("trace of run %s lacks %v; it has %v", id, missing, trace)
	}
	// The scheduler's claim span links the runner's polling call, in its own trace.
	for _, s := range trace {
		if s.name == "claim job" && s.links == 0 {
			t.Errorf("the claim span of run %s links no ClaimJob call", id)
		}
	}
	// Nothing of the run strays into another trace: every span naming it is in this one.
	for _, s := range rc.all() {
		if s.runID == id && s.traceID != trace[0].traceID {
			t.Errorf("span %q of run %s is in trace %s, not %s", s.name, id, s.traceID, trace[0].traceID)
		}
	}
}

type span struct {
	traceID, spanID, name, service, runID, event string
	links                                        int
}

func (s span) String() string { return s.service + ":" + s.name }

// otlpReceiver is an OTLP/HTTP trace receiver (protobuf) keeping every span it is sent.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	rc := &otlpReceiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
			http.NotFound(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rc.add(&req)
		b, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// env is the environment that exports a process's traces here, quickly.
func (rc *otlpReceiver) env() []string {
	return []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + rc.srv.URL, "OTEL_BSP_SCHEDULE_DELAY=100"}
}

func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func (rc *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := attr(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				name := s.GetName()
				if i := strings.Index(name, "simpleci."); i > 0 && strings.HasSuffix(name, " process") {
					name = name[i:] // the topic without the Kafka namespace (the test run's prefix)
				}
				rc.spans = append(rc.spans, span{traceID: hex.EncodeToString(s.GetTraceId()), spanID: hex.EncodeToString(s.GetSpanId()),
					name: name, service: service, runID: attr(s.GetAttributes(), "simpleci.run_id"),
					event: attr(s.GetAttributes(), "simpleci.event.type"), links: len(s.GetLinks())})
			}
		}
	}
}

func (rc *otlpReceiver) all() []span {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.spans)
}

// traceOf returns the spans of the trace of the webhook span that accepted run id.
func (rc *otlpReceiver) traceOf(id string) []span {
	all := rc.all()
	var traceID string
	for _, s := range all {
		if s.runID == id && strings.HasPrefix(s.name, "POST /api/v1/webhooks/") {
			traceID = s.traceID
		}
	}
	if traceID == "" {
		return nil
	}
	var out []span
	for _, s := range all {
		if s.traceID == traceID {
			out = append(out, s)
		}
	}
	return out
}
