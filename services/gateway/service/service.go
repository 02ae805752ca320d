// Package service is the gateway: the public HTTP edge. It serves the REST API
// (grpc-gateway over the owning services' gRPC APIs, forwarding the caller's token),
// the webhook intake that turns a verified delivery into RunRequested (kept in its own
// outbox table until the bus has it, intake.go), and the live log tail as server-sent
// events, and the web UI (package web, at every other path). It holds no domain state.
package service

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/pipeline"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/ratelimit"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/gateway/web"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config holds the gateway's peers. The API connections carry no credentials of their
// own: the caller's token is forwarded. Internal carries the deployment's internal token.
type Config struct {
	Projects  *grpc.ClientConn
	Scheduler *grpc.ClientConn
	Logs      *grpc.ClientConn
	// Auth serves the token API (/api/v1/tokens); nil leaves those routes out.
	Auth     *grpc.ClientConn
	Internal apiv1.ProjectInternalServiceClient
	Bus      bus.Bus
	Forges   *forge.Registry
	Log      *slog.Logger
	// DB keeps accepted deliveries until the bus took them (intake.go) and the bodies
	// accepted within the replay window (replay.go). Without it a delivery is published
	// directly and refused (503) while the bus is down, and replays are not detected.
	DB *sqldb.DB
	// WebhookLimits bound each project's webhook deliveries (429 with Retry-After past
	// them); zero: no limit (the component's flag defaults to DefaultWebhookLimits).
	WebhookLimits ratelimit.Limits
	// ReplayWindow is how long an accepted body is remembered (replay.go); zero:
	// DefaultReplayWindow.
	ReplayWindow time.Duration
	// MaxStreamsPerToken bounds the log streams one token holds open at once in this
	// process (429 past it); 0 means DefaultMaxStreamsPerToken.
	MaxStreamsPerToken int
	// Tiers lists the runner tiers the deployment serves (the scheduler's ListTiers), for
	// the API document's enum of a project's tier; nil leaves the field open.
	Tiers func(context.Context) ([]string, error)
}

// DefaultWebhookLimits: a burst of 100 deliveries, then 5 a second, per project. A forge
// such as GitHub does not retry a refused delivery, so the burst covers a push of many
// branches or tags at once; the limit is there against floods.
var DefaultWebhookLimits = ratelimit.Limits{Rate: 5, Burst: 100}

// MaxWebhookBody is the largest webhook body accepted (413 above it).
const MaxWebhookBody = 25 << 20

// Register adds the gateway's routes to mux (which already serves health and metrics).
func Register(ctx context.Context, mux *http.ServeMux, cfg Config) error {
	if cfg.Projects == nil || cfg.Scheduler == nil || cfg.Logs == nil || cfg.Internal == nil || cfg.Bus == nil || cfg.Forges == nil {
		return errors.New("gateway: every peer, the bus and the forges are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	g := &gateway{cfg: cfg, log: cfg.Log.With("service", "gateway"), logs: apiv1.NewLogServiceClient(cfg.Logs), files: apiv1.NewFileServiceClient(cfg.Logs),
		runs: apiv1.NewRunServiceClient(cfg.Scheduler), streams: newStreamSlots(cfg.MaxStreamsPerToken)}
	g.hooks = ratelimit.New(cfg.WebhookLimits)
	// Built once now, without asking the scheduler, so that a broken document stops the
	// start; the tiers' enum is filled in once the scheduler answers.
	g.contracts = &contracts{providers: cfg.Forges.Names()}
	if _, err := g.contracts.get(ctx); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	g.contracts.tiers = cfg.Tiers
	g.intake = &intake{db: cfg.DB, bus: cfg.Bus, log: g.log}
	if cfg.DB != nil {
		g.replays = &replays{db: cfg.DB, window: cmp.Or(cfg.ReplayWindow, DefaultReplayWindow)}
		g.intake.replays = g.replays
		if _, err := cfg.DB.ApplyMigrations(ctx, Schema); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		go g.intake.forward(ctx) // stops with ctx, the process's
		observeOutbox(g.intake)
	}
	g.routes = apiRoutes().
		add(http.MethodPost, "/api/v1/webhooks/{provider}/{project}").
		add(http.MethodGet, "/api/v1/runs/{run}/logs:stream").
		add(http.MethodGet, "/api/v1/runs/{run}/artifacts/{name}").
		add(http.MethodGet, "/api/v1/schema/pipeline.json").
		add(http.MethodGet, "/openapi.json")
	gw := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}), runtime.WithErrorHandler(apiErrorHandler), runtime.WithRoutingErrorHandler(g.routingError))
	if err := apiv1.RegisterProjectServiceHandlerClient(ctx, gw, apiv1.NewProjectServiceClient(cfg.Projects)); err != nil {
		return err
	}
	if err := apiv1.RegisterRunServiceHandlerClient(ctx, gw, apiv1.NewRunServiceClient(cfg.Scheduler)); err != nil {
		return err
	}
	if err := apiv1.RegisterLogServiceHandlerClient(ctx, gw, g.logs); err != nil {
		return err
	}
	if err := apiv1.RegisterFileServiceHandlerClient(ctx, gw, g.files); err != nil {
		return err
	}
	if cfg.Auth != nil {
		if err := apiv1.RegisterTokenServiceHandlerClient(ctx, gw, apiv1.NewTokenServiceClient(cfg.Auth)); err != nil {
			return err
		}
		if err := apiv1.RegisterRunnerTokenServiceHandlerClient(ctx, gw, apiv1.NewRunnerTokenServiceClient(cfg.Auth)); err != nil {
			return err
		}
		if err := apiv1.RegisterMemberServiceHandlerClient(ctx, gw, apiv1.NewMemberServiceClient(cfg.Auth)); err != nil {
			return err
		}
		if err := apiv1.RegisterTeamServiceHandlerClient(ctx, gw, apiv1.NewTeamServiceClient(cfg.Auth)); err != nil {
			return err
		}
		if err := apiv1.RegisterOrganizationServiceHandlerClient(ctx, gw, apiv1.NewOrganizationServiceClient(cfg.Auth)); err != nil {
			return err
		}
		if err := apiv1.RegisterGitHubServiceHandlerClient(ctx, gw, apiv1.NewGitHubServiceClient(cfg.Auth)); err != nil {
			return err
		}
	}
	mux.Handle("/api/", g.api(gw))
	mux.HandleFunc("POST /api/v1/webhooks/{provider}/{project}", g.countWebhooks(g.webhook))
	mux.HandleFunc("GET /api/v1/runs/{run}/logs:stream", g.stream)
	mux.HandleFunc("GET /api/v1/runs/{run}/artifacts/{name}", g.downloadArtifact)
	// The API's OpenAPI document, which every API request is validated against.
	mux.HandleFunc("GET /openapi.json", g.serveSpec)
	// The pipeline file's JSON Schema, for editors: public, like the documentation.
	mux.HandleFunc("GET /api/v1/schema/pipeline.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/schema+json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Write(pipeline.Schema)
	})
	// The web UI: every other path (web.Handler keeps /auth, /healthz... a plain 404).
	mux.Handle("/", web.Handler())
	return nil
}

type gateway struct {
	cfg     Config
	log     *slog.Logger
	logs    apiv1.LogServiceClient
	files   apiv1.FileServiceClient
	runs    apiv1.RunServiceClient
	intake  *intake
	replays *replays           // nil without a database
	hooks   *ratelimit.Limiter // webhook deliveries per project
	routes  routes
	streams *streamSlots // log streams per token
	// contracts is the API document, served and enforced (openapi.go).
	contracts *contracts
}

// MaxAPIBody is the largest body an API route reads (413 above it); webhooks have
// their own limit, MaxWebhookBody.
const MaxAPIBody = 1 << 20

// api guards the REST API (grpc-gateway) so that a hostile request costs nothing: a
// method the path lacks answers 405 with Allow, a request without a bearer token 401,
// and a declared body over MaxAPIBody 413, all before the body is read; a body without
// a declared length is cut at MaxAPIBody (413), so memory stays flat. Then the request
// is validated against the API document (openapi.go): 400 naming the field and why for
// anything the document does not allow, so the services see only what it states.
func (g *gateway) api(gw http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		allowed := g.routes.allowed(r.URL.Path)
		if len(allowed) > 0 && !slices.Contains(allowed, r.Method) {
			methodNotAllowed(w, r, allowed)
			return
		}
		if len(allowed) > 0 && bearer(r) == "" {
			writeError(w, http.StatusUnauthorized, codes.Unauthenticated, "missing bearer token: send 'Authorization: Bearer TOKEN'")
			return
		}
		if r.ContentLength > MaxAPIBody {
			bodyTooLarge(w)
			return
		}
		b := &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, MaxAPIBody)}
		r.Body = b
		if g.refused(w, r, b) {
			return
		}
		if run, ok := logsRun(r); ok {
			ctx := metadata.AppendToOutgoingContext(r.Context(), "authorization", r.Header.Get("Authorization"))
			if err := g.runVisible(ctx, run); err != nil {
				writeGRPCError(w, err)
				return
			}
		}
		gw.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), limitedBodyKey{}, b)))
	})
}

// runVisible looks the run up with the caller's token (in ctx's outgoing metadata): the
// scheduler scopes it by organisation, so another organisation's run, or none, is
// NotFound. The log service alone cannot tell an unknown run from one without output
// yet, so its reads (GET .../logs and the stream) are checked here first.
func (g *gateway) runVisible(ctx context.Context, run string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := g.runs.GetRun(ctx, &apiv1.GetRunRequest{Run: run})
	return err
}

// logsRun returns the run of a GET /api/v1/runs/{run}/logs or /artifacts path (the
// log service keeps both and cannot tell an unknown run from one without any).
func logsRun(r *http.Request) (string, bool) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/runs/")
	run, ok2 := strings.CutSuffix(rest, "/logs")
	if !ok2 {
		run, ok2 = strings.CutSuffix(rest, "/artifacts")
	}
	return run, r.Method == http.MethodGet && ok && ok2 && run != "" && !strings.Contains(run, "/")
}

// downloadArtifact serves an artifact's bytes (a .tar.zst) as they come from the log
// service, which checks them against the checksum recorded when they were stored: a
// mismatch ends the response early (the client sees a short body against
// Content-Length). The run is looked up first with the caller's token, as for logs.
func (g *gateway) downloadArtifact(w http.ResponseWriter, r *http.Request) {
	if g.refused(w, r, nil) {
		return
	}
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", h)
	} else {
		writeError(w, http.StatusUnauthorized, codes.Unauthenticated, "missing bearer token: send 'Authorization: Bearer TOKEN'")
		return
	}
	run, name := r.PathValue("run"), r.PathValue("name")
	if err := g.runVisible(ctx, run); err != nil {
		writeGRPCError(w, err)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := g.files.DownloadArtifact(ctx, &apiv1.DownloadArtifactRequest{Run: run, Name: name})
	if err == nil {
		var first *apiv1.ArtifactData
		if first, err = s.Recv(); err == nil {
			a := first.GetArtifact()
			w.Header().Set("Content-Type", "application/zstd")
			w.Header().Set("Content-Length", strconv.FormatInt(a.GetSize(), 10))
			w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name + ".tar.zst"}))
			w.Header().Set("X-Checksum-Sha256", a.GetSha256())
			w.WriteHeader(http.StatusOK)
			data := first.GetData()
			for {
				if _, err := w.Write(data); err != nil {
					return
				}
				m, err := s.Recv()
				if err != nil {
					if err != io.EOF {
						g.log.Warn("artifact download cut short", "run", run, "artifact", name, "err", err)
					}
					return
				}
				data = m.GetData()
			}
		}
	}
	writeGRPCError(w, err)
}

// refused validates r against the API document and answers when it does not pass: 400
// naming the field and why, or 413 when its body (b, if any) went over the limit while
// it was read.
func (g *gateway) refused(w http.ResponseWriter, r *http.Request, b *limitedBody) bool {
	msg, err := g.validate(r)
	switch {
	case b != nil && b.tooLarge:
		bodyTooLarge(w)
	case err != nil:
		g.log.Error("openapi document", "err", err)
		writeError(w, http.StatusInternalServerError, codes.Internal, "the API document cannot be built")
	case msg != "":
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, msg)
	default:
		return false
	}
	return true
}

// bearer returns the request's bearer token, "" without one.
func bearer(r *http.Request) string {
	t, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return strings.TrimSpace(t)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allowed []string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, http.StatusMethodNotAllowed, codes.Unimplemented,
		fmt.Sprintf("%s is not a method of %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
}

func bodyTooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, fmt.Sprintf("request body larger than %d bytes", MaxAPIBody))
}

// limitedBody remembers that the body hit its limit: grpc-gateway turns the read error
// into a plain 400, and apiErrorHandler makes it the 413 it is.
type limitedBody struct {
	io.ReadCloser
	tooLarge bool
}

type limitedBodyKey struct{}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		b.tooLarge = true
	}
	return n, err
}

// apiErrorHandler is grpc-gateway's error handler, with 413 for a body over the limit.
func apiErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if b, ok := r.Context().Value(limitedBodyKey{}).(*limitedBody); ok && b.tooLarge {
		bodyTooLarge(w)
		return
	}
	if st, ok := status.FromError(err); ok && forgeFailed(st) {
		writeError(w, http.StatusBadGateway, st.Code(), st.Message())
		return
	}
	setRetryAfter(w, err)
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// forgeFailed reports whether a service failed because the forge (GitHub) did: the
// project service marks such an error with the ErrorInfo reason FORGE_FAILED, and
// the API answers 502 Bad Gateway.
func forgeFailed(st *status.Status) bool {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == "FORGE_FAILED" && ei.GetDomain() == "simpleci" {
			return true
		}
	}
	return false
}

// setRetryAfter turns the RetryInfo of a rate-limited call (the scheduler's manual
// trigger, 429) into a Retry-After header.
func setRetryAfter(w http.ResponseWriter, err error) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			w.Header().Set("Retry-After", ratelimit.RetryAfter(ri.GetRetryDelay().AsDuration()))
		}
	}
}

// routingError answers 405 with Allow where grpc-gateway would answer 501 (api answers
// it first for the routes it knows; this covers any it does not).
func (g *gateway) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	if code == http.StatusMethodNotAllowed {
		if allowed := g.routes.allowed(r.URL.Path); len(allowed) > 0 {
			methodNotAllowed(w, r, allowed)
			return
		}
		code = http.StatusNotFound
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, code)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeError writes the API's error shape: {"code", "message", "details"}.
func writeError(w http.ResponseWriter, httpCode int, code codes.Code, msg string) {
	writeJSON(w, httpCode, map[string]any{"code": int(code), "message": msg, "details": []any{}})
}

// webhook verifies a delivery with the project's secret and requests a run.
func (g *gateway) webhook(w http.ResponseWriter, r *http.Request) {
	provider, project := r.PathValue("provider"), r.PathValue("project")
	log := g.log.With("provider", provider, "project", project)
	// Nothing is read before the project is known and a declared size is checked: an
	// unknown project or a body declared too large costs the sender, not us.
	if r.ContentLength > MaxWebhookBody {
		webhookTooLarge(w)
		return
	}
	f, err := g.cfg.Forges.Lookup(provider)
	if err != nil {
		writeError(w, http.StatusNotFound, codes.NotFound, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := g.cfg.Internal.ResolveProject(ctx, &apiv1.ResolveProjectRequest{Project: project})
	if status.Code(err) == codes.NotFound || (err == nil && res.GetProject().GetProvider() != provider) {
		writeError(w, http.StatusNotFound, codes.NotFound, fmt.Sprintf("no %s project %q", provider, project))
		return
	}
	switch status.Code(err) {
	case codes.OK:
	case codes.Unavailable, codes.DeadlineExceeded, codes.Unknown, codes.Internal, codes.Canceled:
		log.Error("resolve project", "err", err)
		writeError(w, http.StatusServiceUnavailable, codes.Unavailable, "project service unavailable, retry later")
		return
	default: // a problem retrying will not solve, e.g. an ambiguous project name
		writeGRPCError(w, err)
		return
	}
	// Per project, before the body is read: a flood costs the sender, not the other tenants.
	if ok, after := g.hooks.Allow(res.GetProject().GetId()); !ok {
		log.Warn("webhook rate limit", "retry_after", after)
		w.Header().Set("Retry-After", ratelimit.RetryAfter(after))
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusTooManyRequests, codes.ResourceExhausted, fmt.Sprintf(
			"too many webhook deliveries for project %s (limit %s): retry after %s s", res.GetProject().GetName(), g.cfg.WebhookLimits, ratelimit.RetryAfter(after)))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			webhookTooLarge(w)
			return
		}
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, "cannot read body")
		return
	}
	p := res.GetProject()
	tr, err := f.ParseWebhook(r.Header, body, []byte(res.GetWebhookSecret()))
	switch {
	case errors.Is(err, forge.ErrBadSignature):
		log.Warn("webhook signature rejected")
		writeError(w, http.StatusUnauthorized, codes.Unauthenticated, "bad or missing webhook signature")
		return
	case errors.Is(err, forge.ErrIgnoredEvent):
		writeJSON(w, http.StatusOK, map[string]any{"ignored": err.Error()})
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		return
	}
	// A forge whose deliveries name their repository: a delivery for another
	// repository (a hook copied to the wrong project) starts nothing, visibly.
	if m, ok := f.(forge.RepositoryMatcher); ok && !m.MatchesRepository(p.GetRepository(), tr.Repository) {
		writeError(w, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf(
			"%v: the delivery is for repository %q, project %s builds %q", forge.ErrBadPayload, tr.Repository, p.GetName(), p.GetRepository()))
		return
	}
	if !slices.Contains(p.GetEvents(), tr.Event) {
		writeJSON(w, http.StatusOK, map[string]any{"ignored": fmt.Sprintf("project %s does not run on %s events", p.GetName(), tr.Event)})
		return
	}
	// A delivery the forge retries (same delivery id) names the same run, and the
	// scheduler starts a run id only once: no second run.
	runID := id.New()
	if tr.DeliveryID != "" {
		runID = id.FromKey("webhook", p.GetId(), tr.DeliveryID)
	}
	rr := &eventsv1.RunRequested{RunId: runID, OrgId: p.GetOrgId(), ProjectId: p.GetId(), Provider: p.GetProvider(),
		Repository: p.GetRepository(), Ref: tr.Ref, Branch: tr.Branch, Sha: tr.SHA, Event: tr.Event, Actor: tr.Actor,
		DeliveryId: tr.DeliveryID, RequestedAt: timestamppb.Now(), Trust: trustOf(tr.Trust)}
	if tr.Tag != "" {
		rr.Context = map[string]string{"tag": tr.Tag}
	}
	if tr.BaseBranch != "" {
		// context.base_branch; the scheduler also gives the run read access to that
		// branch's caches (a pull request never writes them).
		rr.Context = map[string]string{"base_branch": tr.BaseBranch}
	}
	m, err := event.Encode(rr.RunId, rr.RunId, rr)
	if err != nil { // the forge bounds each field; this is the last check (event.MaxEventBytes)
		log.Warn("run request too large", "err", err)
		writeError(w, http.StatusUnprocessableEntity, codes.InvalidArgument, "the delivery's run request is too large: "+err.Error())
		return
	}
	// A deadline of its own: reading the body may have taken a while.
	actx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if g.replays != nil {
		prior, err := g.replays.claim(actx, p.GetId(), tr.DeliveryID, rr.RunId, body)
		switch {
		case errors.Is(err, errReplay):
			log.Warn("replayed webhook body refused", "delivery", tr.DeliveryID, "first_delivery", prior.deliveryID, "first_run", prior.runID)
			writeError(w, http.StatusConflict, codes.AlreadyExists, fmt.Sprintf(
				"this signed body was already delivered to project %s at %s (delivery %q, run %s); a body is accepted once, a forge retries under the same delivery id",
				p.GetName(), prior.at.UTC().Format(time.RFC3339), prior.deliveryID, prior.runID))
			return
		case err != nil:
			// The database is down: the delivery is still published directly (ADR 9), so
			// a forge that does not retry loses no push; replays are not detected meanwhile.
			log.Warn("webhook body not checked for replay: the gateway's database does not answer", "err", err)
		}
	}
	telemetry.RunID(actx, rr.RunId)
	via, err := g.intake.accept(actx, event.TopicRunRequests, m)
	if err != nil {
		log.Error("accept run request", "err", fmt.Errorf("%w: %v", errNoDurablePath, err))
		if g.replays != nil {
			if err := g.replays.forget(context.WithoutCancel(actx), p.GetId(), rr.RunId, body); err != nil {
				log.Error("forget the refused delivery's body", "err", err)
			}
		}
		writeError(w, http.StatusServiceUnavailable, codes.Unavailable, "cannot accept the delivery now, retry it")
		return
	}
	log.InfoContext(actx, "run requested", "run", rr.RunId, "event", rr.Event, "ref", rr.Ref, "via", via)
	writeJSON(w, http.StatusAccepted, map[string]any{"runIds": []string{rr.RunId}})
}

func webhookTooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, fmt.Sprintf("webhook body larger than %d bytes", MaxWebhookBody))
}

// stream serves the live log tail as server-sent events: one "log" event per chunk
// (id = sequence number, so a reconnecting client resumes with Last-Event-ID) and an
// "end" event once the log is complete.
//
// The run is looked up first with the caller's token (the scheduler scopes it by
// organisation), so a run the caller cannot see answers 404 at once instead of a tail
// that waits forever for chunks; the log service alone cannot tell an unknown run from
// one whose first chunk has not come yet. The response headers then go out at once, so
// a client knows the stream is open before the run prints anything.
//
// A token holds at most MaxStreamsPerToken streams at once: past them it gets 429
// (checked once the token proved valid, so forged tokens fill nothing).
func (g *gateway) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	after, _ := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64)
	if a := r.URL.Query().Get("after"); a != "" {
		after, _ = strconv.ParseInt(a, 10, 64)
	}
	if g.refused(w, r, nil) {
		return
	}
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", h)
	}
	run := r.PathValue("run")
	if err := g.runVisible(ctx, run); err != nil {
		writeGRPCError(w, err)
		return
	}
	release, ok := g.streams.acquire(bearer(r))
	if !ok {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, codes.ResourceExhausted, fmt.Sprintf(
			"too many log streams: this token already has %d open (the most it may hold at once); close one and retry", g.streams.max))
		return
	}
	defer release()
	tail, err := g.logs.TailLogs(ctx, &apiv1.TailLogsRequest{Run: run, After: after})
	if err != nil {
		writeGRPCError(w, err)
		return
	}
	// A stream outlives the server's deadlines (libs/platform/server): it ends with the
	// run's log. With the read deadline left, the server would cancel the request when it
	// hits; the body is empty, so nothing is read from the client any more.
	for _, clear := range []func(time.Time) error{rc.SetReadDeadline, rc.SetWriteDeadline} {
		if err := clear(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
			g.log.Warn("clear the deadlines of a log stream", "err", err)
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return // the client is gone, or the writer cannot stream
	}
	for {
		c, err := tail.Recv()
		switch {
		case err == io.EOF:
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
		case err != nil:
			msg, _ := json.Marshal(status.Convert(err).Message())
			fmt.Fprintf(w, "event: error\ndata: {\"message\":%s}\n\n", msg)
		default:
			b, _ := protojson.Marshal(c)
			fmt.Fprintf(w, "id: %d\nevent: log\ndata: %s\n\n", c.Sequence, b)
		}
		if rc.Flush() != nil || err != nil {
			return
		}
	}
}

func writeGRPCError(w http.ResponseWriter, err error) {
	st := status.Convert(err)
	writeError(w, runtime.HTTPStatusFromCode(st.Code()), st.Code(), st.Message())
}

// trustOf maps the forge's verdict on a delivery to the event's; anything else the
// forge might say is unknown, which the scheduler treats as a fork.
func trustOf(t forge.Trust) eventsv1.Trust {
	switch t {
	case forge.TrustSameRepository:
		return eventsv1.Trust_TRUST_SAME_REPOSITORY
	case forge.TrustFork:
		return eventsv1.Trust_TRUST_FORK
	}
	return eventsv1.Trust_TRUST_UNSPECIFIED
}
