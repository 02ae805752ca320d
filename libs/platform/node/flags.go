package node

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/simpleci/simpleci/libs/platform/telemetry"
)

// Getenv returns the environment variable name, or def when it is unset or empty.
func Getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Split splits a comma-separated list, dropping empty items.
func Split(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// PeerServices are the services whose address a process may be given (--NAME-addr).
var PeerServices = []string{"auth", "project", "scheduler", "log"}

// ServeFlags registers the flags every `serve` process takes (the services' own come
// from their components) and returns a function that fills cfg after parsing.
func ServeFlags(fs *flag.FlagSet) func() Config {
	dbURL := fs.String("database-url", Getenv("SIMPLECI_DATABASE_URL", ""), "PostgreSQL URL (postgres://...)")
	brokers := fs.String("kafka-brokers", Getenv("SIMPLECI_KAFKA_BROKERS", ""), "Kafka brokers, comma-separated (empty: in-process bus)")
	namespace := fs.String("kafka-namespace", Getenv("SIMPLECI_KAFKA_NAMESPACE", ""), "prefix of every Kafka topic and consumer group, for deployments sharing a Kafka cluster")
	grpcAddr := fs.String("grpc", Getenv("SIMPLECI_GRPC_ADDR", ":9090"), "gRPC address")
	httpAddr := fs.String("http", Getenv("SIMPLECI_HTTP_ADDR", ":8080"), "HTTP address (REST, webhooks, health, metrics)")
	data := fs.String("data", Getenv("SIMPLECI_DATA", ""), "data directory (mirrors, workspaces)")
	token := fs.String("internal-token", Getenv("SIMPLECI_INTERNAL_TOKEN", ""), "token services present to each other")
	repoFlags := RepoFlags(fs)
	peers := map[string]*string{}
	for _, s := range PeerServices {
		peers[s] = fs.String(s+"-addr", Getenv("SIMPLECI_"+strings.ToUpper(s)+"_ADDR", ""), "gRPC address of the "+s+" service when it runs elsewhere")
	}
	return func() Config {
		repos := repoFlags()
		cfg := Config{DatabaseURL: *dbURL, KafkaBrokers: Split(*brokers), KafkaNamespace: *namespace, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr,
			DataDir: *data, InternalToken: *token, Peers: map[string]string{}, LocalRepos: repos.LocalRepos,
			AllowRepoNetworks: repos.AllowRepoNetworks, GitHub: repos.GitHub}
		for s, v := range peers {
			cfg.Peers[s] = *v
		}
		return cfg
	}
}

// Repos is where projects' repositories may be: see Config.LocalRepos,
// Config.AllowRepoNetworks and Config.GitHub.
type Repos struct {
	LocalRepos, AllowRepoNetworks []string
	GitHub                        GitHub
}

// RepoFlags registers --local-repos and --allow-repo-network (both repeatable or
// comma-separated; without them SIMPLECI_LOCAL_REPOS / SIMPLECI_ALLOW_REPO_NETWORK,
// comma-separated), --github-url, --github-api-url and --github-token-file
// (SIMPLECI_GITHUB_URL, SIMPLECI_GITHUB_API_URL, SIMPLECI_GITHUB_TOKEN_FILE) and
// returns a function that gives their values after parsing.
func RepoFlags(fs *flag.FlagSet) func() Repos {
	var roots, networks listValue
	fs.Var(&roots, "local-repos", "directory under which projects' local repository paths may lie (repeatable; none: no path repositories)")
	fs.Var(&networks, "allow-repo-network", "CIDR that repository URLs may reach although it is loopback, private or link-local (repeatable)")
	var gh GitHub
	SharedString(fs, &gh.URL, "github-url", Getenv("SIMPLECI_GITHUB_URL", "https://github.com"), "GitHub's web and git base URL (GitHub Enterprise Server: https://HOST)")
	SharedString(fs, &gh.APIURL, "github-api-url", Getenv("SIMPLECI_GITHUB_API_URL", "https://api.github.com/"), "GitHub's REST API base URL (GitHub Enterprise Server: https://HOST/api/v3/)")
	fs.StringVar(&gh.TokenFile, "github-token-file", Getenv("SIMPLECI_GITHUB_TOKEN_FILE", ""), "file holding the GitHub token the server reads repositories, clones and posts commit statuses with; set, it enables the github provider")
	appID := Getenv("SIMPLECI_GITHUB_APP_ID", "")
	fs.Func("github-app-id", "the GitHub App the server acts as (with --github-app-key-file, instead of --github-token-file): repositories are read, cloned, hooked and reported on as the app's installation, and runs show as check runs", func(v string) error {
		appID = v
		return nil
	})
	fs.StringVar(&gh.AppKeyFile, "github-app-key-file", Getenv("SIMPLECI_GITHUB_APP_KEY_FILE", ""), "file holding the GitHub App's private key (PEM), with --github-app-id")
	return func() Repos {
		r := Repos{LocalRepos: roots, AllowRepoNetworks: networks, GitHub: gh}
		if appID != "" {
			// A bad id is refused where the forge is opened (nodeforge), with the others.
			r.GitHub.AppID, _ = strconv.ParseInt(appID, 10, 64)
			if r.GitHub.AppID <= 0 {
				r.GitHub.AppID = -1
			}
		}
		if len(r.LocalRepos) == 0 {
			r.LocalRepos = Split(Getenv("SIMPLECI_LOCAL_REPOS", ""))
		}
		if len(r.AllowRepoNetworks) == 0 {
			r.AllowRepoNetworks = Split(Getenv("SIMPLECI_ALLOW_REPO_NETWORK", ""))
		}
		return r
	}
}

// SharedString registers a string flag that several components take (--github-url
// for the github forge and for sign-in, --public-url for the scheduler and auth): the
// first registration defines it, later ones get the same value in their own variable.
// Registering a name that was defined otherwise panics, like flag's own redefinition.
func SharedString(fs *flag.FlagSet, p *string, name, value, usage string) {
	if f := fs.Lookup(name); f != nil {
		s, ok := f.Value.(*sharedString)
		if !ok {
			panic(fmt.Sprintf("flag %s is defined twice, not as a shared flag", name))
		}
		s.dsts = append(s.dsts, p)
		*p = s.val
		return
	}
	*p = value
	fs.Var(&sharedString{dsts: []*string{p}, val: value}, name, usage)
}

// sharedString is the flag.Value of SharedString.
type sharedString struct {
	dsts []*string
	val  string
}

func (s *sharedString) String() string {
	if s == nil {
		return ""
	}
	return s.val
}

func (s *sharedString) Set(v string) error {
	s.val = v
	for _, d := range s.dsts {
		*d = v
	}
	return nil
}

// listValue is a repeatable, comma-separated flag.
type listValue []string

func (l *listValue) String() string { return strings.Join(*l, ",") }

func (l *listValue) Set(v string) error {
	*l = append(*l, Split(v)...)
	return nil
}

// Logger returns the process's text logger on w (debug with SIMPLECI_DEBUG set).
func Logger(w io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("SIMPLECI_DEBUG") != "" {
		level = slog.LevelDebug
	}
	// Lines logged with a context in a span carry its trace_id and span_id.
	return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})))
}

// Signals returns stop, which ends at the first SIGINT or SIGTERM, and abort, which
// ends at the second; release stops listening (a later signal then kills the process).
func Signals() (stop, abort context.Context, release func()) {
	stop, stopCancel := context.WithCancel(context.Background())
	abort, abortCancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for n := 0; n < 2; n++ {
			select {
			case <-ch:
			case <-done:
				return
			}
			if n == 0 {
				stopCancel()
			} else {
				abortCancel()
			}
		}
	}()
	return stop, abort, func() {
		signal.Stop(ch)
		close(done)
		stopCancel()
		abortCancel()
	}
}
