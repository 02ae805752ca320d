// Package service is the scheduler: it owns the Run aggregate (event-sourced), turns
// RunRequested into queued jobs, hands jobs to runners that pull them under a lease,
// records what runners report and publishes every recorded run event.
package service

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/eventstore/postgres"
	"github.com/simpleci/simpleci/libs/eventstore/sqlite"
	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/leader"
	"github.com/simpleci/simpleci/libs/platform/ratelimit"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	"github.com/simpleci/simpleci/libs/platform/wake"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

// Tier is a runner class: the limits of a job and its run timeout.
type Tier struct {
	Name    string
	Memory  int64 // bytes
	Pids    int64 // processes and threads
	CPUs    float64
	Timeout time.Duration
	// Steps is the most steps a pipeline of this tier may have.
	Steps int
	// StepLog and RunLog cap the output kept of each step and of a run, in bytes: past
	// them the runner's engine discards the output (the log says so at the cut) and the
	// steps keep running.
	StepLog int64
	RunLog  int64
	// FilesBytes bounds one cache entry or artifact of a run (compressed), in bytes
	// (DefaultFilesBytes unless set).
	FilesBytes int64
	// Queue is how long a run may wait in the tier's queue for a runner before it ends
	// errored, saying why it waited (DefaultQueue unless set).
	Queue time.Duration
}

// DefaultQueue is how long a run waits for a runner at most by default (GitHub Actions
// gives a job on self-hosted runners 24 hours).
const DefaultQueue = 24 * time.Hour

// Default output caps of a tier (GitHub Actions keeps 64 MiB of a job's log).
const (
	DefaultStepLog = 16 << 20
	DefaultRunLog  = 64 << 20
)

// DefaultFilesBytes bounds a cache entry or artifact of a tier that sets no limit.
const DefaultFilesBytes = 2 << 30

// DefaultTiers are the seed's tiers (PIPELINE.md: memory and run timeout); the process,
// CPU and output limits are ours.
func DefaultTiers() map[string]Tier {
	return map[string]Tier{
		"standard": {Name: "standard", Memory: 1 << 30, Pids: 1024, CPUs: 1, Timeout: 150 * time.Second, Steps: 200,
			StepLog: DefaultStepLog, RunLog: DefaultRunLog, FilesBytes: 2 << 30, Queue: DefaultQueue},
		"medium": {Name: "medium", Memory: 4 << 30, Pids: 2048, CPUs: 2, Timeout: 300 * time.Second, Steps: 500,
			StepLog: 32 << 20, RunLog: 128 << 20, FilesBytes: 5 << 30, Queue: DefaultQueue},
		"large": {Name: "large", Memory: 8 << 30, Pids: 4096, CPUs: 4, Timeout: 540 * time.Second, Steps: 1000,
			StepLog: 64 << 20, RunLog: 256 << 20, FilesBytes: 10 << 30, Queue: DefaultQueue},
	}
}

// Config holds the scheduler's dependencies.
type Config struct {
	DB       *sqldb.DB
	Bus      bus.Bus
	Forges   *forge.Registry
	Projects apiv1.ProjectInternalServiceClient
	Log      *slog.Logger
	// Secret is the deployment secret (SIMPLECI_INTERNAL_TOKEN): the key of the log
	// grants a claimed job carries (auth.SignLogGrant), which the log service checks.
	Secret string
	// Tiers by name; nil means DefaultTiers.
	Tiers map[string]Tier
	// LeaseDuration is how long a claimed job lives without a heartbeat (default 30 s).
	LeaseDuration time.Duration
	// PipelinePath is the file read at the commit (default .simpleci/pipeline.json).
	PipelinePath string
	// LostRunRetries is how many times a run whose runner was lost is run again on
	// another runner before it fails with reason "runner lost"; 0 (the zero value) never
	// retries. `simpleci serve` and `simpleci dev` default to 1 (--lost-run-retries).
	LostRunRetries int
	// TimeoutGrace is how long after a run's timeout the scheduler ends a run whose runner
	// still did not (it stopped reporting but heartbeats, or its clock is wrong): the run
	// ends timed_out. Default 1 minute.
	TimeoutGrace time.Duration
	// TriggerLimits bound each project's manual triggers (ResourceExhausted with RetryInfo,
	// which the gateway answers 429 with Retry-After); zero: no limit (the component's
	// --trigger-rate defaults to DefaultTriggerLimits).
	TriggerLimits ratelimit.Limits
	// Clock tells the time of schedules (default time.Now): which slots are due, and
	// when a schedule was set. Tests move it (Component: SIMPLECI_TEST_CLOCK).
	Clock func() time.Time
	// ScheduleTick is how often the schedules are checked (default DefaultScheduleTick);
	// MissedSlotWindow how late a slot may still run (default DefaultMissedSlotWindow):
	// see docs/adr/0029-scheduled-runs.md.
	ScheduleTick     time.Duration
	MissedSlotWindow time.Duration
	// PublicURL is where users reach this deployment (--public-url, e.g.
	// https://ci.example.com/): commit statuses link to PublicURL/api/v1/runs/RUN.
	// Empty: statuses carry no link.
	PublicURL string
}

// DefaultTriggerLimits: a burst of 20 manual triggers, then one a second, per project.
var DefaultTriggerLimits = ratelimit.Limits{Rate: 1, Burst: 20}

// Service implements RunService and RunnerService.
type Service struct {
	apiv1.UnimplementedRunServiceServer
	runnerv1.UnimplementedRunnerServiceServer
	cfg   Config
	db    *sqldb.DB
	store eventstore.TxStore
	log   *slog.Logger

	queued  wake.Signal // a job was queued
	claimMu sync.Mutex  // claims of this process, one at a time (runner.go)
	// numbering holds a mutex per project id: runs of one project are queued one at a
	// time in this process (request.go).
	numbering sync.Map
	// runs caches the folded runs of this process's decisions (runcache.go).
	runs     *runCache
	appended wake.Signal        // events were appended to the store
	cancels  wake.Signal        // a running job was asked to stop
	triggers *ratelimit.Limiter // manual triggers per project

	// afterAppend, when set (tests only), runs inside every decision's transaction
	// between the append and the derived rows: a fault injected there must leave nothing.
	afterAppend func(context.Context, *sql.Tx) error
}

// New checks cfg, opens the event store in cfg.DB and creates the scheduler's tables.
func New(ctx context.Context, cfg Config) (*Service, error) {
	var missing []string
	if cfg.DB == nil {
		missing = append(missing, "DB")
	}
	if cfg.Bus == nil {
		missing = append(missing, "Bus")
	}
	if cfg.Forges == nil {
		missing = append(missing, "Forges")
	}
	if cfg.Projects == nil {
		missing = append(missing, "Projects")
	}
	if cfg.Secret == "" {
		missing = append(missing, "Secret (the deployment secret signs the runners' log grants)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("scheduler: missing %s", strings.Join(missing, ", "))
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Tiers == nil {
		cfg.Tiers = DefaultTiers()
	}
	if cfg.LeaseDuration <= 0 {
		cfg.LeaseDuration = 30 * time.Second
	}
	if cfg.TimeoutGrace <= 0 {
		cfg.TimeoutGrace = time.Minute
	}
	if cfg.LostRunRetries < 0 {
		cfg.LostRunRetries = 0
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ScheduleTick <= 0 {
		cfg.ScheduleTick = DefaultScheduleTick
	}
	if cfg.MissedSlotWindow <= 0 {
		cfg.MissedSlotWindow = DefaultMissedSlotWindow
	}
	if cfg.PipelinePath == "" {
		cfg.PipelinePath = ".simpleci/pipeline.json"
	}
	s := &Service{cfg: cfg, db: cfg.DB, log: cfg.Log.With("service", "scheduler"), runs: newRunCache(),
		triggers: ratelimit.New(cfg.TriggerLimits)}
	var err error
	if s.store, err = openStore(ctx, cfg.DB); err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	return s, nil
}

// tierNames lists the served tiers, sorted.
func (s *Service) tierNames() []string {
	names := make([]string, 0, len(s.cfg.Tiers))
	for n := range s.cfg.Tiers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// openStore opens the run event store kept in db.
func openStore(ctx context.Context, db *sqldb.DB) (eventstore.TxStore, error) {
	if db.Dialect == sqldb.Postgres {
		st := postgres.New(db.Pool)
		if err := st.Migrate(ctx); err != nil {
			return nil, fmt.Errorf("scheduler: event store: %w", err)
		}
		return st, nil
	}
	st := sqlite.New(db.DB)
	if err := st.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("scheduler: event store: %w", err)
	}
	return st, nil
}

// Group is the scheduler's consumer group on the run-requests topic (permanent).
const Group = "scheduler"

// Start subscribes to run requests and starts the lease reaper and the schedule loop;
// all stop with ctx.
func (s *Service) Start(ctx context.Context) error {
	err := s.cfg.Bus.Subscribe(ctx, event.TopicRunRequests, Group, event.Consumer(
		event.On(func(ctx context.Context, req *eventsv1.RunRequested) error {
			if _, err := s.requestRun(ctx, req, false); err != nil {
				if errors.Is(err, event.ErrTooLarge) { // no retry makes it smaller
					return bus.Permanent(err)
				}
				// Retried; poisoned only when it fails while the database and the project
				// service answer (an outage just delays the request).
				s.log.Warn("run request failed; will be retried", "run", req.GetRunId(), "err", err)
				return event.Transient(ctx, err, s.db.PingContext)
			}
			return nil
		})))
	if err != nil {
		return fmt.Errorf("scheduler: subscribe: %w", err)
	}
	go s.reapLeases(ctx)
	go s.scheduleLoop(ctx)
	observeGauges(s)
	// The followers of the log run once per deployment: on the scheduler replica that
	// holds the leadership (libs/platform/leader); another takes over within seconds
	// when it dies.
	go leader.Run(ctx, s.db, "scheduler-followers", leader.Options{Log: s.log}, func(ctx context.Context) {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); s.follow(ctx, "outbox", s.forward) }()
		go func() { defer wg.Done(); s.follow(ctx, "run-list", s.projectBatch) }()
		if s.reportsStatuses() {
			wg.Add(1)
			go func() { defer wg.Done(); s.followStatuses(ctx) }()
		}
		wg.Wait()
	})
	return nil
}

// reapLeases fails the runs whose runner stopped heartbeating, so that no run stays
// "running" forever.
func (s *Service) reapLeases(ctx context.Context) {
	// While no scheduler ran (a restart, a crash), runners could not heartbeat, and after
	// it they need a moment to reconnect (gRPC backs off): leases are judged only once a
	// whole lease has passed since this scheduler started, so that a scheduler restart
	// does not pass for lost runners.
	judgeFrom := time.Now().Add(s.cfg.LeaseDuration)
	t := time.NewTicker(s.cfg.LeaseDuration / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Now().Before(judgeFrom) {
			continue
		}
		for _, sweep := range []struct {
			column, what string
			act          func(ctx context.Context, runID, lease string) error
		}{{"lease_expires", "lost runner", s.loseRunner}, {"deadline", "overdue run", s.expire}} {
			jobs, err := s.runningPast(ctx, sweep.column)
			if err != nil {
				s.log.Error("find jobs past their "+sweep.column, "err", err)
				continue
			}
			for _, j := range jobs {
				if err := sweep.act(ctx, j.runID, j.lease); err != nil {
					s.log.Error("handle "+sweep.what, "run", j.runID, "err", err)
				}
			}
		}
		s.expireQueue(ctx)
		if err := s.supersede(ctx, "", ""); err != nil {
			s.log.Error("supersede runs", "err", err)
		}
	}
}

// expireQueue ends the runs that waited in their tier's queue longer than its Queue
// limit (domain.Run.ExpireQueue), each with why it waited.
func (s *Service) expireQueue(ctx context.Context) {
	now := time.Now()
	for _, name := range s.tierNames() {
		tier := s.cfg.Tiers[name]
		if tier.Queue <= 0 {
			continue
		}
		// created_at is when the run was first queued, no later than its current wait
		// began: a superset, which the decision narrows to runs whose wait is up.
		ids, err := s.queuedBefore(ctx, name, now.Add(-tier.Queue))
		if err != nil {
			s.log.Error("find runs queued too long", "tier", name, "err", err)
			return
		}
		for _, runID := range ids {
			why := strings.TrimPrefix(s.queuedReason(ctx, runID, name), "waiting: ")
			r, err := s.decide(ctx, runID, func(r *domain.Run) ([]recorded, error) {
				if ev := r.ExpireQueue(tier.Queue, why, now); ev != nil {
					return []recorded{{id: newID(), msg: ev}}, nil
				}
				return nil, nil
			})
			if err != nil {
				s.log.Error("end a run queued too long", "run", runID, "err", err)
			} else if r.Status == domain.RunErrored {
				s.log.Warn("run ended: queued too long", "run", runID, "tier", name, "reason", r.Reason)
			}
		}
	}
}

// expire ends a run whose runner let it pass its timeout (domain.Run.Expire).
func (s *Service) expire(ctx context.Context, runID, lease string) error {
	r, err := s.decide(ctx, runID, func(r *domain.Run) ([]recorded, error) {
		ev := r.Expire(lease, s.cfg.TimeoutGrace, time.Now())
		if ev == nil {
			return nil, nil
		}
		return []recorded{{id: newID(), msg: ev}}, nil
	})
	if err == nil && r.Status == domain.RunTimedOut {
		s.log.Warn("run ended past its timeout; its runner did not end it", "run", runID, "runner", r.RunnerID)
	}
	return err
}

// loseRunner handles a lease that lapsed: the run is requeued for another runner while
// it has retries left, else it fails with reason "runner lost" (domain.Run.LoseRunner).
func (s *Service) loseRunner(ctx context.Context, runID, lease string) error {
	lost := false // as the committed decision chose
	r, err := s.decide(ctx, runID, func(r *domain.Run) ([]recorded, error) {
		ev := r.LoseRunner(lease, s.cfg.LostRunRetries, s.cfg.LeaseDuration, time.Now())
		lost = ev != nil
		if ev == nil {
			return nil, nil
		}
		return []recorded{{id: newID(), msg: ev}}, nil
	})
	if err != nil {
		return err
	}
	if lost {
		leasesLost.Inc()
	}
	if r.Status == domain.RunQueued {
		s.log.Warn("runner lost; run requeued", "run", runID, "attempt", r.Attempt)
	} else if r.Done() {
		s.log.Warn("runner lost; run ended", "run", runID, "status", r.Status, "reason", r.Reason)
	}
	return nil
}

// newID returns a fresh event id.
func newID() string { return id.New() }
