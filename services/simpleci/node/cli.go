package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	platform "github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodebus"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	authsvc "github.com/simpleci/simpleci/services/auth/service"
	gatewaysvc "github.com/simpleci/simpleci/services/gateway/service"
	logsvc "github.com/simpleci/simpleci/services/log/service"
	projectsvc "github.com/simpleci/simpleci/services/project/service"
	runnersvc "github.com/simpleci/simpleci/services/runner/service"
	schedsvc "github.com/simpleci/simpleci/services/scheduler/service"
	"github.com/simpleci/simpleci/services/simpleci/client"
	"github.com/simpleci/simpleci/services/simpleci/local"
)

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, platform.Split(v)...)
	return nil
}

// Services lists every service name, in the order a process initialises them.
var Services = []string{"auth", "project", "scheduler", "log", "gateway", "runner"}

// components are the six services' components, in the order of Services.
type components struct {
	auth      *authsvc.Component
	project   *projectsvc.Component
	scheduler *schedsvc.Component
	log       *logsvc.Component
	gateway   *gatewaysvc.Component
	runner    *runnersvc.Component
}

func (c *components) all() []platform.Component {
	return []platform.Component{c.auth, c.project, c.scheduler, c.log, c.gateway, c.runner}
}

func newComponents() *components {
	return &components{auth: &authsvc.Component{}, project: &projectsvc.Component{}, scheduler: &schedsvc.Component{},
		log: &logsvc.Component{}, gateway: &gatewaysvc.Component{}, runner: &runnersvc.Component{}}
}

func logger(w io.Writer) *slog.Logger { return platform.Logger(w) }

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// Where `simpleci dev` listens unless --http / --grpc say otherwise: loopback only. A
// development server with a printed admin token, a demo project and a runner without
// full isolation is not for the network (`--http :8080` exposes it on purpose).
const (
	DevHTTPAddr = "127.0.0.1:8080"
	DevGRPCAddr = "127.0.0.1:9090"
)

// Dev runs `simpleci dev`: every service in one process on the embedded default.
func Dev(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simpleci dev", flag.ContinueOnError)
	data := fs.String("data", platform.Getenv("SIMPLECI_DATA", ".simpleci-data"), "data directory (SQLite files, admin token, workspaces)")
	httpAddr := fs.String("http", platform.Getenv("SIMPLECI_HTTP_ADDR", DevHTTPAddr), "HTTP address (UI, REST, webhooks); loopback unless set")
	grpcAddr := fs.String("grpc", platform.Getenv("SIMPLECI_GRPC_ADDR", DevGRPCAddr), "gRPC address; loopback unless set")
	demo := fs.String("demo", platform.Getenv("SIMPLECI_DEMO", "docs/examples/demo"), "files of the demo project's repository (empty: no demo)")
	repoFlags := platform.RepoFlags(fs)
	comps := newComponents()
	comps.scheduler.TierFlag(fs, "")
	comps.scheduler.TriggerFlag(fs, "")
	comps.scheduler.PublicURLFlag(fs, "")
	comps.gateway.Flags(fs)
	comps.log.Flags(fs)
	comps.auth.GitHub.Register(fs)
	comps.scheduler.LostRunRetries = 1
	fs.DurationVar(&comps.runner.DrainTimeout, "drain-timeout", 10*time.Minute, "on the first interrupt, how long the jobs in progress may still run (a second interrupt hands them back)")
	comps.runner.JobsFlag(fs)
	// A developer's own machine, often without root: weak isolation is allowed unless
	// --allow-weak-isolation=false; the runner's start log and every run's log then name
	// the missing layers. Where every layer is there the flag changes nothing.
	comps.runner.IsolationFlags(fs, true)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := filepath.Abs(*data)
	if err != nil {
		return err
	}
	if comps.auth.GitHub.PublicURL == "" {
		// A development server is reached where it listens.
		comps.auth.GitHub.PublicURL = "http://" + display(*httpAddr)
	}
	if comps.scheduler.PublicURL == "" {
		comps.scheduler.PublicURL = comps.auth.GitHub.PublicURL // commit statuses link there too
	}
	comps.project.PublicURL = comps.scheduler.PublicURL // GitHub delivers there
	stop, abort, release := platform.Signals()
	defer release()
	log := logger(stderr)
	cfg := platform.Config{DataDir: dir, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr, Abort: abort, Log: log}
	// Projects may use repositories under DATA/repos, the demo repository and the
	// directories of --local-repos; never the rest of the data directory (mirrors of
	// other projects' repositories, workspaces, keys).
	repos := repoFlags()
	cfg.LocalRepos = append(repos.LocalRepos, filepath.Join(dir, "repos"))
	cfg.LocalRepositories = []string{filepath.Join(dir, "demo-repo")}
	cfg.AllowRepoNetworks = repos.AllowRepoNetworks
	cfg.GitHub = repos.GitHub
	if err := os.MkdirAll(filepath.Join(dir, "repos"), 0o755); err != nil {
		return err
	}
	if *demo != "" {
		src := *demo
		cfg.OnStart = func(ctx context.Context) error {
			return Demo(ctx, comps.auth.Service, comps.project.Service, dir, src, log)
		}
	}
	cfg.Ready = func(info platform.Info) {
		tokenFile := filepath.Join(dir, "admin-token")
		web := "http://" + display(info.HTTPAddr)
		fmt.Fprintf(stdout, "SimpleCI is running: %s (gRPC %s)\n", web, info.GRPCAddr)
		if comps.auth.NewAdminToken != "" {
			// Shown once, on the first start; it stays readable only in the 0600 file.
			fmt.Fprintf(stdout, "Admin API token (first start): %s\n", comps.auth.NewAdminToken)
			// The token rides in the fragment, which the browser never sends: the web UI
			// keeps it and takes it out of the address bar (ADR 21).
			fmt.Fprintf(stdout, "Open the web UI signed in as the admin: %s\n", signInLink(web, comps.auth.NewAdminToken))
		} else {
			fmt.Fprintf(stdout, "Open the web UI: %s/ (sign in with the admin token from %s)\n", web, tokenFile)
		}
		fmt.Fprintf(stdout, "The admin token is in %s: export SIMPLECI_TOKEN=$(cat %s)\n", tokenFile, tokenFile)
		if comps.auth.GitHub.Enabled() {
			fmt.Fprintf(stdout, "Sign in with GitHub: %s/auth/github/login\n", strings.TrimSuffix(comps.auth.GitHub.PublicURL, "/"))
		}
		fmt.Fprintln(stdout, "Ctrl-C stops after the jobs in progress; a second Ctrl-C stops at once and hands them back.")
	}
	return platform.Run(stop, cfg, comps.all()...)
}

// signInLink is the web UI's one-click sign-in address for token: base with the token
// in the fragment (#token=...), which browsers never send to the server.
func signInLink(base, token string) string {
	return strings.TrimSuffix(base, "/") + "/#token=" + url.QueryEscape(token)
}

func display(addr string) string {
	if strings.HasPrefix(addr, ":") {
		return "localhost" + addr
	}
	if strings.HasPrefix(addr, "[::]:") {
		return "localhost:" + strings.TrimPrefix(addr, "[::]:")
	}
	return strings.Replace(addr, "0.0.0.0", "localhost", 1)
}

// Serve runs `simpleci serve --service NAME ...` against Kafka and PostgreSQL.
func Serve(args []string, stdout, stderr io.Writer) error {
	comps := newComponents()
	all := comps.all()
	return platform.Command{Name: "simpleci serve", Components: all, Select: func(fs *flag.FlagSet) func() ([]platform.Component, error) {
		var services listFlag
		fs.Var(&services, "service", "service to run (repeatable or comma-separated): "+strings.Join(Services, ", "))
		return func() ([]platform.Component, error) {
			if len(services) == 0 {
				services = platform.Split(platform.Getenv("SIMPLECI_SERVICES", ""))
			}
			var chosen []platform.Component
			var problems []string
			for _, s := range services {
				if !slices.Contains(Services, s) {
					problems = append(problems, fmt.Sprintf("unknown service %q (known: %s)", s, strings.Join(Services, ", ")))
				}
			}
			if len(services) == 0 {
				problems = append(problems, "no service selected (--service NAME, one of "+strings.Join(Services, ", ")+")")
			}
			if len(problems) > 0 {
				return nil, errors.New("configuration:\n  - " + strings.Join(problems, "\n  - "))
			}
			for _, c := range all { // in the order of Services, however they were given
				if slices.Contains(services, c.Name()) {
					chosen = append(chosen, c)
				}
			}
			return chosen, nil
		}
	}}.Run(args, stdout, stderr)
}

// Main dispatches the simpleci command line and returns the exit code.
func Main(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	var err error
	if path := os.Getenv("SIMPLECI_CPUPROFILE"); path != "" && (args[0] == "dev" || args[0] == "serve") {
		stop, perr := cpuProfile(path)
		if perr != nil {
			fmt.Fprintln(os.Stderr, "simpleci:", perr)
			return 1
		}
		defer stop()
	}
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
	case "runs", "trigger", "projects", "tokens", "runners", "members", "orgs", "teams", "repos", "artifacts", "caches":
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

// cpuProfile writes a CPU profile of the process to path until stop is called
// (SIMPLECI_CPUPROFILE, for finding where a service's time goes; docs/benchmarks.md).
func cpuProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("SIMPLECI_CPUPROFILE: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("SIMPLECI_CPUPROFILE: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: simpleci COMMAND [flags]

commands:
  dev     every service in one process on the embedded default (SQLite, in-process bus, local runner)
  serve   the services named by --service, against Kafka and PostgreSQL
  runs list PROJECT | show RUN | logs RUN [-f] | events RUN | cancel RUN
  trigger PROJECT [--ref REF]
  projects list | update PROJECT [--events E,E] [--tier T] [--network N] | delete PROJECT
  members list | add LOGIN --role ROLE | set LOGIN --role ROLE | remove LOGIN
          owners: users of the organisation and their roles (viewer, developer, maintainer, owner)
  orgs list | create NAME
          your organisations; a token acts in one (tokens create --org NAME)
  teams list | show TEAM | create TEAM --role ROLE | set TEAM --role ROLE | delete TEAM
        | add TEAM LOGIN | remove TEAM LOGIN
          owners: groups of members with a role (the highest of a member's roles counts)
  repos list
          the GitHub repositories you administer (after signing in with GitHub)
  tokens create NAME [--expires 720h] [--org NAME] | list | revoke ID
  artifacts list RUN | download RUN NAME [-o FILE]
          a run's stored files (store-files steps); download checks the sha256
  caches list PROJECT | delete PROJECT KEY [--scope S]
          a project's cache entries (cache-files steps); delete: maintainers
  runners register NAME | list | revoke NAME
          admins: a runner's own token (serve --service runner takes it in SIMPLECI_RUNNER_TOKEN)
          API client: --server URL --token TOKEN, or SIMPLECI_SERVER and SIMPLECI_TOKEN
  admin rebuild-projections [--data DIR | --database-url URL]
          rebuild the read models from the event log (stop the scheduler first)
  admin migrate [--status] [--data DIR | --database-url URL]
          apply the services' pending schema migrations (they also run at start); --status lists them
  admin poison list [--topic T] [--limit N] | replay ID... | --all
          messages the consumers gave up on; replay re-publishes them (--data DIR | --kafka-brokers B)
  exec    run the pipeline in the current directory with the server's engine (exec -h for flags)
  lint    validate the pipeline; with --event, show which steps would run (lint -h for flags)
`)
}

// Admin runs `simpleci admin SUBCOMMAND`.
func Admin(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return adminMigrate(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "poison" {
		return AdminPoison(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "rebuild-projections" {
		return errors.New("usage: simpleci admin rebuild-projections|migrate [--data DIR | --database-url URL]")
	}
	fs := flag.NewFlagSet("simpleci admin rebuild-projections", flag.ContinueOnError)
	data := fs.String("data", platform.Getenv("SIMPLECI_DATA", ""), "data directory of `simpleci dev` (its scheduler.db)")
	dbURL := fs.String("database-url", platform.Getenv("SIMPLECI_DATABASE_URL", ""), "PostgreSQL URL of the scheduler's database")
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
	data := fs.String("data", platform.Getenv("SIMPLECI_DATA", ""), "data directory of `simpleci dev` (its SERVICE.db files)")
	dbURL := fs.String("database-url", platform.Getenv("SIMPLECI_DATABASE_URL", ""), "PostgreSQL URL of the services' database")
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

const poisonUsage = `usage: simpleci admin poison list [--topic T] [--limit N] [--data DIR | --kafka-brokers B [--kafka-namespace NS]]
       simpleci admin poison replay ID... | --all [--topic T] [--data DIR | --kafka-brokers B [--kafka-namespace NS]]`

// AdminPoison runs `simpleci admin poison list|replay`: the messages consumers gave up on.
func AdminPoison(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return errors.New(poisonUsage)
	}
	fs := flag.NewFlagSet("simpleci admin poison "+args[0], flag.ContinueOnError)
	data := fs.String("data", platform.Getenv("SIMPLECI_DATA", ""), "data directory of `simpleci dev` (its poison queue)")
	brokers := fs.String("kafka-brokers", platform.Getenv("SIMPLECI_KAFKA_BROKERS", ""), "Kafka brokers, comma-separated (the split deployment)")
	namespace := fs.String("kafka-namespace", platform.Getenv("SIMPLECI_KAFKA_NAMESPACE", ""), "the deployment's Kafka namespace (topic and group prefix)")
	topic := fs.String("topic", "", "only messages poisoned on this topic")
	limit := fs.Int("limit", 100, "list: at most this many, the newest (0: all)")
	all := fs.Bool("all", false, "replay: every poisoned message (of --topic)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up reading the poison queue after this long")
	fs.SetOutput(stderr)
	var ids []string // flags may follow the ids: replay ID --data DIR
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		ids, rest = append(ids, rest[0]), rest[1:]
	}
	if args[0] == "list" && len(ids) > 0 {
		return errors.New(poisonUsage)
	}
	ctx, cancel := signalContext()
	defer cancel()
	q, closeQ, err := openPoison(*data, bus.KafkaConfig{Brokers: platform.Split(*brokers), Namespace: *namespace, ClientID: "simpleci-admin"}, logger(stderr))
	if err != nil {
		return err
	}
	defer closeQ()
	lctx, lcancel := context.WithTimeout(ctx, *timeout)
	defer lcancel()
	if args[0] == "list" {
		return poisonList(lctx, q, *topic, *limit, stdout)
	}
	return poisonReplay(lctx, q, *topic, ids, *all, stdout)
}

// openPoison opens the poison queue of a Kafka deployment or of a `simpleci dev` data directory.
func openPoison(data string, kc bus.KafkaConfig, log *slog.Logger) (bus.PoisonQueue, func(), error) {
	switch {
	case len(kc.Brokers) > 0:
		b, err := bus.NewKafka(kc, log)
		if err != nil {
			return nil, nil, err
		}
		return b.Poison(), func() { b.Close() }, nil
	case data != "":
		if _, err := os.Stat(data); err != nil {
			return nil, nil, fmt.Errorf("poison: %w", err)
		}
		return bus.OpenPoisonDir(nodebus.PoisonDir(data)), func() {}, nil
	}
	return nil, nil, errors.New("poison: give --kafka-brokers B (or SIMPLECI_KAFKA_BROKERS) or --data DIR of `simpleci dev`")
}

// poisonList prints the poisoned messages, oldest first.
func poisonList(ctx context.Context, q bus.PoisonQueue, topic string, limit int, stdout io.Writer) error {
	ps, err := q.List(ctx, topic, limit)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tTOPIC\tGROUP\tTYPE\tMESSAGE\tPOISONED AT\tERROR")
	for _, p := range ps {
		msg, _, _ := strings.Cut(p.Error, "\n")
		if len(msg) > 120 {
			msg = msg[:117] + "..."
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Topic, p.Group, p.Message.Type, p.Message.ID,
			p.At.UTC().Format(time.RFC3339), msg)
	}
	return w.Flush()
}

// poisonReplay re-publishes the poisoned messages named by ids (or all of topic) to their
// original topics.
func poisonReplay(ctx context.Context, q bus.PoisonQueue, topic string, ids []string, all bool, stdout io.Writer) error {
	if all == (len(ids) > 0) {
		return errors.New(poisonUsage)
	}
	ps, err := q.List(ctx, topic, 0)
	if err != nil {
		return err
	}
	byID := make(map[string]bus.Poisoned, len(ps))
	for _, p := range ps {
		byID[p.ID] = p
	}
	if !all {
		ps = ps[:0]
		for _, id := range ids {
			p, ok := byID[id]
			if !ok {
				return fmt.Errorf("poison: no poisoned message %s (see simpleci admin poison list)", id)
			}
			ps = append(ps, p)
		}
	}
	_, deferred := q.(*bus.PoisonDir)
	for _, p := range ps {
		if err := q.Replay(ctx, p); err != nil {
			return err
		}
		if deferred {
			fmt.Fprintf(stdout, "%s: message %s queued for replay to %s (by the running simpleci dev, or the next one started on this directory)\n", p.ID, p.Message.ID, p.Topic)
		} else {
			fmt.Fprintf(stdout, "%s: message %s replayed to %s\n", p.ID, p.Message.ID, p.Topic)
		}
	}
	return nil
}
