package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodeforge"
	"github.com/simpleci/simpleci/libs/sandbox"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
)

// Component runs a runner in a node process, as its worker: at the process's first
// signal it claims no new job and finishes the ones in progress (for at most
// DrainTimeout) while the scheduler and the log service still answer; at the second it
// hands them back.
//
// The runner calls the scheduler and the log service (its jobs' output, under each job's
// log grant) with its own token (Token, TokenFile: issued by
// `simpleci runners register NAME`), which opens the runner protocol only, for the jobs
// it holds. Only a runner in a process that holds the deployment secret anyway (with
// the scheduler, as in `simpleci dev`) may go without one: it mints its identity.
type Component struct {
	// Tiers the runner serves (default standard).
	Tiers []string
	// ID names the runner (default: the name in its token, else the host name).
	ID string
	// Token is the runner's token (SIMPLECI_RUNNER_TOKEN); TokenFile a file holding it.
	Token, TokenFile string
	// Jobs is how many jobs the runner runs at once (--jobs, SIMPLECI_RUNNER_JOBS); 0 is
	// the number of CPUs.
	Jobs int
	// DrainTimeout: see Config (the flag's default is 10 minutes; 0 stops the jobs at once).
	DrainTimeout time.Duration
	// AllowWeakIsolation: see Config.
	AllowWeakIsolation bool
	// DenyNetworks and AllowNetworks are the CIDR ranges of --deny-network and
	// --allow-job-network, parsed by Validate.
	DenyNetworks, AllowNetworks []string

	deny, allow []netip.Prefix
	weakEnvErr  string
	jobsEnvErr  string
}

// Name implements node.Component.
func (c *Component) Name() string { return "runner" }

// Flags implements node.Flagger.
func (c *Component) Flags(fs *flag.FlagSet) {
	fs.Func("runner-tiers", "runner: tiers served, comma-separated (SIMPLECI_RUNNER_TIERS; default standard)", func(v string) error {
		c.Tiers = node.Split(v)
		return nil
	})
	c.Tiers = node.Split(node.Getenv("SIMPLECI_RUNNER_TIERS", "standard"))
	fs.StringVar(&c.ID, "runner-id", node.Getenv("SIMPLECI_RUNNER_ID", ""), "runner: its name (default: the name in its token)")
	fs.StringVar(&c.TokenFile, "runner-token-file", node.Getenv("SIMPLECI_RUNNER_TOKEN_FILE", ""), "runner: file with its token (or SIMPLECI_RUNNER_TOKEN; from `simpleci runners register NAME`)")
	c.Token = os.Getenv("SIMPLECI_RUNNER_TOKEN")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Minute, "runner: on SIGTERM, how long the jobs in progress may still run")
	c.JobsFlag(fs)
	c.IsolationFlags(fs, false)
}

// JobsFlag registers --jobs (SIMPLECI_RUNNER_JOBS); `simpleci dev` calls it too.
func (c *Component) JobsFlag(fs *flag.FlagSet) {
	if v := os.Getenv("SIMPLECI_RUNNER_JOBS"); v != "" {
		n, err := parseJobs(v)
		if err != nil {
			c.jobsEnvErr = fmt.Sprintf("SIMPLECI_RUNNER_JOBS=%q: %v", v, err)
		}
		c.Jobs = n
	}
	fs.Func("jobs", fmt.Sprintf("runner: how many jobs run at once, each in its own workspace and sandbox with its tier's limits (SIMPLECI_RUNNER_JOBS; default the number of CPUs, here %d)", runtime.NumCPU()),
		func(v string) error {
			n, err := parseJobs(v)
			c.Jobs = n
			return err
		})
}

// parseJobs reads a number of jobs at once: at least 1.
func parseJobs(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 1 {
		return 0, errors.New("want a number of jobs at once, at least 1")
	}
	return n, nil
}

// jobs is the number of jobs at once: Jobs, or the number of CPUs.
func (c *Component) jobs() int {
	if c.Jobs > 0 {
		return c.Jobs
	}
	return runtime.NumCPU()
}

// IsolationFlags registers the sandbox's flags: --allow-weak-isolation (default
// allowWeak unless SIMPLECI_ALLOW_WEAK_ISOLATION says otherwise), --deny-network and
// --allow-job-network. `simpleci dev` calls it with allowWeak true.
func (c *Component) IsolationFlags(fs *flag.FlagSet, allowWeak bool) {
	if v := os.Getenv("SIMPLECI_ALLOW_WEAK_ISOLATION"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			c.weakEnvErr = fmt.Sprintf("SIMPLECI_ALLOW_WEAK_ISOLATION=%q: want true or false", v)
		}
		allowWeak = b
	}
	fs.BoolVar(&c.AllowWeakIsolation, "allow-weak-isolation", allowWeak,
		"runner: run jobs even when the machine lacks isolation layers (root, cgroups, bubblewrap, slirp4netns), with a warning in every run's log (SIMPLECI_ALLOW_WEAK_ISOLATION)")
	c.DenyNetworks = node.Split(os.Getenv("SIMPLECI_DENY_NETWORK"))
	fs.Func("deny-network", "runner: an IPv4 range (CIDR) jobs with the network on may not reach, besides the host, private and link-local ones (repeatable; SIMPLECI_DENY_NETWORK, comma-separated)", func(v string) error {
		c.DenyNetworks = append(c.DenyNetworks, v)
		return nil
	})
	c.AllowNetworks = node.Split(os.Getenv("SIMPLECI_ALLOW_JOB_NETWORK"))
	fs.Func("allow-job-network", "runner: a part of the private ranges (CIDR) jobs with the network on may reach after all (repeatable; SIMPLECI_ALLOW_JOB_NETWORK, comma-separated)", func(v string) error {
		c.AllowNetworks = append(c.AllowNetworks, v)
		return nil
	})
}

// Validate implements node.Validator.
func (c *Component) Validate(cfg *node.Config) []string {
	problems := cfg.RequirePeers("runner", "scheduler", "log")
	if c.weakEnvErr != "" {
		problems = append(problems, "runner: "+c.weakEnvErr)
	}
	if c.jobsEnvErr != "" {
		problems = append(problems, "runner: "+c.jobsEnvErr)
	}
	var err error
	if c.deny, err = sandbox.ParseNetworks(c.DenyNetworks, false); err != nil {
		problems = append(problems, "runner: --deny-network: "+err.Error())
	}
	if c.allow, err = sandbox.ParseNetworks(c.AllowNetworks, true); err != nil {
		problems = append(problems, "runner: --allow-job-network: "+err.Error())
	}
	return append(problems, c.credentials(cfg)...)
}

// credentials checks how the runner authenticates: its own token (its name comes from
// it), or, in a process holding the deployment secret anyway, none.
func (c *Component) credentials(cfg *node.Config) []string {
	var problems []string
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return append(problems, fmt.Sprintf("runner: --runner-token-file: %v", err))
		}
		if c.Token != "" && strings.TrimSpace(string(b)) != c.Token {
			return append(problems, "runner: both SIMPLECI_RUNNER_TOKEN and --runner-token-file are set, to different tokens: keep one")
		}
		c.Token = strings.TrimSpace(string(b))
	}
	if c.Token == "" {
		if !cfg.Has("scheduler") && cfg.InternalToken == "" {
			problems = append(problems, "runner: no runner token: register the runner (simpleci runners register NAME, as an admin) "+
				"and give it the token (SIMPLECI_RUNNER_TOKEN or --runner-token-file)")
		}
		if c.ID != "" {
			if err := auth.ValidRunnerName(c.ID); err != nil {
				problems = append(problems, "runner: --runner-id: "+err.Error())
			}
		}
		return problems
	}
	name, err := auth.RunnerTokenName(c.Token)
	if err != nil {
		return append(problems, "runner: the runner token: "+err.Error())
	}
	if c.ID != "" && c.ID != name {
		problems = append(problems, fmt.Sprintf("runner: --runner-id %s differs from the name its token was registered as (%s): drop --runner-id", c.ID, name))
	}
	c.ID = name
	return problems
}

var notInName = regexp.MustCompile(`[^a-z0-9-]+`)

// localName is the name of a runner without a token of its own: its --runner-id, else
// the host name made a valid runner name.
func (c *Component) localName() string {
	if c.ID != "" {
		return c.ID
	}
	h, _ := os.Hostname()
	h = strings.Trim(notInName.ReplaceAllString(strings.ToLower(h), "-"), "-")
	if len(h) > 63 {
		h = h[:63]
	}
	if auth.ValidRunnerName(h) != nil {
		return "local"
	}
	return h
}

// Init implements node.Component.
func (c *Component) Init(ctx context.Context, env *node.Env) error {
	token := c.Token
	if token == "" {
		// In a process holding the deployment secret (the scheduler's, or `simpleci
		// dev`): the runner's identity is minted, limited like a registered runner's.
		c.ID = c.localName()
		var err error
		if token, err = env.IdentityToken(auth.RunnerIdentity(c.ID)); err != nil {
			return fmt.Errorf("runner %s: %w", c.ID, err)
		}
	}
	sc, err := env.DialToken("scheduler", token)
	if err != nil {
		return err
	}
	lc, err := env.DialToken("log", token)
	if err != nil {
		return err
	}
	forges, err := nodeforge.Open(env)
	if err != nil {
		return err
	}
	workDir := ""
	if env.Config.DataDir != "" {
		workDir = filepath.Join(env.Config.DataDir, "workspaces")
	}
	r, err := New(Config{ID: c.ID, Tiers: c.Tiers, WorkDir: workDir, Jobs: c.jobs(), DrainTimeout: c.DrainTimeout,
		AllowWeakIsolation: c.AllowWeakIsolation, DenyNetworks: c.deny, AllowNetworks: c.allow,
		Scheduler: runnerv1.NewRunnerServiceClient(sc), Logs: runnerv1.NewRunnerLogServiceClient(lc),
		Files: runnerv1.NewRunnerFilesServiceClient(lc), Forges: forges, Log: env.Log})
	if err != nil {
		return err
	}
	// A runner that refuses jobs for want of isolation is not ready: /readyz names
	// the missing layers.
	env.Checks.Add("isolation", func(context.Context) error { return r.Refusing() })
	env.Worker(func(ctx, abort context.Context) { r.Run(ctx, abort) })
	return nil
}
