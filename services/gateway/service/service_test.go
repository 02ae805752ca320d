package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/event"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/gateway/service"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const internalToken = "internal-test-token"

// fakeProjects is the project service's internal API: projects by id or name.
type fakeProjects struct {
	apiv1.UnimplementedProjectInternalServiceServer
	mu       sync.Mutex
	projects []*apiv1.ResolvedProject
	down     bool
	calls    []*apiv1.ResolveProjectRequest
}

func (f *fakeProjects) ResolveProject(ctx context.Context, req *apiv1.ResolveProjectRequest) (*apiv1.ResolvedProject, error) {
	if !auth.IsInternal(ctx) {
		return nil, status.Error(codes.PermissionDenied, "the gateway must call with the internal token")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req)
	if f.down {
		return nil, status.Error(codes.Unavailable, "database down")
	}
	if req.GetProject() == "ambiguous" && req.GetOrgId() == "" {
		// What the project service answers for a name used by several organisations.
		return nil, status.Error(codes.FailedPrecondition, `project name "ambiguous" is used by several organisations: use the project id`)
	}
	for _, p := range f.projects {
		if (req.GetOrgId() == "" || req.GetOrgId() == p.GetProject().GetOrgId()) &&
			(p.GetProject().GetId() == req.GetProject() || p.GetProject().GetName() == req.GetProject()) {
			return p, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "project %q not found", req.GetProject())
}

func (f *fakeProjects) setDown(v bool) {
	f.mu.Lock()
	f.down = v
	f.mu.Unlock()
}

type env struct {
	t        *testing.T
	ctx      context.Context
	mux      *http.ServeMux
	projects *fakeProjects
	requests chan *eventsv1.RunRequested
	logs     *fakeLogs
	bus      bus.Bus
}

var (
	app = &apiv1.ResolvedProject{
		Project:       &apiv1.Project{Id: "01projectapp", OrgId: "org1", Name: "app", Provider: "local", Repository: "/srv/app", Events: []string{"push", "tag", "manual"}, Tier: "standard"},
		WebhookSecret: "s3cret-app",
	}
	tagsOnly = &apiv1.ResolvedProject{
		Project:       &apiv1.Project{Id: "01projecttags", OrgId: "org1", Name: "tags-only", Provider: "local", Repository: "/srv/lib", Events: []string{"tag"}, Tier: "standard"},
		WebhookSecret: "s3cret-tags",
	}
	github = &apiv1.ResolvedProject{
		Project:       &apiv1.Project{Id: "01projectgh", OrgId: "org1", Name: "gh", Provider: "github", Repository: "acme/gh", Events: []string{"push"}, Tier: "standard"},
		WebhookSecret: "s3cret-gh",
	}
	noSecret = &apiv1.ResolvedProject{
		Project: &apiv1.Project{Id: "01projectnosecret", OrgId: "org1", Name: "nosecret", Provider: "local", Repository: "/srv/x", Events: []string{"push"}, Tier: "standard"},
	}
)

// newEnv starts a gateway over fake peers; opts adjust its Config (a database, limits).
func newEnv(t *testing.T, opts ...func(*service.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	// A real gRPC server for the project service's internal API, behind the authenticator.
	fp := &fakeProjects{projects: []*apiv1.ResolvedProject{app, tagsOnly, github, noSecret}}
	authn := &auth.Authenticator{InternalToken: internalToken, Verifier: fakeVerifier{}}
	gs := grpc.NewServer(grpc.UnaryInterceptor(authn.Unary()), grpc.StreamInterceptor(authn.Stream()))
	apiv1.RegisterProjectInternalServiceServer(gs, fp)
	// The API services the gateway forwards to (stream_test.go).
	fl := &fakeLogs{release: make(chan struct{})}
	apiv1.RegisterRunServiceServer(gs, fakeRuns{})
	apiv1.RegisterLogServiceServer(gs, fl)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	gatewayToken, err := auth.IdentityToken(internalToken, auth.Gateway)
	if err != nil {
		t.Fatal(err)
	}
	internalConn, err := auth.Dial(l.Addr().String(), gatewayToken)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { internalConn.Close() })
	// The API connections forward callers' tokens; webhooks never use them.
	apiConn, err := auth.Dial(l.Addr().String(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { apiConn.Close() })

	b := bus.NewGoChannel(nil)
	t.Cleanup(func() { b.Close() })
	requests := make(chan *eventsv1.RunRequested, 100)
	err = b.Subscribe(ctx, event.TopicRunRequests, "test", func(_ context.Context, m bus.Message) error {
		ev, err := event.Decode(m.Type, m.Payload)
		if err != nil {
			t.Errorf("undecodable message on %s: %v", event.TopicRunRequests, err)
			return nil
		}
		rr, ok := ev.(*eventsv1.RunRequested)
		if !ok {
			t.Errorf("unexpected %T on %s", ev, event.TopicRunRequests)
			return nil
		}
		if m.ID != rr.GetRunId() || m.Key != rr.GetRunId() {
			t.Errorf("message id %q key %q, want both the run id %q", m.ID, m.Key, rr.GetRunId())
		}
		requests <- rr
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	lf, err := local.New(local.Options{MirrorDir: t.TempDir(), LocalRoots: []string{os.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	forges, err := forge.NewRegistry(lf)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	cfg := service.Config{
		Projects: apiConn, Scheduler: apiConn, Logs: apiConn,
		Internal: apiv1.NewProjectInternalServiceClient(internalConn),
		Bus:      b, Forges: forges, Log: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	err = service.Register(ctx, mux, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, mux: mux, projects: fp, requests: requests, logs: fl, bus: b}
}

type delivery struct {
	path    string
	body    []byte
	secret  string // "" leaves the signature header out
	sig     string // overrides the computed signature
	headers map[string]string
}

// at returns e for use in the (sub)test t: helpers fail the test they run in.
func (e *env) at(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) post(d delivery) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequestWithContext(e.ctx, http.MethodPost, d.path, bytes.NewReader(d.body))
	req.Header.Set("Content-Type", "application/json")
	switch {
	case d.sig != "":
		req.Header.Set(forge.SignatureHeader, d.sig)
	case d.secret != "":
		req.Header.Set(forge.SignatureHeader, forge.Sign([]byte(d.secret), d.body))
	}
	for k, v := range d.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	return rec
}

// next returns the next RunRequested published, failing after a deadline.
func (e *env) next() *eventsv1.RunRequested {
	e.t.Helper()
	select {
	case rr := <-e.requests:
		return rr
	case <-time.After(10 * time.Second):
		e.t.Fatal("no RunRequested published")
		return nil
	}
}

// nothingPublished proves that no RunRequested was published so far: it posts a valid
// delivery and checks that the first message on the topic is the one it caused (the
// in-process bus keeps a topic's order).
func (e *env) nothingPublished() {
	e.t.Helper()
	sha := strings.Repeat("e", 40)
	rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: pushBody("refs/heads/marker", sha), secret: app.WebhookSecret})
	if rec.Code != http.StatusAccepted {
		e.t.Fatalf("marker delivery: %d %s", rec.Code, rec.Body)
	}
	if rr := e.next(); rr.GetSha() != sha || rr.GetBranch() != "marker" {
		e.t.Fatalf("a RunRequested was published before the marker: %v", rr)
	}
}

func pushBody(ref, sha string) []byte {
	b, _ := json.Marshal(map[string]any{"ref": ref, "after": sha, "sender": map[string]string{"login": "alice"}})
	return b
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []any  `json:"details"`
}

func TestWebhookAccepted(t *testing.T) {
	e := newEnv(t)
	sha := strings.Repeat("a", 40)
	tests := []struct {
		name       string
		project    string
		ref        string
		headers    map[string]string
		wantEvent  string
		wantBranch string
		wantCtx    map[string]string
	}{
		{"push by id", app.Project.Id, "refs/heads/main", map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1"}, "push", "main", nil},
		{"push by name, default event", "app", "refs/heads/feature/x", nil, "push", "feature/x", nil},
		{"tag push", "app", "refs/tags/v1.2", nil, "tag", "", map[string]string{"tag": "v1.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			body := pushBody(tt.ref, sha)
			rec := e.post(delivery{path: "/api/v1/webhooks/local/" + tt.project, body: body, secret: app.WebhookSecret, headers: tt.headers})
			if rec.Code != http.StatusAccepted {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var resp struct {
				RunIDs []string `json:"runIds"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.RunIDs) != 1 || resp.RunIDs[0] == "" {
				t.Fatalf("body %s: want {\"runIds\": [id]} (%v)", rec.Body, err)
			}
			rr := e.next()
			if rr.GetRunId() != resp.RunIDs[0] {
				t.Fatalf("published run %q, answered %q", rr.GetRunId(), resp.RunIDs[0])
			}
			p := app.Project
			if rr.GetOrgId() != p.OrgId || rr.GetProjectId() != p.Id || rr.GetProvider() != "local" || rr.GetRepository() != p.Repository {
				t.Errorf("project fields: %v", rr)
			}
			if rr.GetRef() != tt.ref || rr.GetBranch() != tt.wantBranch || rr.GetSha() != sha || rr.GetEvent() != tt.wantEvent || rr.GetActor() != "alice" {
				t.Errorf("trigger fields: %v", rr)
			}
			if rr.GetTrust() != eventsv1.Trust_TRUST_SAME_REPOSITORY {
				t.Errorf("trust %s: the forge says a push or tag is of the repository itself", rr.GetTrust())
			}
			if rr.GetDeliveryId() != tt.headers["X-GitHub-Delivery"] {
				t.Errorf("delivery id %q", rr.GetDeliveryId())
			}
			if len(rr.GetContext()) != len(tt.wantCtx) || rr.GetContext()["tag"] != tt.wantCtx["tag"] {
				t.Errorf("context %v, want %v", rr.GetContext(), tt.wantCtx)
			}
			if rr.GetRequestedAt() == nil || time.Since(rr.GetRequestedAt().AsTime()) > time.Minute {
				t.Errorf("requested_at %v", rr.GetRequestedAt())
			}
		})
	}
	t.Run("looked up without an organisation, with the internal token", func(t *testing.T) {
		e := e.at(t)
		e.projects.mu.Lock()
		defer e.projects.mu.Unlock()
		if len(e.projects.calls) == 0 {
			t.Fatal("the project service was not asked")
		}
		for _, c := range e.projects.calls {
			if c.GetOrgId() != "" {
				t.Errorf("ResolveProject with org %q: webhooks are unauthenticated", c.GetOrgId())
			}
		}
	})
}

func TestWebhookRefused(t *testing.T) {
	e := newEnv(t)
	sha := strings.Repeat("b", 40)
	good := pushBody("refs/heads/main", sha)
	tests := []struct {
		name     string
		d        delivery
		wantCode int
		wantGRPC codes.Code
		wantMsg  string
	}{
		{"missing signature", delivery{path: "/api/v1/webhooks/local/app", body: good}, 401, codes.Unauthenticated, "signature"},
		{"wrong secret", delivery{path: "/api/v1/webhooks/local/app", body: good, secret: "not-the-secret"}, 401, codes.Unauthenticated, "signature"},
		{"another project's secret", delivery{path: "/api/v1/webhooks/local/app", body: good, secret: tagsOnly.WebhookSecret}, 401, codes.Unauthenticated, "signature"},
		{"signature of another body", delivery{path: "/api/v1/webhooks/local/app", body: good, sig: forge.Sign([]byte(app.WebhookSecret), pushBody("refs/heads/other", sha))}, 401, codes.Unauthenticated, ""},
		{"malformed signature", delivery{path: "/api/v1/webhooks/local/app", body: good, sig: "sha1=abc"}, 401, codes.Unauthenticated, ""},
		{"project without secret", delivery{path: "/api/v1/webhooks/local/nosecret", body: good, sig: forge.Sign(nil, good)}, 401, codes.Unauthenticated, ""},
		{"unsigned non-JSON", delivery{path: "/api/v1/webhooks/local/app", body: []byte("not json")}, 401, codes.Unauthenticated, ""},
		{"unknown project", delivery{path: "/api/v1/webhooks/local/nope", body: good, secret: app.WebhookSecret}, 404, codes.NotFound, "nope"},
		{"unknown provider", delivery{path: "/api/v1/webhooks/svn/app", body: good, secret: app.WebhookSecret}, 404, codes.NotFound, "svn"},
		{"provider of another project", delivery{path: "/api/v1/webhooks/local/gh", body: good, secret: github.WebhookSecret}, 404, codes.NotFound, ""},
		{"signed non-JSON", delivery{path: "/api/v1/webhooks/local/app", body: []byte("ref=refs/heads/main"), secret: app.WebhookSecret}, 400, codes.InvalidArgument, "JSON"},
		{"signed JSON without ref", delivery{path: "/api/v1/webhooks/local/app", body: []byte(`{"after":"` + sha + `"}`), secret: app.WebhookSecret}, 400, codes.InvalidArgument, "ref"},
		{"signed short sha", delivery{path: "/api/v1/webhooks/local/app", body: pushBody("refs/heads/main", "abc"), secret: app.WebhookSecret}, 400, codes.InvalidArgument, ""},
		{"signed unknown event", delivery{path: "/api/v1/webhooks/local/app", body: good, secret: app.WebhookSecret, headers: map[string]string{"X-GitHub-Event": "issues"}}, 400, codes.InvalidArgument, "issues"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			rec := e.post(tt.d)
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			var ae apiError
			if err := json.Unmarshal(rec.Body.Bytes(), &ae); err != nil {
				t.Fatalf("body %s is not the API's error shape: %v", rec.Body, err)
			}
			if codes.Code(ae.Code) != tt.wantGRPC || ae.Message == "" || ae.Details == nil {
				t.Fatalf("error body %s: want code %d (%s), a message and details", rec.Body, tt.wantGRPC, tt.wantGRPC)
			}
			if !strings.Contains(ae.Message, tt.wantMsg) {
				t.Fatalf("message %q does not mention %q", ae.Message, tt.wantMsg)
			}
		})
	}
	e.nothingPublished()
}

func TestWebhookBodyTooLarge(t *testing.T) {
	e := newEnv(t)
	// Valid JSON with padding, signed correctly: only the size is wrong.
	body := []byte(`{"ref":"refs/heads/main","after":"` + strings.Repeat("c", 40) + `","pad":"` + strings.Repeat("x", service.MaxWebhookBody) + `"}`)
	rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: body, secret: app.WebhookSecret})
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413: %.200s", rec.Code, rec.Body)
	}
	t.Run("just under the limit is read", func(t *testing.T) {
		e := e.at(t)
		head := `{"ref":"refs/heads/main","after":"` + strings.Repeat("c", 40) + `","pad":"`
		body := []byte(head + strings.Repeat("x", service.MaxWebhookBody-len(head)-2) + `"}`)
		if len(body) != service.MaxWebhookBody {
			t.Fatalf("body is %d bytes", len(body))
		}
		rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: body, secret: app.WebhookSecret})
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %.200s", rec.Code, rec.Body)
		}
		e.next()
	})
	e.nothingPublished()
}

func TestWebhookIgnored(t *testing.T) {
	e := newEnv(t)
	sha := strings.Repeat("d", 40)
	tests := []struct {
		name string
		d    delivery
		want string
	}{
		{"push to a tags-only project", delivery{path: "/api/v1/webhooks/local/tags-only", body: pushBody("refs/heads/main", sha), secret: tagsOnly.WebhookSecret}, "push"},
		{"pull request to a project without it", delivery{path: "/api/v1/webhooks/local/app", body: pushBody("refs/heads/main", sha), secret: app.WebhookSecret,
			headers: map[string]string{"X-GitHub-Event": "pull_request"}}, "pull_request"},
		{"ping", delivery{path: "/api/v1/webhooks/local/app", body: []byte(`{"zen":"hi"}`), secret: app.WebhookSecret, headers: map[string]string{"X-GitHub-Event": "ping"}}, "ping"},
		{"branch deletion", delivery{path: "/api/v1/webhooks/local/app", body: pushBody("refs/heads/gone", strings.Repeat("0", 40)), secret: app.WebhookSecret}, "deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := e.at(t)
			rec := e.post(tt.d)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
			}
			var resp map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || !strings.Contains(resp["ignored"], tt.want) {
				t.Fatalf("body %s: want {\"ignored\": \"...%s...\"} (%v)", rec.Body, tt.want, err)
			}
		})
	}
	t.Run("a ping needs a valid signature too", func(t *testing.T) {
		e := e.at(t)
		rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: []byte(`{}`), secret: "wrong", headers: map[string]string{"X-GitHub-Event": "ping"}})
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", rec.Code)
		}
	})
	e.nothingPublished()
}

func TestWebhookProjectServiceDown(t *testing.T) {
	e := newEnv(t)
	e.projects.setDown(true)
	rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: pushBody("refs/heads/main", strings.Repeat("f", 40)), secret: app.WebhookSecret})
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", rec.Code, rec.Body)
	}
	e.projects.setDown(false)
	e.nothingPublished()
}

func TestWebhookAmbiguousProjectName(t *testing.T) {
	e := newEnv(t)
	rec := e.post(delivery{path: "/api/v1/webhooks/local/ambiguous", body: pushBody("refs/heads/main", strings.Repeat("f", 40)), secret: app.WebhookSecret})
	if rec.Code < 400 || rec.Code >= 500 || !strings.Contains(rec.Body.String(), "project id") {
		t.Fatalf("status %d %s: want a 4xx telling the sender to use the project id", rec.Code, rec.Body)
	}
	e.nothingPublished()
}

func TestWebhookBusClosed(t *testing.T) {
	e := newEnv(t)
	// A gateway whose bus refuses to publish answers 503 so the sender retries.
	b := bus.NewGoChannel(nil)
	b.Close()
	lf, err := local.New(local.Options{MirrorDir: t.TempDir(), LocalRoots: []string{os.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	forges, _ := forge.NewRegistry(lf)
	conn, err := auth.Dial("127.0.0.1:1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	mux := http.NewServeMux()
	// The project lookup goes to the working fake of e.
	internal := &directProjects{f: e.projects}
	if err := service.Register(e.ctx, mux, service.Config{Projects: conn, Scheduler: conn, Logs: conn, Internal: internal, Bus: b, Forges: forges,
		Log: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	body := pushBody("refs/heads/main", strings.Repeat("1", 40))
	req := httptest.NewRequestWithContext(e.ctx, http.MethodPost, "/api/v1/webhooks/local/app", bytes.NewReader(body))
	req.Header.Set(forge.SignatureHeader, forge.Sign([]byte(app.WebhookSecret), body))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", rec.Code, rec.Body)
	}
}

// directProjects calls the fake in process, as the internal principal.
type directProjects struct {
	apiv1.ProjectInternalServiceClient
	f *fakeProjects
}

func (d *directProjects) ResolveProject(ctx context.Context, in *apiv1.ResolveProjectRequest, _ ...grpc.CallOption) (*apiv1.ResolvedProject, error) {
	return d.f.ResolveProject(auth.WithPrincipal(ctx, &authv1.Principal{Login: "service:gateway", Service: auth.Gateway}), in)
}

func TestRegisterRequiresPeers(t *testing.T) {
	b := bus.NewGoChannel(nil)
	defer b.Close()
	conn, err := auth.Dial("127.0.0.1:1", "")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	forges := &forge.Registry{}
	full := service.Config{Projects: conn, Scheduler: conn, Logs: conn, Internal: apiv1.NewProjectInternalServiceClient(conn), Bus: b, Forges: forges}
	for name, modify := range map[string]func(*service.Config){
		"projects":  func(c *service.Config) { c.Projects = nil },
		"scheduler": func(c *service.Config) { c.Scheduler = nil },
		"logs":      func(c *service.Config) { c.Logs = nil },
		"internal":  func(c *service.Config) { c.Internal = nil },
		"bus":       func(c *service.Config) { c.Bus = nil },
		"forges":    func(c *service.Config) { c.Forges = nil },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := full
			modify(&cfg)
			if err := service.Register(context.Background(), http.NewServeMux(), cfg); err == nil {
				t.Fatal("Register succeeded without", name)
			}
		})
	}
	if err := service.Register(context.Background(), http.NewServeMux(), full); err != nil {
		t.Fatalf("Register with every peer: %v", err)
	}
}
