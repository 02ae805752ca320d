package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
	schedsvc "github.com/simpleci/simpleci/services/scheduler/service"
)

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func split(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseTimeouts reads "standard=5s,large=10m".
func parseTimeouts(v string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, kv := range split(v) {
		k, d, ok := strings.Cut(kv, "=")
		dur, err := time.ParseDuration(d)
		if !ok || err != nil || dur <= 0 {
			return nil, fmt.Errorf("tier timeout %q: want TIER=DURATION such as standard=150s", kv)
		}
		out[k] = dur
	}
	return out, nil
}

func logger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("SIMPLECI_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Dev runs `simpleci dev`: every service in one process on the embedded default.
func Dev(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simpleci dev", flag.ContinueOnError)
	data := fs.String("data", env("SIMPLECI_DATA", ".simpleci-data"), "data directory (SQLite files, admin token, workspaces)")
	httpAddr := fs.String("http", env("SIMPLECI_HTTP_ADDR", ":8080"), "HTTP address (UI, REST, webhooks)")
	grpcAddr := fs.String("grpc", env("SIMPLECI_GRPC_ADDR", ":9090"), "gRPC address")
	demo := fs.String("demo", env("SIMPLECI_DEMO", "docs/examples/demo"), "files of the demo project's repository (empty: no demo)")
	timeouts := fs.String("tier-timeouts", env("SIMPLECI_TIER_TIMEOUTS", ""), "override tier run timeouts, e.g. standard=60s")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tt, err := parseTimeouts(*timeouts)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	cfg := Config{Services: Services, DataDir: dir, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, TierTimeouts: tt,
		LostRunRetries: 1, Log: logger(stderr)}
	if *demo != "" {
		src := *demo
		cfg.OnStart = func(ctx context.Context, n *Node) error { return Demo(ctx, n, src) }
	}
	cfg.Ready = func(n *Node) {
		tokenFile := filepath.Join(dir, "admin-token")
		fmt.Fprintf(stdout, "SimpleCI is running: http://%s (gRPC %s)\n", display(n.Info.HTTPAddr), n.Info.GRPCAddr)
		if n.NewAdminToken != "" {
			// Shown once, on the first start; it stays readable only in the 0600 file.
			fmt.Fprintf(stdout, "Admin API token (first start): %s\n", n.NewAdminToken)
		}
		fmt.Fprintf(stdout, "The admin token is in %s: export SIMPLECI_TOKEN=$(cat %s)\n", tokenFile, tokenFile)
	}
	return Run(ctx, cfg)
}

func display(addr string) string {
	if strings.HasPrefix(addr, "[::]:") {
		return "localhost:" + strings.TrimPrefix(addr, "[::]:")
	}
	return strings.Replace(addr, "0.0.0.0", "localhost", 1)
}

// Serve runs `simpleci serve --service NAME ...` against Kafka and PostgreSQL.
func Serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simpleci serve", flag.ContinueOnError)
	var services listFlag
	fs.Var(&services, "service", "service to run (repeatable or comma-separated): "+strings.Join(Services, ", "))
	dbURL := fs.String("database-url", env("SIMPLECI_DATABASE_URL", ""), "PostgreSQL URL (postgres://...)")
	brokers := fs.String("kafka-brokers", env("SIMPLECI_KAFKA_BROKERS", ""), "Kafka brokers, comma-separated (empty: in-process bus)")
	grpcAddr := fs.String("grpc", env("SIMPLECI_GRPC_ADDR", ":9090"), "gRPC address")
	httpAddr := fs.String("http", env("SIMPLECI_HTTP_ADDR", ":8080"), "HTTP address (REST, webhooks, health, metrics)")
	data := fs.String("data", env("SIMPLECI_DATA", ""), "data directory (mirrors, workspaces)")
	token := fs.String("internal-token", env("SIMPLECI_INTERNAL_TOKEN", ""), "token services present to each other")
	adminFile := fs.String("admin-token-file", env("SIMPLECI_ADMIN_TOKEN_FILE", ""), "auth: file with the bootstrap admin token (created if missing)")
	tiers := fs.String("runner-tiers", env("SIMPLECI_RUNNER_TIERS", "standard"), "runner: tiers served, comma-separated")
	timeouts := fs.String("tier-timeouts", env("SIMPLECI_TIER_TIMEOUTS", ""), "scheduler: override tier run timeouts, e.g. standard=60s")
	lease := fs.Duration("lease", 30*time.Second, "scheduler: job lease duration")
	retries := fs.Int("lost-run-retries", 1, "scheduler: how often a run whose runner was lost runs again on another runner (0: it fails)")
	runnerID := fs.String("runner-id", env("SIMPLECI_RUNNER_ID", ""), "runner: its name (default: the host name)")
	drain := fs.Duration("drain-timeout", 10*time.Minute, "runner: on SIGTERM, how long the job in progress may still run")
	peers := map[string]*string{}
	for _, s := range []string{"auth", "project", "scheduler", "log"} {
		peers[s] = fs.String(s+"-addr", env("SIMPLECI_"+strings.ToUpper(s)+"_ADDR", ""), "gRPC address of the "+s+" service when it runs elsewhere")
	}
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(services) == 0 {
		services = split(env("SIMPLECI_SERVICES", ""))
	}
	tt, err := parseTimeouts(*timeouts)
	if err != nil {
		return err
	}
	cfg := Config{Services: services, DatabaseURL: *dbURL, KafkaBrokers: split(*brokers), GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr,
		DataDir: *data, InternalToken: *token, AdminTokenFile: *adminFile, RunnerTiers: split(*tiers), TierTimeouts: tt,
		LeaseDuration: *lease, LostRunRetries: *retries, RunnerID: *runnerID, DrainTimeout: *drain, Peers: map[string]string{}, Log: logger(stderr)}
	for s, v := range peers {
		cfg.Peers[s] = *v
	}
	if cfg.has("auth") && cfg.AdminTokenFile == "" && cfg.DataDir == "" {
		return errors.New("configuration: the auth service needs --admin-token-file or --data")
	}
	ctx, cancel := signalContext()
	defer cancel()
	cfg.Ready = func(n *Node) {
		fmt.Fprintf(stdout, "serving %s: grpc %s http %s\n", strings.Join(services, ","), n.Info.GRPCAddr, n.Info.HTTPAddr)
	}
	return Run(ctx, cfg)
}

// Main dispatches the simpleci command line and returns the exit code.
func Main(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	var err error
	switch args[0] {
	case "dev":
		err = Dev(args[1:], os.Stdout, os.Stderr)
	case "serve":
		err = Serve(args[1:], os.Stdout, os.Stderr)
	case "admin":
		err = Admin(args[1:], os.Stdout, os.Stderr)
	case "help", "-h", "--help":
		usage(os.Stdout)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "simpleci: unknown command %q\n", args[0])
		usage(os.Stderr)
		return 2
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "simpleci:", err)
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: simpleci COMMAND [flags]

commands:
  dev     every service in one process on the embedded default (SQLite, in-process bus, local runner)
  serve   the services named by --service, against Kafka and PostgreSQL
  admin rebuild-projections [--data DIR | --database-url URL]
          rebuild the read models from the event log (stop the scheduler first)
  exec    run the pipeline in the current directory with the server's engine (exec -h for flags)
  lint    validate the pipeline; with --event, show which steps would run (lint -h for flags)
`)
}

// Admin runs `simpleci admin SUBCOMMAND`.
func Admin(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rebuild-projections" {
		return errors.New("usage: simpleci admin rebuild-projections [--data DIR | --database-url URL]")
	}
	fs := flag.NewFlagSet("simpleci admin rebuild-projections", flag.ContinueOnError)
	data := fs.String("data", env("SIMPLECI_DATA", ""), "data directory of `simpleci dev` (its scheduler.db)")
	dbURL := fs.String("database-url", env("SIMPLECI_DATABASE_URL", ""), "PostgreSQL URL of the scheduler's database")
	fs.SetOutput(stderr)
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	url := *dbURL
	if url == "" {
		if *data == "" {
			return errors.New("rebuild-projections: give --data DIR or --database-url URL")
		}
		url = filepath.Join(*data, "scheduler.db")
		if _, err := os.Stat(url); err != nil {
			return fmt.Errorf("rebuild-projections: %w", err)
		}
	}
	ctx, cancel := signalContext()
	defer cancel()
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	n, err := schedsvc.RebuildRunList(ctx, db, logger(stderr))
	if err != nil {
		return fmt.Errorf("rebuild run list: %w", err)
	}
	fmt.Fprintf(stdout, "run list rebuilt from %d events in %s\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
