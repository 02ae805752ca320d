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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
	schedsvc "github.com/simpleci/simpleci/services/scheduler/service"
	"github.com/simpleci/simpleci/services/simpleci/client"
	"github.com/simpleci/simpleci/services/simpleci/local"
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

// specsFlag is a repeatable flag whose values are kept whole (a tier spec has commas).
type specsFlag []string

func (l *specsFlag) String() string { return strings.Join(*l, ";") }
func (l *specsFlag) Set(v string) error {
	*l = append(*l, v)
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

// tierFlag adds the repeatable --tier flag to fs; its parse also reads SIMPLECI_TIERS.
func tierFlag(fs *flag.FlagSet, usagePrefix string) *specsFlag {
	var specs specsFlag
	fs.Var(&specs, "tier", usagePrefix+"override a tier (repeatable), e.g. standard:timeout=60s,memory=2GiB,pids=1024,cpus=1 (SIMPLECI_TIERS, ';'-separated)")
	return &specs
}

// parse reads the tiers of SIMPLECI_TIERS, then of the flags.
func (f *specsFlag) parse() (map[string]schedsvc.Tier, error) {
	return parseTiers(append([]string{os.Getenv("SIMPLECI_TIERS")}, *f...))
}

// parseTiers reads tier overrides, each "NAME:KEY=VALUE,..." with the keys timeout
// (a duration), memory (bytes, or with KiB/MiB/GiB), pids and cpus, e.g.
// "standard:timeout=60s,memory=2GiB". Several are separated by ";".
func parseTiers(specs []string) (map[string]schedsvc.Tier, error) {
	out := map[string]schedsvc.Tier{}
	var problems []string
	for _, spec := range specs {
		for _, one := range strings.Split(spec, ";") {
			if one = strings.TrimSpace(one); one == "" {
				continue
			}
			name, kvs, ok := strings.Cut(one, ":")
			if !ok || name == "" {
				problems = append(problems, fmt.Sprintf("tier %q: want NAME:KEY=VALUE,... such as standard:timeout=60s,memory=2GiB", one))
				continue
			}
			t := out[name]
			t.Name = name
			for _, kv := range strings.Split(kvs, ",") {
				k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
				var err error
				switch k {
				case "timeout":
					t.Timeout, err = time.ParseDuration(v)
					if err == nil && t.Timeout <= 0 {
						err = errors.New("must be positive")
					}
				case "memory":
					t.Memory, err = parseSize(v)
				case "pids":
					t.Pids, err = strconv.ParseInt(v, 10, 64)
				case "cpus":
					t.CPUs, err = strconv.ParseFloat(v, 64)
				default:
					err = errors.New("unknown key (timeout, memory, pids, cpus)")
				}
				if err != nil {
					problems = append(problems, fmt.Sprintf("tier %s: %s=%s: %v", name, k, v, err))
				}
			}
			out[name] = t
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return out, nil
}

// parseSize reads a byte count such as 1073741824, 512MiB or 2GiB.
func parseSize(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			x, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
			if err != nil || x <= 0 {
				return 0, fmt.Errorf("want a positive size such as 512MiB or 2GiB")
			}
			return x * u.mult, nil
		}
	}
	return 0, nil
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
	tierSpecs := tierFlag(fs, "")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	tt, err := tierSpecs.parse()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	cfg := Config{Services: Services, DataDir: dir, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, Tiers: tt,
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
	keyring := fs.String("secrets-keyring", env("SIMPLECI_SECRETS_KEYRING", ""), "project: file of the keys that seal project secrets (ID:BASE64 per line; created if missing)")
	tiers := fs.String("runner-tiers", env("SIMPLECI_RUNNER_TIERS", "standard"), "runner: tiers served, comma-separated")
	tierSpecs := tierFlag(fs, "scheduler: ")
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
	tt, err := tierSpecs.parse()
	if err != nil {
		return err
	}
	cfg := Config{Services: services, DatabaseURL: *dbURL, KafkaBrokers: split(*brokers), GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr,
		DataDir: *data, InternalToken: *token, AdminTokenFile: *adminFile, RunnerTiers: split(*tiers), Tiers: tt,
		LeaseDuration: *lease, LostRunRetries: *retries, RunnerID: *runnerID, DrainTimeout: *drain, SecretsKeyring: *keyring, Peers: map[string]string{}, Log: logger(stderr)}
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
	case "exec":
		ctx, cancel := signalContext()
		defer cancel()
		return local.Exec(ctx, args[1:], local.Std())
	case "lint":
		return local.Lint(args[1:], local.Std())
	case "admin":
		err = Admin(args[1:], os.Stdout, os.Stderr)
	case "runs", "trigger", "projects":
		ctx, cancel := signalContext()
		defer cancel()
		return client.Main(ctx, args, client.Std())
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
  runs list PROJECT | show RUN | logs RUN [-f] | events RUN | cancel RUN
  trigger PROJECT [--ref REF]
  projects list
          API client: --server URL --token TOKEN, or SIMPLECI_SERVER and SIMPLECI_TOKEN
  admin rebuild-projections [--data DIR | --database-url URL]
          rebuild the read models from the event log (stop the scheduler first)
  admin migrate [--status] [--data DIR | --database-url URL]
          apply the services' pending schema migrations (they also run at start); --status lists them
  exec    run the pipeline in the current directory with the server's engine (exec -h for flags)
  lint    validate the pipeline; with --event, show which steps would run (lint -h for flags)
`)
}

// Admin runs `simpleci admin SUBCOMMAND`.
func Admin(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return adminMigrate(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "rebuild-projections" {
		return errors.New("usage: simpleci admin rebuild-projections|migrate [--data DIR | --database-url URL]")
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

// adminMigrate runs `simpleci admin migrate [--status]`.
func adminMigrate(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simpleci admin migrate", flag.ContinueOnError)
	status := fs.Bool("status", false, "print each service's schema version and pending migrations; apply nothing")
	data := fs.String("data", env("SIMPLECI_DATA", ""), "data directory of `simpleci dev` (its SERVICE.db files)")
	dbURL := fs.String("database-url", env("SIMPLECI_DATABASE_URL", ""), "PostgreSQL URL of the services' database")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dbURL == "" && *data == "" {
		return errors.New("migrate: give --data DIR or --database-url URL")
	}
	ctx, cancel := signalContext()
	defer cancel()
	return Migrate(ctx, *data, *dbURL, *status, stdout)
}
