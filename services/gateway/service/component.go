package service

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodebus"
	"github.com/simpleci/simpleci/libs/platform/node/nodeforge"
	"github.com/simpleci/simpleci/libs/platform/node/nodesql"
	"github.com/simpleci/simpleci/libs/platform/ratelimit"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
)

// Component runs the gateway in a node process: the REST API and webhook intake on the
// process's HTTP server.
type Component struct {
	// WebhookLimits bound each project's webhook deliveries (--webhook-rate; Flags sets
	// the default, DefaultWebhookLimits; zero is off).
	WebhookLimits ratelimit.Limits
	// ReplayWindow is how long accepted webhook bodies are remembered (--webhook-replay-window).
	ReplayWindow time.Duration
	// StreamsPerToken bounds the log streams one token holds open at once (0: the default).
	StreamsPerToken int
	// AuthHTTPURL is the auth service's HTTP address (--auth-http-url): set, and the
	// auth service not in this process, /auth/ is forwarded there (authproxy.go).
	AuthHTTPURL string
}

// Name implements node.Component.
func (*Component) Name() string { return "gateway" }

// Flags implements node.Flagger (`simpleci dev` adds them too).
func (c *Component) Flags(fs *flag.FlagSet) {
	c.WebhookLimits, c.ReplayWindow = DefaultWebhookLimits, DefaultReplayWindow
	fs.Func("webhook-rate", fmt.Sprintf("gateway: webhook deliveries per project, N/s, N/m or N/h with ,burst=B, or off; past it 429 with Retry-After (default %s)", DefaultWebhookLimits),
		func(v string) (err error) { c.WebhookLimits, err = ratelimit.ParseLimits(v); return err })
	fs.DurationVar(&c.ReplayWindow, "webhook-replay-window", DefaultReplayWindow, "gateway: how long an accepted webhook body is remembered; the same body under a new delivery id is refused (409) within it")
	fs.StringVar(&c.AuthHTTPURL, "auth-http-url", node.Getenv("SIMPLECI_AUTH_HTTP_URL", ""), "gateway: the auth service's HTTP address (http://HOST:PORT); set, the gateway forwards /auth/ (sign-in with GitHub) there, so browsers need only the gateway")
	fs.IntVar(&c.StreamsPerToken, "log-streams-per-token", DefaultMaxStreamsPerToken, "gateway: most live log streams (SSE) one API token may hold open at once in this process (429 past it)")
}

// Validate implements node.Validator.
func (c *Component) Validate(cfg *node.Config) []string {
	problems := append(cfg.RequireDatabase("gateway"), cfg.RequirePeers("gateway", "auth", "project", "scheduler", "log")...)
	if c.ReplayWindow < 0 {
		problems = append(problems, "--webhook-replay-window must not be negative")
	}
	if c.AuthHTTPURL != "" {
		if _, err := ParseAuthHTTPURL(c.AuthHTTPURL); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return problems
}

// Init implements node.Component.
func (c *Component) Init(ctx context.Context, env *node.Env) error {
	cfg := Config{WebhookLimits: c.WebhookLimits, ReplayWindow: c.ReplayWindow, MaxStreamsPerToken: c.StreamsPerToken}
	var err error
	if cfg.Projects, err = env.DialForwarding("project"); err != nil {
		return err
	}
	if cfg.Scheduler, err = env.DialForwarding("scheduler"); err != nil {
		return err
	}
	if cfg.Logs, err = env.DialForwarding("log"); err != nil {
		return err
	}
	if cfg.Auth, err = env.DialForwarding("auth"); err != nil {
		return err
	}
	ic, err := env.Dial("project")
	if err != nil {
		return err
	}
	cfg.Internal = apiv1.NewProjectInternalServiceClient(ic)
	sc, err := env.Dial("scheduler")
	if err != nil {
		return err
	}
	cfg.Tiers = servedTiers(apiv1.NewRunServiceClient(sc))
	if cfg.Bus, err = nodebus.Open(ctx, env); err != nil {
		return err
	}
	if cfg.Forges, err = nodeforge.Open(env); err != nil {
		return err
	}
	// Accepted deliveries wait in the gateway's database until the bus takes them.
	if cfg.DB, err = nodesql.Open(ctx, env, "gateway"); err != nil {
		return err
	}
	cfg.Log = env.Log
	api := http.NewServeMux()
	if err := Register(ctx, api, cfg); err != nil {
		return err
	}
	env.Mux.Handle("/", intakeGate(api, env.Draining()))
	if c.AuthHTTPURL != "" && !env.Config.Has("auth") { // in one process the auth component serves /auth/ itself
		target, err := ParseAuthHTTPURL(c.AuthHTTPURL)
		if err != nil {
			return err
		}
		env.Mux.Handle("/auth/", authProxy(target, env.Log))
	}
	return nil
}

// intakeGate refuses manual triggers once the process drains, with 503 and Retry-After,
// so that nothing new starts while it stops; reads and cancels still pass. Webhooks are
// still accepted: they are recorded in the gateway's database (intake.go) and forwarded
// once a gateway runs again, and a forge such as GitHub does not retry a refused delivery.
func intakeGate(next http.Handler, draining <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && isTrigger(r.URL.Path) {
			select {
			case <-draining:
				w.Header().Set("Retry-After", "5")
				writeError(w, http.StatusServiceUnavailable, codes.Unavailable, "SimpleCI is shutting down and takes no new runs here: retry in a few seconds")
				return
			default:
			}
		}
		next.ServeHTTP(w, r)
	})
}

// isTrigger reports whether path is a manual trigger.
func isTrigger(path string) bool {
	rest, ok := strings.CutPrefix(path, "/api/v1/projects/")
	return ok && strings.HasSuffix(rest, "/runs") && strings.Count(rest, "/") == 1
}

// servedTiers asks the scheduler which tiers it serves, at most every 10 s (a failure
// too is remembered for 10 s, so that API requests do not wait on a scheduler that is down).
func servedTiers(c apiv1.RunServiceClient) func(context.Context) ([]string, error) {
	var mu sync.Mutex
	var last []string
	var lastErr error
	var at time.Time
	return func(ctx context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < 10*time.Second {
			return last, lastErr
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		at = time.Now()
		resp, err := c.ListTiers(ctx, &apiv1.ListTiersRequest{})
		if lastErr = err; err != nil {
			return last, err
		}
		last = []string{}
		for _, t := range resp.GetTiers() {
			last = append(last, t.GetName())
		}
		return last, nil
	}
}
