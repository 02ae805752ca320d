package service

import (
	"context"
	"flag"
	"path/filepath"
	"time"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodebus"
	"github.com/simpleci/simpleci/libs/platform/node/nodeforge"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
)

// Component runs a runner in a node process, as its worker: at the process's first
// signal it claims no new job and finishes the one in progress (for at most
// DrainTimeout) while the scheduler and the log service still answer; at the second it
// hands the job back.
type Component struct {
	// Tiers the runner serves (default standard).
	Tiers []string
	// ID names the runner (default: the host name).
	ID string
	// DrainTimeout: see Config (the flag's default is 10 minutes; 0 stops the job at once).
	DrainTimeout time.Duration
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
	fs.StringVar(&c.ID, "runner-id", node.Getenv("SIMPLECI_RUNNER_ID", ""), "runner: its name (default: the host name)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 10*time.Minute, "runner: on SIGTERM, how long the job in progress may still run")
}

// Validate implements node.Validator.
func (c *Component) Validate(cfg *node.Config) []string {
	return cfg.RequirePeers("runner", "scheduler")
}

// Init implements node.Component.
func (c *Component) Init(ctx context.Context, env *node.Env) error {
	sc, err := env.Dial("scheduler")
	if err != nil {
		return err
	}
	b, err := nodebus.Open(ctx, env)
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
	r, err := New(Config{ID: c.ID, Tiers: c.Tiers, WorkDir: workDir, DrainTimeout: c.DrainTimeout,
		Scheduler: runnerv1.NewRunnerServiceClient(sc), Bus: b, Forges: forges, Log: env.Log})
	if err != nil {
		return err
	}
	env.Worker(func(ctx, abort context.Context) { r.Run(ctx, abort) })
	return nil
}
