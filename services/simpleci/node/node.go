// Package node composes SimpleCI's services into one process: any subset of them
// against Kafka and PostgreSQL (`simpleci serve`), or all of them on the embedded
// default (`simpleci dev`). Services in one process still talk over their real
// interfaces: gRPC on the process's own port and the bus.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/server"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	authsvc "github.com/simpleci/simpleci/services/auth/service"
	gatewaysvc "github.com/simpleci/simpleci/services/gateway/service"
	logsvc "github.com/simpleci/simpleci/services/log/service"
	"github.com/simpleci/simpleci/services/project/seal"
	projectsvc "github.com/simpleci/simpleci/services/project/service"
	runnersvc "github.com/simpleci/simpleci/services/runner/service"
	schedsvc "github.com/simpleci/simpleci/services/scheduler/service"
	"google.golang.org/grpc"
)

// Services lists every service name.
var Services = []string{"gateway", "auth", "project", "scheduler", "runner", "log"}

// Config configures one process.
type Config struct {
	// Services to run here.
	Services []string
	// DatabaseURL is a postgres:// URL (production) or a SQLite file path.
	// Dev mode leaves it empty and gives each service its own file in DataDir.
	DatabaseURL string
	// DataDir holds SQLite files, the admin token, repository mirrors and workspaces.
	DataDir string
	// KafkaBrokers selects the Kafka bus; empty selects the in-process bus.
	KafkaBrokers []string
	// GRPCAddr and HTTPAddr are where this process listens.
	GRPCAddr, HTTPAddr string
	// Peers maps a service name to the gRPC address of the process running it;
	// services run here need no entry.
	Peers map[string]string
	// InternalToken authenticates services to each other (required when services
	// run in several processes).
	InternalToken string
	// AdminTokenFile holds the bootstrap admin token (auth service).
	AdminTokenFile string
	// RunnerTiers are the tiers the runner serves.
	RunnerTiers []string
	// Tiers overrides the default tiers: a field left zero keeps the default; a new name
	// adds a tier.
	Tiers map[string]schedsvc.Tier
	// LeaseDuration of claimed jobs (scheduler).
	LeaseDuration time.Duration
	// LostRunRetries is how often a run whose runner was lost runs again (scheduler).
	LostRunRetries int
	// RunnerID names the runner (default: the host name).
	RunnerID string
	// DrainTimeout is how long a stopping runner may finish its job in progress.
	DrainTimeout time.Duration
	// SecretsKeyring is the file of keys that seal project secrets (project service);
	// default DataDir/secrets.keyring, created when missing; no file and no DataDir
	// disables secrets.
	SecretsKeyring string
	// Ready, when set, is called once the process serves.
	Ready func(*Node)
	// OnStart, when set, runs after the services started (dev mode uses it for the demo).
	OnStart func(ctx context.Context, n *Node) error
	Log     *slog.Logger
}

// Info says where a started process listens.
type Info struct{ GRPCAddr, HTTPAddr string }

// Node is a running process's services.
type Node struct {
	Cfg      Config
	Auth     *authsvc.Service
	Projects *projectsvc.Service
	Info     Info
	// NewAdminToken is the admin token when this start created it (else empty).
	NewAdminToken string
}

func (c Config) has(s string) bool { return slices.Contains(c.Services, s) }

// Validate reports every configuration problem at once.
func (c Config) Validate() error {
	var problems []string
	if len(c.Services) == 0 {
		problems = append(problems, "no service selected (--service NAME, one of "+strings.Join(Services, ", ")+")")
	}
	for _, s := range c.Services {
		if !slices.Contains(Services, s) {
			problems = append(problems, fmt.Sprintf("unknown service %q (known: %s)", s, strings.Join(Services, ", ")))
		}
	}
	needsDB := c.has("auth") || c.has("project") || c.has("scheduler") || c.has("log")
	if needsDB && c.DatabaseURL == "" && c.DataDir == "" {
		problems = append(problems, "a database is required: --database-url / SIMPLECI_DATABASE_URL")
	}
	peers := map[string][]string{"gateway": {"auth", "project", "scheduler", "log"}, "scheduler": {"project", "auth"},
		"runner": {"scheduler"}, "project": {"auth"}, "log": {"auth"}}
	for svc, needs := range peers {
		if !c.has(svc) {
			continue
		}
		for _, p := range needs {
			if !c.has(p) && c.Peers[p] == "" {
				problems = append(problems, fmt.Sprintf("%s needs the %s service: run it here or give its address (--%s-addr / SIMPLECI_%s_ADDR)", svc, p, p, strings.ToUpper(p)))
			}
		}
	}
	local := true
	for _, p := range c.Peers {
		if p != "" {
			local = false
		}
	}
	if !local && c.InternalToken == "" {
		problems = append(problems, "services in several processes need a shared --internal-token / SIMPLECI_INTERNAL_TOKEN")
	}
	if len(problems) > 0 {
		return errors.New("configuration:\n  - " + strings.Join(problems, "\n  - "))
	}
	return nil
}

// Run starts the configured services and serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	log := cfg.Log
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return err
		}
	}
	var b bus.Bus
	if len(cfg.KafkaBrokers) > 0 {
		kc := bus.KafkaConfig{Brokers: cfg.KafkaBrokers, ClientID: "simpleci"}
		ectx, ecancel := context.WithTimeout(ctx, 60*time.Second)
		err := bus.EnsureTopics(ectx, kc, event.Topics...)
		ecancel()
		if err != nil {
			return fmt.Errorf("kafka topics: %w", err)
		}
		kb, err := bus.NewKafka(kc, log)
		if err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		b = kb
	} else {
		b = bus.NewGoChannel(log)
	}
	defer b.Close()

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
	addr := func(svc string) string {
		if cfg.has(svc) {
			return self
		}
		return cfg.Peers[svc]
	}
	internalToken := cfg.InternalToken
	if internalToken == "" {
		internalToken = "int_" + randomHex()
	}
	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func(svc string, token string) (*grpc.ClientConn, error) {
		c, err := auth.Dial(addr(svc), token)
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}

	dbs := map[string]*sqldb.DB{}
	defer func() {
		for _, d := range dbs {
			d.Close()
		}
	}()
	openDB := func(svc string) (*sqldb.DB, error) {
		url := cfg.DatabaseURL
		if url == "" {
			url = filepath.Join(cfg.DataDir, svc+".db")
		}
		if d, ok := dbs[url]; ok {
			return d, nil
		}
		d, err := sqldb.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", svc, err)
		}
		dbs[url] = d
		return d, nil
	}

	forges, err := newForges(cfg.DataDir)
	if err != nil {
		return err
	}
	n := &Node{Cfg: cfg}
	authn := &auth.Authenticator{InternalToken: internalToken}
	checks := &server.Checks{}
	gs := server.NewGRPC(grpc.ChainUnaryInterceptor(authn.Unary()), grpc.ChainStreamInterceptor(authn.Stream()))

	if cfg.has("auth") {
		db, err := openDB("auth")
		if err != nil {
			return err
		}
		if n.Auth, err = authsvc.New(ctx, db); err != nil {
			return err
		}
		tokenFile := cfg.AdminTokenFile
		if tokenFile == "" {
			tokenFile = filepath.Join(cfg.DataDir, "admin-token")
		}
		tok, created, err := n.Auth.Bootstrap(ctx, tokenFile)
		if err != nil {
			return err
		}
		if created {
			n.NewAdminToken = tok
		}
		authn.Verifier = authsvc.Local{S: n.Auth}
		authn.Public = map[string]bool{authv1.AuthService_VerifyToken_FullMethodName: true}
		n.Auth.Register(gs)
	} else {
		c, err := dial("auth", internalToken)
		if err != nil {
			return err
		}
		authn.Verifier = authsvc.Client{C: authv1.NewAuthServiceClient(c)}
	}
	if cfg.has("project") {
		db, err := openDB("project")
		if err != nil {
			return err
		}
		if n.Projects, err = projectsvc.New(ctx, db, forges.Names()); err != nil {
			return err
		}
		keyring := cfg.SecretsKeyring
		if keyring == "" && cfg.DataDir != "" {
			keyring = filepath.Join(cfg.DataDir, "secrets.keyring")
		}
		if keyring == "" {
			log.Warn("project secrets disabled: give --secrets-keyring (or --data)")
		} else {
			keys, err := seal.LoadOrCreate(keyring)
			if err != nil {
				return err
			}
			if err := n.Projects.WithKeys(ctx, keys); err != nil {
				return err
			}
		}
		n.Projects.Register(gs)
	}
	var starters []func(context.Context) error
	if cfg.has("scheduler") {
		db, err := openDB("scheduler")
		if err != nil {
			return err
		}
		pc, err := dial("project", internalToken)
		if err != nil {
			return err
		}
		tiers := schedsvc.DefaultTiers()
		for name, o := range cfg.Tiers {
			t := tiers[name]
			t.Name = name
			if o.Timeout > 0 {
				t.Timeout = o.Timeout
			}
			if o.Memory > 0 {
				t.Memory = o.Memory
			}
			if o.Pids > 0 {
				t.Pids = o.Pids
			}
			if o.CPUs > 0 {
				t.CPUs = o.CPUs
			}
			if t.Timeout <= 0 {
				return fmt.Errorf("tier %s: a new tier needs a timeout", name)
			}
			tiers[name] = t
		}
		s, err := schedsvc.New(ctx, schedsvc.Config{DB: db, Bus: b, Forges: forges, Projects: apiv1.NewProjectInternalServiceClient(pc),
			Log: log, Tiers: tiers, LeaseDuration: cfg.LeaseDuration, LostRunRetries: cfg.LostRunRetries})
		if err != nil {
			return err
		}
		s.Register(gs)
		starters = append(starters, s.Start)
	}
	if cfg.has("log") {
		db, err := openDB("log")
		if err != nil {
			return err
		}
		s, err := logsvc.New(ctx, db, b, log)
		if err != nil {
			return err
		}
		s.Register(gs)
		starters = append(starters, s.Start)
	}
	mux := server.Mux(checks)
	if cfg.has("gateway") {
		pc, err := dial("project", "")
		if err != nil {
			return err
		}
		sc, err := dial("scheduler", "")
		if err != nil {
			return err
		}
		lc, err := dial("log", "")
		if err != nil {
			return err
		}
		ic, err := dial("project", internalToken)
		if err != nil {
			return err
		}
		if err := gatewaysvc.Register(ctx, mux, gatewaysvc.Config{Projects: pc, Scheduler: sc, Logs: lc,
			Internal: apiv1.NewProjectInternalServiceClient(ic), Bus: b, Forges: forges, Log: log}); err != nil {
			return err
		}
	}
	for _, start := range starters {
		if err := start(ctx); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if cfg.has("runner") {
		sc, err := dial("scheduler", internalToken)
		if err != nil {
			return err
		}
		workDir := ""
		if cfg.DataDir != "" {
			workDir = filepath.Join(cfg.DataDir, "workspaces")
		}
		r, err := runnersvc.New(runnersvc.Config{ID: cfg.RunnerID, Tiers: cfg.RunnerTiers, WorkDir: workDir, DrainTimeout: cfg.DrainTimeout,
			Scheduler: runnerv1.NewRunnerServiceClient(sc),
			Bus:       b, Forges: forges, Log: log})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); r.Run(ctx) }()
	}
	n.Info = Info{GRPCAddr: self}
	if hl != nil {
		n.Info.HTTPAddr = hl.Addr().String()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(ctx, log, gs, gl, mux, hl) }()
	if cfg.OnStart != nil {
		if err := cfg.OnStart(ctx, n); err != nil {
			cancel()
			<-serveErr
			return err
		}
	}
	if cfg.Ready != nil {
		cfg.Ready(n)
	}
	log.Info("simpleci started", "services", strings.Join(cfg.Services, ","), "grpc", n.Info.GRPCAddr, "http", n.Info.HTTPAddr)
	err = <-serveErr
	cancel()
	return err
}

func newForges(dataDir string) (*forge.Registry, error) {
	mirrors := filepath.Join(os.TempDir(), "simpleci-mirrors")
	if dataDir != "" {
		mirrors = filepath.Join(dataDir, "mirrors")
	}
	l, err := local.New(local.Options{MirrorDir: mirrors})
	if err != nil {
		return nil, err
	}
	return forge.NewRegistry(l)
}
