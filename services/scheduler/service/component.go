package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/simpleci/simpleci/libs/forge"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/pipeline"
	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/node/nodebus"
	"github.com/simpleci/simpleci/libs/platform/node/nodeforge"
	"github.com/simpleci/simpleci/libs/platform/node/nodesql"
	"github.com/simpleci/simpleci/libs/platform/ratelimit"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
)

// Component runs the scheduler in a node process.
type Component struct {
	// TierSpecs override or add tiers (see ParseTiers); SIMPLECI_TIERS comes first.
	TierSpecs []string
	// LeaseDuration of claimed jobs (default 30 s).
	LeaseDuration time.Duration
	// LostRunRetries: see Config.
	LostRunRetries int
	// TriggerLimits: see Config (--trigger-rate; TriggerFlag sets the default).
	TriggerLimits ratelimit.Limits
	// PublicURL: see Config (--public-url).
	PublicURL string
	// Service is the running service (set by Init).
	Service *Service
}

// Name implements node.Component.
func (c *Component) Name() string { return "scheduler" }

// TierFlag adds the repeatable --tier flag (shared by `simpleci dev` and `serve`).
func (c *Component) TierFlag(fs *flag.FlagSet, usagePrefix string) {
	fs.Func("tier", usagePrefix+"override a tier (repeatable), e.g. standard:timeout=60s,memory=2GiB,pids=1024,cpus=1,log-step=16MiB,log-run=64MiB (SIMPLECI_TIERS, ';'-separated)",
		func(v string) error { c.TierSpecs = append(c.TierSpecs, v); return nil })
}

// TriggerFlag adds --trigger-rate (shared by `simpleci dev` and `serve`).
func (c *Component) TriggerFlag(fs *flag.FlagSet, usagePrefix string) {
	c.TriggerLimits = DefaultTriggerLimits
	fs.Func("trigger-rate", fmt.Sprintf("%smanual triggers per project, N/s, N/m or N/h with ,burst=B, or off; past it 429 with Retry-After (default %s)", usagePrefix, DefaultTriggerLimits),
		func(v string) (err error) { c.TriggerLimits, err = ratelimit.ParseLimits(v); return err })
}

// PublicURLFlag registers --public-url (SIMPLECI_PUBLIC_URL).
func (c *Component) PublicURLFlag(fs *flag.FlagSet, usagePrefix string) {
	node.SharedString(fs, &c.PublicURL, "public-url", node.Getenv("SIMPLECI_PUBLIC_URL", ""), usagePrefix+"URL users reach this deployment at (https://ci.example.com/); commit statuses link to its runs")
}

// Flags implements node.Flagger.
func (c *Component) Flags(fs *flag.FlagSet) {
	c.TierFlag(fs, "scheduler: ")
	c.TriggerFlag(fs, "scheduler: ")
	c.PublicURLFlag(fs, "scheduler: ")
	fs.DurationVar(&c.LeaseDuration, "lease", 30*time.Second, "scheduler: job lease duration")
	fs.IntVar(&c.LostRunRetries, "lost-run-retries", 1, "scheduler: how often a run whose runner was lost runs again on another runner (0: it fails)")
}

// Tiers returns the default tiers with SIMPLECI_TIERS and TierSpecs applied.
func (c *Component) Tiers() (map[string]Tier, error) {
	overrides, err := ParseTiers(append([]string{os.Getenv("SIMPLECI_TIERS")}, c.TierSpecs...))
	if err != nil {
		return nil, err
	}
	tiers := DefaultTiers()
	for name, o := range overrides {
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
		if o.Steps > 0 {
			t.Steps = o.Steps
		}
		if o.StepLog > 0 {
			t.StepLog = o.StepLog
		}
		if o.RunLog > 0 {
			t.RunLog = o.RunLog
		}
		if o.Queue > 0 {
			t.Queue = o.Queue
		}
		if t.Steps <= 0 {
			t.Steps = pipeline.DefaultMaxSteps
		}
		if t.Queue <= 0 {
			t.Queue = DefaultQueue
		}
		if t.RunLog <= 0 {
			t.RunLog = max(DefaultRunLog, t.StepLog)
		}
		if t.StepLog <= 0 {
			t.StepLog = min(DefaultStepLog, t.RunLog)
		}
		if t.StepLog > t.RunLog {
			return nil, fmt.Errorf("tier %s: log-step (%d bytes) is larger than log-run (%d bytes)", name, t.StepLog, t.RunLog)
		}
		if t.Timeout <= 0 {
			return nil, fmt.Errorf("tier %s: a new tier needs a timeout", name)
		}
		tiers[name] = t
	}
	return tiers, nil
}

// Validate implements node.Validator.
func (c *Component) Validate(cfg *node.Config) []string {
	problems := append(cfg.RequireDatabase("scheduler"), cfg.RequirePeers("scheduler", "project", "auth")...)
	if _, err := c.Tiers(); err != nil {
		problems = append(problems, err.Error())
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			problems = append(problems, fmt.Sprintf("--public-url %q: want an http(s) URL with a host and no credentials, such as https://ci.example.com/", forge.Redact(c.PublicURL)))
		}
	}
	return problems
}

// Init implements node.Component.
func (c *Component) Init(ctx context.Context, env *node.Env) error {
	tiers, err := c.Tiers()
	if err != nil {
		return err
	}
	db, err := nodesql.Open(ctx, env, "scheduler")
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
	pc, err := env.Dial("project")
	if err != nil {
		return err
	}
	clock, tick, err := testClock(os.Getenv("SIMPLECI_TEST_CLOCK"))
	if err != nil {
		return err
	}
	c.Service, err = New(ctx, Config{DB: db, Bus: b, Forges: forges, Projects: apiv1.NewProjectInternalServiceClient(pc),
		Log: env.Log, Secret: env.Config.InternalToken, Tiers: tiers, LeaseDuration: c.LeaseDuration, LostRunRetries: c.LostRunRetries,
		TriggerLimits: c.TriggerLimits, PublicURL: c.PublicURL, Clock: clock, ScheduleTick: tick})
	if err != nil {
		return err
	}
	c.Service.Register(env.GRPC)
	env.OnStart(c.Service.Start)
	return nil
}

// testClock reads SIMPLECI_TEST_CLOCK, which only tests set (never a deployment): it
// makes the schedules' clock run fast from a fixed start, the same in every process
// given the same value, so that an end-to-end test sees many slots in seconds. The
// value is REAL/FAKE/SPEED, two RFC 3339 times and a factor: at real time REAL the clock
// reads FAKE and it runs SPEED times as fast; the schedules are then checked every
// 10 s of that clock (at least every 10 ms of real time). Empty: the real clock (nil) and the default tick.
func testClock(v string) (func() time.Time, time.Duration, error) {
	if v == "" {
		return nil, 0, nil
	}
	bad := fmt.Errorf("SIMPLECI_TEST_CLOCK %q: want REAL/FAKE/SPEED such as 2026-01-01T00:00:00Z/2030-01-01T00:00:00Z/60 (tests only)", v)
	parts := strings.Split(v, "/")
	if len(parts) != 3 {
		return nil, 0, bad
	}
	real0, err1 := time.Parse(time.RFC3339Nano, parts[0])
	fake0, err2 := time.Parse(time.RFC3339Nano, parts[1])
	speed, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || speed <= 0 {
		return nil, 0, bad
	}
	clock := func() time.Time { return fake0.Add(time.Duration(float64(time.Since(real0)) * speed)) }
	return clock, max(time.Duration(float64(10*time.Second)/speed), 10*time.Millisecond), nil
}

// ParseTiers reads tier overrides, each "NAME:KEY=VALUE,..." with the keys timeout
// (a duration), queue (how long a run may wait for a runner, a duration), memory (bytes, or with KiB/MiB/GiB), pids, cpus, steps, and log-step and
// log-run (the output caps of a step and of a run, sizes like memory), e.g.
// "standard:timeout=60s,memory=2GiB". Several are separated by ";".
func ParseTiers(specs []string) (map[string]Tier, error) {
	out := map[string]Tier{}
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
				case "queue":
					t.Queue, err = time.ParseDuration(v)
					if err == nil && t.Queue <= 0 {
						err = errors.New("must be positive")
					}
				case "log-step":
					t.StepLog, err = parseSize(v)
				case "log-run":
					t.RunLog, err = parseSize(v)
				case "steps":
					t.Steps, err = strconv.Atoi(v)
					if err == nil && (t.Steps <= 0 || t.Steps > 100000) {
						err = errors.New("must be between 1 and 100000")
					}
				default:
					err = errors.New("unknown key (timeout, queue, memory, pids, cpus, steps, log-step, log-run)")
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
