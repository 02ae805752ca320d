// Package node is the process runtime of SimpleCI's services: it runs a set of
// Components in one process with one gRPC server (the authentication and ACL
// interceptor of libs/platform/auth in front), one HTTP server (health, readiness,
// metrics and whatever the components add), connections to the peers that run
// elsewhere, each presenting the identity of the component that dials, readiness checks
// and an ordered shutdown. It knows no service: each service brings a Component, and what a
// component needs beyond this (a database, the bus, the forges) it opens through the
// small packages beside this one (nodesql, nodebus, nodeforge), so a binary links only
// the drivers its services use. Tracing (libs/platform/telemetry, from the OTEL_*
// variables, off by default) is set up before the servers and connections are made and
// flushed when Run returns.
//
// The standard gRPC health service answers NOT_SERVING until the process serves (its
// components initialised and started), then SERVING.
//
// Shutdown runs in three phases. The first signal (or the end of Run's ctx) stops intake:
// /readyz answers 503 "draining", the gRPC health service NOT_SERVING, Env.Draining is closed (the gateway refuses new
// webhooks and triggers) and workers stop taking work (the runner claims no job) and
// finish what they hold while every service of the process still answers. When the
// workers have returned, the rest stops: consumers and followers, the servers (in-flight
// calls get a few seconds), then the bus and the databases. A second signal (Config.Abort)
// makes workers give their work back at once.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/server"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Component is one service as the runtime runs it.
type Component interface {
	// Name is the service's name (gateway, auth, project, scheduler, runner, log).
	Name() string
	// Init builds the service: it opens what the service needs through env, registers
	// its gRPC services and HTTP routes, and adds its start hooks and workers. ctx lives
	// until the process's last shutdown phase.
	Init(ctx context.Context, env *Env) error
}

// Flagger is a Component with flags of its own (registered before parsing).
type Flagger interface {
	Flags(fs *flag.FlagSet)
}

// Validator is a Component that checks its configuration; it returns every problem.
type Validator interface {
	Validate(c *Config) []string
}

// Config configures one process.
type Config struct {
	// DatabaseURL is a postgres:// URL (production) or a SQLite file path. Empty gives
	// each service its own SQLite file in DataDir (the embedded default).
	DatabaseURL string
	// DataDir holds SQLite files, tokens, repository mirrors and workspaces.
	DataDir string
	// KafkaBrokers selects the Kafka bus; empty selects the in-process bus.
	KafkaBrokers []string
	// KafkaNamespace prefixes every topic and consumer group on the brokers
	// (bus.KafkaConfig.Namespace), so deployments can share a Kafka cluster.
	KafkaNamespace string
	// GRPCAddr and HTTPAddr are where this process listens (HTTP may be empty).
	GRPCAddr, HTTPAddr string
	// Peers maps a service name to the gRPC address of the process running it;
	// services run here need no entry.
	Peers map[string]string
	// LocalRepos are the directories projects' local repository paths must lie under
	// (--local-repos); none refuses every path repository. LocalRepositories are single
	// repositories allowed besides (`simpleci dev` allows its demo repository so).
	LocalRepos, LocalRepositories []string
	// AllowRepoNetworks are CIDRs repository URLs may reach although they are
	// loopback, private, link-local or metadata addresses (--allow-repo-network).
	AllowRepoNetworks []string
	// GitHub configures the github provider; it is registered when TokenFile is set.
	GitHub GitHub
	// InternalToken is the deployment's secret: each service of the process presents an
	// identity token derived from it (auth.IdentityToken) to its peers (required when
	// services run in several processes; one process makes a random one). A process
	// running only the runner must not hold it: runners have their own tokens.
	InternalToken string
	// Abort, when it ends, stops the process at once: workers hand their work back.
	// The first signal ends Run's ctx, the second this (see Signals).
	Abort context.Context
	// Ready, when set, is called once the process serves.
	Ready func(Info)
	// OnStart, when set, runs after the services started (dev mode makes the demo).
	OnStart func(ctx context.Context) error
	Log     *slog.Logger

	services []string
}

// GitHub is where GitHub (or GitHub Enterprise Server) is and the token the
// server uses there (--github-url, --github-api-url, --github-token-file).
type GitHub struct {
	URL, APIURL, TokenFile string
	// AppID and AppKeyFile make the server act as a GitHub App instead of with a token.
	AppID      int64
	AppKeyFile string
}

// Enabled reports whether the operator configured the github provider (a token or an app).
func (g GitHub) Enabled() bool { return g.TokenFile != "" || g.AppKeyFile != "" || g.AppID != 0 }

// Info says where a started process listens.
type Info struct{ GRPCAddr, HTTPAddr string }

// Has reports whether service runs in this process.
func (c *Config) Has(service string) bool { return slices.Contains(c.services, service) }

// Services lists the services of this process.
func (c *Config) Services() []string { return slices.Clone(c.services) }

// RequirePeers returns a problem for each of peers that neither runs here nor has an
// address; service names who needs them.
func (c *Config) RequirePeers(service string, peers ...string) []string {
	var problems []string
	for _, p := range peers {
		if !c.Has(p) && c.Peers[p] == "" {
			problems = append(problems, fmt.Sprintf("%s needs the %s service: run it here or give its address (--%s-addr / SIMPLECI_%s_ADDR)", service, p, p, strings.ToUpper(p)))
		}
	}
	return problems
}

// RequireDatabase returns a problem when no database is configured.
func (c *Config) RequireDatabase(service string) []string {
	if c.DatabaseURL == "" && c.DataDir == "" {
		return []string{service + ": a database is required: --database-url / SIMPLECI_DATABASE_URL"}
	}
	return nil
}

// hasService reports whether the process runs a service with an identity (any but the
// runner).
func (c *Config) hasService() bool {
	return slices.ContainsFunc(c.services, func(s string) bool { return s != "runner" })
}

func (c *Config) remotePeers() bool {
	for svc, p := range c.Peers {
		if p != "" && !c.Has(svc) {
			return true
		}
	}
	return false
}

// Validate reports every configuration problem of cfg and comps at once.
func Validate(cfg *Config, comps ...Component) error {
	var problems []string
	cfg.services = nil
	for _, c := range comps {
		if slices.Contains(cfg.services, c.Name()) {
			problems = append(problems, fmt.Sprintf("service %s given twice", c.Name()))
		}
		cfg.services = append(cfg.services, c.Name())
	}
	if len(comps) == 0 {
		problems = append(problems, "no service selected (--service NAME)")
	}
	for _, c := range comps {
		if v, ok := c.(Validator); ok {
			problems = append(problems, v.Validate(cfg)...)
		}
	}
	if cfg.remotePeers() && cfg.InternalToken == "" && cfg.hasService() {
		problems = append(problems, "services in several processes need a shared --internal-token / SIMPLECI_INTERNAL_TOKEN")
	}
	if cfg.InternalToken != "" && !cfg.hasService() && cfg.Has("runner") {
		problems = append(problems, "a runner process must not hold the deployment's internal token (--internal-token / SIMPLECI_INTERNAL_TOKEN): "+
			"with it a runner host could act as any service and read any project's secrets; give the runner its own token "+
			"(simpleci runners register NAME, then SIMPLECI_RUNNER_TOKEN or --runner-token-file) and unset the internal token")
	}
	if len(cfg.KafkaBrokers) > 0 && !cfg.hasService() && cfg.Has("runner") {
		problems = append(problems, "a runner process needs no Kafka brokers (--kafka-brokers / SIMPLECI_KAFKA_BROKERS): "+
			"it sends its jobs' logs to the log service (--log-addr / SIMPLECI_LOG_ADDR); unset them, and keep runner hosts "+
			"off the brokers' network")
	}
	if len(problems) > 0 {
		return errors.New("configuration:\n  - " + strings.Join(problems, "\n  - "))
	}
	return nil
}

// Env is what a Component gets from the process: its servers, its peers and the
// lifecycle hooks.
type Env struct {
	// Config is the process's configuration.
	Config *Config
	// GRPC is the process's gRPC server; components register their services on it.
	GRPC *grpc.Server
	// Mux is the process's HTTP mux (it already serves /healthz, /readyz, /metrics).
	Mux *http.ServeMux
	// Checks are the readiness checks behind /readyz; components add theirs.
	Checks *server.Checks
	Log    *slog.Logger

	self  string
	authn *auth.Authenticator
	// initialising is the component whose Init runs: Dial presents its identity.
	initialising string
	draining     chan struct{}

	mu       sync.Mutex
	conns    map[string]*grpc.ClientConn
	checked  map[string]bool
	shared   map[string]any
	closers  [2][]func()
	starters []func(context.Context) error
	workers  []func(ctx, abort context.Context)
}

// Has reports whether service runs in this process.
func (e *Env) Has(service string) bool { return e.Config.Has(service) }

// Draining is closed when the process stops taking work (the first signal).
func (e *Env) Draining() <-chan struct{} { return e.draining }

// Authenticate sets how user tokens are verified (the auth service, when it runs here)
// and which methods need no token.
func (e *Env) Authenticate(v auth.Verifier, public ...string) {
	e.authn.Verifier = v
	if e.authn.Public == nil {
		e.authn.Public = map[string]bool{}
	}
	for _, m := range public {
		e.authn.Public[m] = true
	}
}

// ForgetToken drops a revoked token from this process's verification cache.
func (e *Env) ForgetToken(tokenID string) { e.authn.Forget(tokenID) }

// Dial returns a connection to service (the service's own process when it runs here)
// that presents the identity of the component calling Dial from its Init: the peer's
// ACL (libs/platform/auth) then allows what that identity may call. A service elsewhere
// becomes one of the process's readiness checks ("peer NAME").
func (e *Env) Dial(service string) (*grpc.ClientConn, error) {
	if e.initialising == "" || e.initialising == "runner" {
		return nil, fmt.Errorf("dial %s: Dial presents the identity of a service during its Init (a runner uses DialToken)", service)
	}
	token, err := e.IdentityToken(e.initialising)
	if err != nil {
		return nil, err
	}
	return e.dial(service, token)
}

// DialToken returns a connection to service that presents token (a runner's own).
func (e *Env) DialToken(service, token string) (*grpc.ClientConn, error) {
	if token == "" {
		return nil, fmt.Errorf("dial %s: no token", service)
	}
	return e.dial(service, token)
}

// IdentityToken returns the token of identity (a service name, or
// auth.RunnerIdentity(NAME) for a runner in a process that holds the deployment secret).
func (e *Env) IdentityToken(identity string) (string, error) {
	return auth.IdentityToken(e.Config.InternalToken, identity)
}

// DialForwarding returns a connection to service without credentials of its own: the
// caller forwards its user's token (the gateway).
func (e *Env) DialForwarding(service string) (*grpc.ClientConn, error) {
	return e.dial(service, "")
}

func (e *Env) dial(service, token string) (*grpc.ClientConn, error) {
	internal := token != ""
	e.mu.Lock()
	defer e.mu.Unlock()
	key := service + "\x00" + token
	if c, ok := e.conns[key]; ok {
		return c, nil
	}
	addr := e.Config.Peers[service]
	if e.Has(service) {
		addr = e.self
	}
	if addr == "" {
		return nil, fmt.Errorf("no address for the %s service (--%s-addr)", service, service)
	}
	c, err := auth.Dial(addr, token, append(server.GRPCClientMetrics(), telemetry.GRPCDialOptions()...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s at %s: %w", service, addr, err)
	}
	e.conns[key] = c
	if internal && !e.Has(service) && !e.checked[service] {
		if e.checked == nil {
			e.checked = map[string]bool{}
		}
		e.checked[service] = true
		hc := healthpb.NewHealthClient(c)
		e.Checks.Add("peer "+service, func(ctx context.Context) error {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("%s answers %s", addr, resp.GetStatus())
			}
			return nil
		})
	}
	return c, nil
}

// Closing says when a shared value is closed in the last shutdown phase (after the
// servers stopped): connections that run handlers before the stores those handlers use.
type Closing int

const (
	// CloseStore closes last (databases).
	CloseStore Closing = iota
	// CloseTransport closes before the stores (the bus: its Close waits for handlers
	// that still use the databases).
	CloseTransport
)

// Shared returns the process's one value under key, made by open on first use; the
// close that open returns (may be nil) runs in the last shutdown phase, transports
// before stores, each in the reverse order of opening.
func (e *Env) Shared(key string, closing Closing, open func() (any, func(), error)) (any, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if v, ok := e.shared[key]; ok {
		return v, nil
	}
	v, closeFn, err := open()
	if err != nil {
		return nil, err
	}
	e.shared[key] = v
	if closeFn != nil {
		e.closers[closing] = append(e.closers[closing], closeFn)
	}
	return v, nil
}

// OnStart runs start once every component is initialised (consumers, followers);
// what it starts must stop when its ctx ends, in the last shutdown phase.
func (e *Env) OnStart(start func(ctx context.Context) error) {
	e.starters = append(e.starters, start)
}

// Worker runs work in its own goroutine. work must stop taking new work when ctx
// ends and return once what it holds is finished, while the process's services still
// answer; when abort ends, it must give its work back and return at once.
func (e *Env) Worker(work func(ctx, abort context.Context)) {
	e.workers = append(e.workers, work)
}

// Run starts comps in one process and serves until ctx ends, then shuts down in order
// (see the package comment).
func Run(ctx context.Context, cfg Config, comps ...Component) error {
	if err := Validate(&cfg, comps...); err != nil {
		return err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Peers == nil {
		cfg.Peers = map[string]string{}
	}
	abort := cfg.Abort
	if abort == nil {
		abort = context.Background()
	}
	log := cfg.Log
	// Tracing (off unless OTEL_TRACES_EXPORTER says otherwise) is set up before the
	// servers and connections are made, which take its instrumentation, and flushed last.
	flushTraces, err := telemetry.Setup(ctx, traceServiceName(cfg.services), log)
	if err != nil {
		return err
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := flushTraces(fctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}()
	if cfg.InternalToken == "" && cfg.hasService() {
		cfg.InternalToken = "int_" + randomHex()
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return err
		}
	}
	// rest lives until the last phase: consumers, followers and servers run under it.
	rest, stopRest := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRest()

	gl, err := server.Listen(cfg.GRPCAddr)
	if err != nil {
		return err
	}
	self := gl.Addr().String()
	if h, p, _ := net.SplitHostPort(self); h == "::" || h == "0.0.0.0" || h == "" {
		self = net.JoinHostPort("127.0.0.1", p)
	}
	var hl net.Listener
	if cfg.HTTPAddr != "" {
		if hl, err = server.Listen(cfg.HTTPAddr); err != nil {
			gl.Close()
			return err
		}
	}
	authn := &auth.Authenticator{InternalToken: cfg.InternalToken}
	checks := &server.Checks{}
	mux := server.Mux(checks)
	health := server.NewHealth()
	env := &Env{Config: &cfg, GRPC: server.NewGRPC(health, grpc.ChainUnaryInterceptor(authn.Unary()), grpc.ChainStreamInterceptor(authn.Stream())),
		Mux: mux, Checks: checks, Log: log, self: self, authn: authn, draining: make(chan struct{}),
		conns: map[string]*grpc.ClientConn{}, shared: map[string]any{}}
	defer func() {
		for _, c := range env.conns {
			c.Close()
		}
		for _, closing := range []Closing{CloseTransport, CloseStore} {
			cs := env.closers[closing]
			for i := len(cs) - 1; i >= 0; i-- {
				cs[i]()
			}
		}
	}()
	closeListeners := func() {
		gl.Close()
		if hl != nil {
			hl.Close()
		}
	}
	for _, c := range comps {
		env.initialising = c.Name()
		err := c.Init(rest, env)
		env.initialising = ""
		if err != nil {
			closeListeners()
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
	}
	// Every method served must have an entry in the ACL, or it would be refused to all.
	var methods []string
	for name, info := range env.GRPC.GetServiceInfo() {
		for _, m := range info.Methods {
			methods = append(methods, "/"+name+"/"+m.Name)
		}
	}
	if missing := auth.Unlisted(methods, authn.Public); len(missing) > 0 {
		closeListeners()
		return fmt.Errorf("methods served without an entry in libs/platform/auth's ACL: %s", strings.Join(missing, ", "))
	}
	server.InitGRPCMetrics(env.GRPC)
	// The process verifies user and runner tokens with the auth service, as the first of
	// its services (a process running only the runner serves no one: it needs none).
	if i := slices.IndexFunc(cfg.services, func(s string) bool { return s != "runner" }); authn.Verifier == nil && cfg.Peers["auth"] != "" && i >= 0 {
		env.initialising = cfg.services[i]
		c, err := env.Dial("auth")
		env.initialising = ""
		if err != nil {
			closeListeners()
			return err
		}
		authn.Verifier = auth.ServiceVerifier{C: authv1.NewAuthServiceClient(c)}
	}
	for _, start := range env.starters {
		if err := start(rest); err != nil {
			closeListeners()
			return err
		}
	}
	// Workers stop taking work when intake ends: at the first signal, or when the
	// servers fail.
	intake, stopIntake := context.WithCancel(ctx)
	defer stopIntake()
	var workers sync.WaitGroup
	for _, w := range env.workers {
		workers.Add(1)
		go func() { defer workers.Done(); w(intake, abort) }()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(rest, log, env.GRPC, gl, telemetry.HTTP(mux), hl) }()
	info := Info{GRPCAddr: self}
	if hl != nil {
		info.HTTPAddr = hl.Addr().String()
	}
	var failed error
	if cfg.OnStart != nil {
		if err := cfg.OnStart(rest); err != nil {
			failed = err
			stopIntake()
		}
	}
	if failed == nil {
		health.Serving(env.GRPC)
		if cfg.Ready != nil {
			cfg.Ready(info)
		}
		log.Info("simpleci started", "services", strings.Join(cfg.services, ","), "grpc", info.GRPCAddr, "http", info.HTTPAddr)
	}

	// Phase 1: stop intake.
	select {
	case <-intake.Done():
	case failed = <-serveErr:
		serveErr <- failed
		stopIntake()
	}
	close(env.draining)
	checks.Drain()
	health.Drain()
	log.Info("stopping: no new work; finishing the work in progress", "services", strings.Join(cfg.services, ","))
	// Phase 2: the workers finish (or hand back) their work while everything answers.
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-abort.Done():
		log.Info("stopping at once: handing work back")
		<-done
	}
	// Phase 3: the rest.
	log.Info("stopping the services")
	stopRest()
	if err := <-serveErr; err != nil && failed == nil {
		failed = err
	}
	if failed != nil {
		return failed
	}
	return nil
}

// traceServiceName is the process's service.name in its traces: simpleci-NAME for one
// service, simpleci for several (`simpleci dev`).
func traceServiceName(services []string) string {
	if len(services) == 1 {
		return "simpleci-" + services[0]
	}
	return "simpleci"
}

func randomHex() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}
