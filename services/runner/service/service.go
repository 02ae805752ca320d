// Package service is the runner: it pulls jobs of its tiers from the scheduler, checks
// out the commit into a fresh workspace, runs the pipeline with the engine inside a
// per-job sandbox (libs/sandbox: cgroup limits of the job's tier, an unprivileged user,
// namespaces, a minimal filesystem view, as far as the machine allows), streams the
// output in batches of chunks to the log service (RunnerLogService.AppendLogs, under the
// job's log grant), reports step and run outcomes to the scheduler and keeps its lease
// alive with heartbeats. A runner reaches no event bus.
//
// The run's log starts with the sandbox's isolation line (stream system), which the
// runner also reports as a RunIsolation event for the run detail; on a runner started
// with --allow-weak-isolation that lacks layers, a warning line naming them comes first.
// Without that flag such a runner takes no job (fail closed).
package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/simpleci/simpleci/libs/engine"
	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/pipeline"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	"github.com/simpleci/simpleci/libs/sandbox"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Config holds the runner's dependencies.
type Config struct {
	// ID names this runner (default: host name and a random suffix).
	ID string
	// Tiers the runner serves (default: standard).
	Tiers []string
	// WorkDir holds the job workspaces (default: a directory under the temp dir named
	// after the runner). One runner process per WorkDir: it is locked, and what an
	// earlier, crashed runner left in it is removed at start. A root runner runs jobs as
	// unprivileged users, who must be able to traverse every parent of WorkDir; when
	// they cannot (a private data directory), the workspaces go to a directory of the
	// runner's own under the temp dir instead (see jobsDirFor).
	WorkDir string
	// Jobs is how many jobs the runner runs at once (default 1), each in a workspace and
	// a sandbox of its own with its tier's limits: the runner claims a job whenever fewer
	// run.
	Jobs int
	// DrainTimeout is how long the jobs in progress may still run after the runner was
	// asked to stop (Run's ctx ended); it takes no new job meanwhile. 0 stops at once.
	DrainTimeout time.Duration
	// AllowWeakIsolation lets the runner take jobs although the machine lacks
	// isolation layers (sandbox.Layers.Missing: no root, no cgroups, no bubblewrap, no
	// slirp4netns); every such run's log then starts with a warning naming them.
	// Without it the runner fails closed: it takes no job (and /readyz says why), and a
	// job whose sandbox turns out weaker ends errored. A job with the network off is
	// refused without a network namespace either way.
	AllowWeakIsolation bool
	// DenyNetworks and AllowNetworks: see sandbox.Options.
	DenyNetworks, AllowNetworks []netip.Prefix
	Scheduler                   runnerv1.RunnerServiceClient
	// Logs is the log service, which takes the jobs' output.
	Logs runnerv1.RunnerLogServiceClient
	// Files is the log service's store of caches and artifacts (nil: cache-files and
	// store-files steps fail).
	Files  runnerv1.RunnerFilesServiceClient
	Forges *forge.Registry
	Log    *slog.Logger
}

// Runner executes up to Config.Jobs jobs at once. The jobs share nothing mutable: each
// has its own workspace (a fresh directory under jobsDir), sandbox (cgroup, uid, network
// namespace and slirp4netns, all named after the job), log queue, heartbeat and lease.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File
	// running counts the jobs in progress (for the log).
	running atomic.Int64
	// jobsDir is where the job directories are made: WorkDir, or the fallback of
	// jobsDirFor.
	jobsDir string
	// missing are the isolation layers the machine lacked at start (checkIsolation).
	missing []string
}

// New checks cfg and prepares the work directory.
func New(cfg Config) (*Runner, error) {
	if cfg.Scheduler == nil || cfg.Logs == nil || cfg.Forges == nil {
		return nil, errors.New("runner: scheduler client, log service client and forges are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.ID == "" {
		h, _ := os.Hostname()
		cfg.ID = h
	}
	if len(cfg.Tiers) == 0 {
		cfg.Tiers = []string{"standard"}
	}
	if cfg.Jobs < 0 {
		return nil, fmt.Errorf("runner: %d jobs at once: want at least 1", cfg.Jobs)
	}
	cfg.Jobs = max(cfg.Jobs, 1)
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "simpleci-runner-"+cfg.ID)
	}
	// 0711: the jobs' users may pass through to their own workspace, not list the others.
	if err := os.MkdirAll(cfg.WorkDir, 0o711); err != nil {
		return nil, fmt.Errorf("runner: work dir: %w", err)
	}
	if err := os.Chmod(cfg.WorkDir, 0o711); err != nil {
		return nil, fmt.Errorf("runner: work dir: %w", err)
	}
	r := &Runner{cfg: cfg, log: cfg.Log.With("service", "runner", "runner", cfg.ID)}
	if err := r.lockWorkDir(); err != nil {
		return nil, err
	}
	r.checkIsolation()
	return r, nil
}

// checkIsolation makes a sandbox as for a job with the network on, notes which layers
// it lacks and says at start what the runner will do about it.
func (r *Runner) checkIsolation() {
	sb, err := sandbox.New("isolation-check", r.sandboxOptions("", true), r.log)
	if err != nil {
		r.missing = []string{err.Error()}
	} else {
		r.missing = sb.Layers().Missing()
		if err := sb.Close(); err != nil {
			r.log.Warn("close the isolation check's sandbox", "err", err)
		}
	}
	switch {
	case len(r.missing) == 0:
	case r.cfg.AllowWeakIsolation:
		r.log.Warn("weak isolation allowed (--allow-weak-isolation): jobs run without these layers, and every run's log says so", "missing", strings.Join(r.missing, "; "))
	default:
		r.log.Error("this runner takes no jobs: "+r.Refusing().Error(), "missing", strings.Join(r.missing, "; "))
	}
}

// Refusing says why the runner takes no jobs (isolation layers missing, weak isolation
// not allowed), or nil.
func (r *Runner) Refusing() error {
	if len(r.missing) == 0 || r.cfg.AllowWeakIsolation {
		return nil
	}
	return fmt.Errorf("isolation layers missing: %s (provide them, or start the runner with --allow-weak-isolation)", strings.Join(r.missing, "; "))
}

// sandboxOptions are the sandbox's options for a job.
func (r *Runner) sandboxOptions(workspace string, network bool) sandbox.Options {
	return sandbox.Options{Workspace: workspace, Network: network, DenyNetworks: r.cfg.DenyNetworks, AllowNetworks: r.cfg.AllowNetworks}
}

// jobsDirFor returns the directory for job directories: workDir when the jobs' users can
// reach it (every parent traversable by others) or the jobs run as the runner's own user
// (a runner that is not root); otherwise a directory of the runner's own, mode 0711,
// under the temp dir, named after workDir (so one per runner, covered by its lock).
func jobsDirFor(workDir string) (dir, why string, err error) {
	real, err := filepath.EvalSymlinks(workDir)
	if err != nil {
		return "", "", err
	}
	if os.Geteuid() != 0 {
		return workDir, "", nil
	}
	blocked := untraversableParent(real)
	if blocked == "" {
		return workDir, "", nil
	}
	sum := sha256.Sum256([]byte(real))
	dir = filepath.Join(os.TempDir(), "simpleci-jobs-"+hex.EncodeToString(sum[:8]))
	if err := os.Mkdir(dir, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", "", err
	}
	// The temp dir is shared: use the directory only if it is ours.
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", "", err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || st.Uid != 0 {
		return "", "", fmt.Errorf("%s is not a directory owned by root", dir)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		return "", "", err
	}
	if b := untraversableParent(dir); b != "" {
		return "", "", fmt.Errorf("neither %s nor %s can be reached by the jobs' users (%s is not traversable by others)", real, dir, b)
	}
	return dir, blocked + " is not traversable by others", nil
}

// untraversableParent returns the first parent of dir that others may not traverse
// (no o+x), or "".
func untraversableParent(dir string) string {
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return p
		}
		if p == "/" || p == "." {
			return ""
		}
	}
}

// lockWorkDir makes sure no other runner uses the work directory, then removes the
// workspaces an earlier runner left behind (a crash, a SIGKILL).
func (r *Runner) lockWorkDir() error {
	f, err := os.OpenFile(filepath.Join(r.cfg.WorkDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("runner: lock work dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("runner: work dir %s is used by another runner process; give each runner its own (--data)", r.cfg.WorkDir)
	}
	r.lock = f // held until the process exits
	dir, why, err := jobsDirFor(r.cfg.WorkDir)
	if err != nil {
		return fmt.Errorf("runner: work dir: %w", err)
	}
	r.jobsDir = dir
	if why != "" {
		r.log.Info("job workspaces go elsewhere: the jobs' users cannot reach the work directory", "work_dir", r.cfg.WorkDir, "why", why, "workspaces", dir)
	}
	// The processes, cgroups and sandbox state an earlier runner left (after a crash or a
	// SIGKILL) go first, then its workspaces.
	if err := sandbox.CleanupStale(r.log); err != nil {
		r.log.Warn("clean up what earlier sandboxes left", "err", err)
	}
	left, _ := filepath.Glob(filepath.Join(r.cfg.WorkDir, "job-*"))
	if r.jobsDir != r.cfg.WorkDir {
		more, _ := filepath.Glob(filepath.Join(r.jobsDir, "job-*"))
		left = append(left, more...)
	}
	for _, d := range left {
		if err := os.RemoveAll(d); err != nil {
			r.log.Warn("remove stale workspace", "dir", d, "err", err)
			continue
		}
		r.log.Info("removed a workspace left by an earlier runner", "dir", d)
	}
	return nil
}

// Run claims and executes jobs, up to Config.Jobs at once, until ctx ends; then it
// claims no more, lets the jobs in progress finish (for at most DrainTimeout) and
// returns when every one has ended. When abort ends, the jobs in progress are stopped at
// once and handed back to the scheduler (ReleaseJob), which queues their runs again for
// another runner. A nil abort never ends.
func (r *Runner) Run(ctx, abort context.Context) error {
	if abort == nil {
		abort = context.Background()
	}
	if r.jobsDir != r.cfg.WorkDir {
		defer os.Remove(r.jobsDir) // the fallback under the temp dir, when empty
	}
	if err := r.Refusing(); err != nil {
		// Fail closed: no claim, so the scheduler gives the jobs to other runners.
		r.log.Error("runner refuses jobs: "+err.Error(), "tiers", strings.Join(r.cfg.Tiers, ","))
		<-ctx.Done()
		return nil
	}
	r.log.Info("runner ready", "tiers", strings.Join(r.cfg.Tiers, ","), "jobs", r.cfg.Jobs)
	jobsCtx, handBack, stopDrain := r.drainContext(ctx, abort)
	defer stopDrain()
	var running sync.WaitGroup
	defer running.Wait() // before stopDrain: the jobs keep their context until they end
	// slots holds a token per job in progress: a claim is made only with a free slot,
	// and the slot is freed after the job's end was reported, so the scheduler never
	// sees this runner hold more than Jobs jobs.
	slots := make(chan struct{}, r.cfg.Jobs)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		job, header := r.claim(ctx, &backoff)
		if job == nil {
			<-slots
			continue
		}
		running.Add(1)
		r.running.Add(1)
		go func() {
			defer running.Done()
			defer func() { r.running.Add(-1); <-slots }()
			// The job's work continues the run's trace (none while tracing is off).
			r.execute(telemetry.ReceivedTrace(jobsCtx, header), job, handBack)
		}()
	}
	return nil
}

// claim asks the scheduler for a job (a long poll) and returns it with the response's
// header (which carries the run's trace context), or nil when none came or the call
// failed; after a failure it waits (backoff, doubled each time) first.
func (r *Runner) claim(ctx context.Context, backoff *time.Duration) (*runnerv1.Job, metadata.MD) {
	cctx, cancel := context.WithTimeout(ctx, 35*time.Second)
	var header metadata.MD
	resp, err := r.cfg.Scheduler.ClaimJob(cctx, &runnerv1.ClaimJobRequest{RunnerId: r.cfg.ID, Tiers: r.cfg.Tiers, Wait: durationpb.New(25 * time.Second)},
		grpc.Header(&header))
	cancel()
	if err == nil {
		*backoff = 100 * time.Millisecond
		return resp.GetJob(), header
	}
	if ctx.Err() != nil {
		return nil, nil
	}
	if status.Code(err) == codes.InvalidArgument {
		// A configuration the scheduler refuses (a tier it does not serve): say so
		// loudly; it will not fix itself, but the scheduler's may change.
		r.log.Error("the scheduler refuses this runner's claims; fix its configuration", "err", err)
		*backoff = 30 * time.Second
	} else {
		r.log.Warn("claim job", "err", err, "retry_in", *backoff)
	}
	select {
	case <-ctx.Done():
	case <-time.After(*backoff):
	}
	*backoff = min(*backoff*2, 5*time.Second)
	if status.Code(err) == codes.InvalidArgument {
		*backoff = 30 * time.Second
	}
	return nil, nil
}

// drainContext returns the context the jobs run under: it outlives ctx by the drain
// timeout, so that a runner asked to stop finishes the jobs in progress; it ends at once
// when abort ends, and handBack then reports true: the jobs are to be given back, not
// finished. stop ends the context and waits for its goroutine.
func (r *Runner) drainContext(ctx, abort context.Context) (jobs context.Context, handBack func() bool, stop func()) {
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var aborted atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		select {
		case <-jctx.Done():
			return
		case <-abort.Done():
			aborted.Store(true)
			return
		case <-ctx.Done():
		}
		if r.cfg.DrainTimeout <= 0 {
			return
		}
		if n := r.running.Load(); n > 0 {
			r.log.Info("draining: finishing the jobs in progress (interrupt again to hand them back)", "jobs", n, "limit", r.cfg.DrainTimeout)
		}
		t := time.NewTimer(r.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-jctx.Done():
		case <-t.C:
		case <-abort.Done():
			aborted.Store(true)
		}
	}()
	return jctx, aborted.Load, func() { cancel(); <-done }
}

// execute runs one job to its end and reports it.
func (r *Runner) execute(ctx context.Context, job *runnerv1.Job, handBack func() bool) {
	log := r.log.With("run", job.RunId)
	ctx, span := telemetry.Start(ctx, "run job", trace.WithAttributes(attribute.String("simpleci.run_id", job.RunId),
		attribute.Int("simpleci.attempt", int(job.Attempt)), attribute.String("simpleci.tier", job.Tier)))
	defer span.End()
	jctx, cancelJob := context.WithCancel(ctx)
	defer cancelJob()
	send := logSink(r.cfg.Logs, job.LogGrant)
	if telemetry.Enabled() { // the log queue's calls are the job's too
		untraced := send
		send = func(ctx context.Context, chunks []*runnerv1.LogChunk) error {
			return untraced(trace.ContextWithSpan(ctx, span), chunks)
		}
	}
	obs := &observer{r: r, job: job, ctx: jctx, log: log, logs: newLogQueue(send, log), mask: engine.NewMasker(secretValues(job))}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.heartbeat(jctx, job, obs, cancelJob, log) }()
	defer wg.Wait()
	defer cancelJob()

	done := r.jobStarted(job)
	status, reason := r.runJob(jctx, job, obs)
	// The run's end names its last log sequence number: publish the log first.
	obs.logs.close()
	if handBack() && !obs.cancelled.Load() {
		done("handed_back")
		r.release(job, log)
		return
	}
	done(status)
	if status == string(engine.StatusCancelled) {
		if obs.cancelled.Load() {
			reason = "cancelled"
		} else if ctx.Err() != nil {
			reason = "the runner stopped before the job finished"
		}
	}
	reason = obs.mask.String(reason) // also for the log line below
	obs.report(&runnerv1.ReportRequest{Event: &runnerv1.ReportRequest_RunFinished{RunFinished: &eventsv1.RunFinished{
		Status: status, Reason: reason, FinishedAt: timestamppb.Now(), LastLogSequence: obs.lastSeq, Attempt: job.Attempt}}})
	log.InfoContext(ctx, "job done", "status", status, "reason", reason)
}

// release hands the job back (its processes are gone): the scheduler requeues the run at
// once. A release that fails leaves the run to the lease reaper, as a lost runner would.
func (r *Runner) release(job *runnerv1.Job, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.cfg.Scheduler.ReleaseJob(ctx, &runnerv1.ReleaseJobRequest{RunId: job.RunId, LeaseId: job.LeaseId,
		Reason: "the runner was stopped at once"})
	if err != nil {
		log.Warn("hand the job back; its lease will lapse instead", "err", err)
		return
	}
	log.Info("job handed back to the scheduler")
}

func (r *Runner) runJob(ctx context.Context, job *runnerv1.Job, obs *observer) (string, string) {
	dir, err := os.MkdirTemp(r.jobsDir, "job-")
	if err != nil {
		return string(engine.StatusErrored), "create workspace: " + err.Error()
	}
	defer os.RemoveAll(dir)
	// The job's user passes through to src, which the sandbox gives it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return string(engine.StatusErrored), "create workspace: " + err.Error()
	}
	checkout := filepath.Join(dir, "src")
	if err := os.Mkdir(checkout, 0o700); err != nil {
		return string(engine.StatusErrored), "create workspace: " + err.Error()
	}
	f, err := r.cfg.Forges.Lookup(job.Provider)
	if err != nil {
		return string(engine.StatusErrored), err.Error()
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	err = f.Checkout(cctx, job.Repository, job.Sha, checkout)
	cancel()
	if err != nil {
		// The forge's error is scrubbed (one git line, no server paths); the repository
		// is shown without credentials, and the whole bounded: it becomes the run's reason.
		return string(engine.StatusErrored), forge.Bound(fmt.Sprintf("checkout %s at %s: %v", forge.Redact(job.Repository), job.Sha, err))
	}
	pl, err := pipeline.Parse(job.PipelinePath, job.Pipeline)
	if err != nil {
		return string(engine.StatusErrored), "invalid pipeline: " + err.Error()
	}
	jc := map[string]any{}
	for k, v := range job.Context {
		jc[k] = v
	}
	// context.inputs: the run's inputs, typed as the pipeline declares them.
	jc["inputs"] = pl.InputValues(job.Inputs)
	// The sandbox takes the checkout (it gives it to the job's user); it is closed (every
	// process of the job killed, its cgroups, HOME and /tmp removed) before the
	// workspace is removed and before the run's end is reported.
	opts := r.sandboxOptions(checkout, job.Network)
	opts.Limits = sandbox.Limits{Memory: job.MemoryBytes, Pids: job.PidsLimit, CPU: job.Cpus}
	sb, err := sandbox.New(job.RunId, opts, obs.log)
	if err != nil {
		return string(engine.StatusErrored), err.Error()
	}
	defer func() {
		if err := sb.Close(); err != nil {
			obs.log.Error("close the job's sandbox", "err", err)
		}
	}()
	isolation := obs.mask.String(sb.Layers().String())
	obs.report(&runnerv1.ReportRequest{Event: &runnerv1.ReportRequest_RunIsolation{RunIsolation: &eventsv1.RunIsolation{Isolation: isolation}}})
	preamble := isolation + "\n"
	if missing := sb.Layers().Missing(); len(missing) > 0 {
		if !r.cfg.AllowWeakIsolation {
			return string(engine.StatusErrored), "refused: the job's sandbox lacks isolation layers: " + strings.Join(missing, "; ") +
				" (the runner was not started with --allow-weak-isolation)"
		}
		preamble = WeakWarning(missing) + "\n" + preamble
	}
	// A one-second grace between SIGTERM and SIGKILL keeps a cancel within two seconds.
	res := engine.Run(ctx, engine.Job{Pipeline: pl, Dir: checkout, Env: jobEnv(job), Secrets: secretValues(job), Context: jc,
		Timeout: job.Timeout.AsDuration(), KillGrace: time.Second, Sandbox: sb, Preamble: []byte(preamble),
		StepLogLimit: job.StepLogBytes, RunLogLimit: job.RunLogBytes, Reused: reused(job), Files: r.files(job)}, obs)
	return string(res.Status), res.Reason
}

// reused is the job's steps taken over from an earlier run (a re-run from its failed
// step), by index.
func reused(job *runnerv1.Job) map[int]engine.Reused {
	out := make(map[int]engine.Reused, len(job.GetReusedSteps()))
	for _, u := range job.GetReusedSteps() {
		out[int(u.GetStepIndex())] = engine.Reused{Status: engine.Status(u.GetStatus()), ExitCode: int(u.GetExitCode()), Reason: u.GetReason()}
	}
	return out
}

// heartbeat keeps the lease alive and listens for a cancel: each call extends the lease
// and then waits up to a third of it for a cancellation, which it reports at once.
// A lost lease or a cancel stops the job.
func (r *Runner) heartbeat(ctx context.Context, job *runnerv1.Job, obs *observer, cancel context.CancelFunc, log *slog.Logger) {
	every := job.LeaseDuration.AsDuration() / 3
	if every <= 0 {
		every = 5 * time.Second
	}
	for ctx.Err() == nil {
		hctx, hcancel := context.WithTimeout(ctx, every+5*time.Second)
		start := time.Now()
		resp, err := r.cfg.Scheduler.Heartbeat(hctx, &runnerv1.HeartbeatRequest{RunId: job.RunId, LeaseId: job.LeaseId, Wait: durationpb.New(every)})
		hcancel()
		switch {
		case ctx.Err() != nil:
			return
		case status.Code(err) == codes.FailedPrecondition:
			log.Warn("lease lost; stopping the job", "err", err)
			cancel()
			return
		case err != nil:
			log.Warn("heartbeat", "err", err)
			// Try again soon, but not in a tight loop against a failing scheduler.
			select {
			case <-ctx.Done():
				return
			case <-time.After(max(time.Second-time.Since(start), 0)):
			}
		case resp.GetCancel():
			log.Info("run cancelled; stopping the job")
			obs.cancelled.Store(true)
			cancel()
			return
		}
	}
}

// observer turns the engine's observations into reports and log events.
type observer struct {
	r       *Runner
	job     *runnerv1.Job
	ctx     context.Context
	log     *slog.Logger
	logs    *logQueue
	lastSeq int64
	// cancelled is set when the scheduler asked to stop the run.
	cancelled atomic.Bool
	// mask is the job's masker (its secrets and their encodings, as in the log):
	// report passes every text of a report through it.
	mask *engine.Masker
}

func (o *observer) StepStarted(i int, name string, at time.Time) {
	o.report(&runnerv1.ReportRequest{Event: &runnerv1.ReportRequest_StepStarted{StepStarted: &eventsv1.StepStarted{
		StepIndex: int32(i), StepName: name, StartedAt: timestamppb.New(at)}}})
}

func (o *observer) StepSkipped(i int, name, reason string) {
	o.report(&runnerv1.ReportRequest{Event: &runnerv1.ReportRequest_StepSkipped{StepSkipped: &eventsv1.StepSkipped{
		StepIndex: int32(i), StepName: name, Reason: reason, At: timestamppb.Now()}}})
}

func (o *observer) StepFinished(i int, name string, res engine.StepResult) {
	o.report(&runnerv1.ReportRequest{Event: &runnerv1.ReportRequest_StepFinished{StepFinished: &eventsv1.StepFinished{
		StepIndex: int32(i), StepName: name, Status: string(res.Status), ExitCode: int32(res.ExitCode), Reason: res.Reason,
		StartedAt: timestamppb.New(res.StartedAt), FinishedAt: timestamppb.New(res.FinishedAt)}}})
}

var streamOf = map[string]eventsv1.LogStream{"stdout": eventsv1.LogStream_LOG_STREAM_STDOUT, "stderr": eventsv1.LogStream_LOG_STREAM_STDERR,
	"system": eventsv1.LogStream_LOG_STREAM_SYSTEM}

func (o *observer) Log(c engine.LogChunk) {
	o.logs.push(&runnerv1.LogChunk{StepIndex: int32(c.Step), Sequence: c.Seq, Stream: streamOf[c.Stream], At: timestamppb.New(c.At), Data: c.Data})
	o.lastSeq = c.Seq
}

// Log chunks wait in a logQueue for the log service.
const (
	// maxQueuedLog bounds the output of a job waiting for the log service; beyond it,
	// the job's output waits (and may be cut, see logQueue).
	maxQueuedLog = 32 << 20
	// maxBatchBytes and maxBatchChunks bound one AppendLogs call (gRPC's limit is 4 MiB
	// a message; the log service takes at most 4096 chunks).
	maxBatchBytes  = 1 << 20
	maxBatchChunks = 1024
	// logPatience is how long the queue retries while the log service accepts nothing,
	// long enough for a restart of it or of the brokers behind it; then it gives the
	// chunks up, leaving the run's log incomplete.
	logPatience = 10 * time.Minute
)

// appendFunc sends one batch of chunks, in sequence order.
type appendFunc func(ctx context.Context, chunks []*runnerv1.LogChunk) error

// logSink sends batches to the log service under the job's grant. A refusal (a grant
// not the log service's to accept: another deployment's, expired) is permanent.
func logSink(c runnerv1.RunnerLogServiceClient, grant *runnerv1.LogGrant) appendFunc {
	return func(ctx context.Context, chunks []*runnerv1.LogChunk) error {
		_, err := c.AppendLogs(ctx, &runnerv1.AppendLogsRequest{Grant: grant, Chunks: chunks})
		switch status.Code(err) {
		case codes.PermissionDenied, codes.InvalidArgument, codes.Unauthenticated:
			return permanent{err}
		}
		return err
	}
}

// logQueue sends a job's log chunks in order, in batches, from a goroutine of its own, so
// that the engine never waits for the network. It must not: while the observer's Log
// blocks, the engine reads no output, and a command that exits meanwhile has its unread
// output cut off after engine.WaitDelay, silently, with no gap in the sequence numbers.
// Each call takes whatever is queued (up to maxBatchBytes and maxBatchChunks): one call
// per batch, never per line, and the batches grow while the log service is slow.
type logQueue struct {
	send   appendFunc
	log    *slog.Logger
	mu     sync.Mutex
	cond   *sync.Cond
	chunks []*runnerv1.LogChunk
	size   int // output bytes queued and in flight
	closed bool
	done   chan struct{}
}

func newLogQueue(send appendFunc, log *slog.Logger) *logQueue {
	q := &logQueue{send: send, log: log, done: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	go q.run()
	return q
}

// push queues a chunk; it waits only while maxQueuedLog bytes are queued.
func (q *logQueue) push(c *runnerv1.LogChunk) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.size >= maxQueuedLog {
		q.cond.Wait()
	}
	q.chunks = append(q.chunks, c)
	q.size += len(c.Data)
	q.cond.Broadcast()
}

// close waits until every queued chunk was sent (or given up).
func (q *logQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
	<-q.done
}

// next takes the next batch off the queue (nil: closed and empty).
func (q *logQueue) next() ([]*runnerv1.LogChunk, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.chunks) == 0 && !q.closed {
		q.cond.Wait()
	}
	n, size := 0, 0
	for n < len(q.chunks) && n < maxBatchChunks && (n == 0 || size+len(q.chunks[n].Data) <= maxBatchBytes) {
		size += len(q.chunks[n].Data)
		n++
	}
	batch := slices.Clone(q.chunks[:n])
	clear(q.chunks[:n])
	q.chunks = q.chunks[n:]
	return batch, size
}

func (q *logQueue) run() {
	defer close(q.done)
	var failingSince time.Time // since when the log service has taken nothing (zero while it does)
	for {
		batch, size := q.next()
		if len(batch) == 0 {
			return
		}
		since := failingSince
		if since.IsZero() {
			since = time.Now()
		}
		err := retryFor(context.Background(), max(time.Until(since.Add(logPatience)), time.Second), func(ctx context.Context) error {
			return q.send(ctx, batch)
		})
		var p permanent
		switch {
		case err == nil:
			failingSince = time.Time{}
		case errors.As(err, &p):
			q.log.Error("send log chunks: refused, the run's log stays incomplete", "first_seq", batch[0].Sequence, "chunks", len(batch), "err", err)
		default:
			failingSince = since
			q.log.Error("send log chunks: given up, the run's log stays incomplete", "first_seq", batch[0].Sequence, "chunks", len(batch), "err", err)
		}
		q.mu.Lock()
		q.size -= size
		q.cond.Broadcast()
		q.mu.Unlock()
	}
}

// report sends one observation, retrying transient failures; the event id makes the
// retries idempotent.
func (o *observer) report(req *runnerv1.ReportRequest) {
	maskReport(o.mask, req)
	req.RunId, req.LeaseId, req.EventId = o.job.RunId, o.job.LeaseId, id.New()
	err := retry(context.WithoutCancel(o.ctx), func(ctx context.Context) error {
		_, err := o.r.cfg.Scheduler.Report(ctx, req)
		switch status.Code(err) {
		case codes.FailedPrecondition, codes.InvalidArgument, codes.NotFound, codes.PermissionDenied:
			return permanent{err}
		}
		return err
	})
	if err != nil {
		o.log.Error("report", "err", err)
	}
}

// maskReport masks the free texts of a report (reasons, the isolation line): the engine
// masks the reasons it makes, this covers the runner's own (a checkout's error, a
// sandbox's) and whatever a later event adds, before anything leaves the runner.
func maskReport(m *engine.Masker, req *runnerv1.ReportRequest) {
	switch e := req.Event.(type) {
	case *runnerv1.ReportRequest_StepSkipped:
		e.StepSkipped.Reason = m.String(e.StepSkipped.Reason)
	case *runnerv1.ReportRequest_StepFinished:
		e.StepFinished.Reason = m.String(e.StepFinished.Reason)
	case *runnerv1.ReportRequest_RunFinished:
		e.RunFinished.Reason = m.String(e.RunFinished.Reason)
	case *runnerv1.ReportRequest_RunIsolation:
		e.RunIsolation.Isolation = m.String(e.RunIsolation.Isolation)
	}
}

type permanent struct{ error }

// retry calls fn with a deadline per attempt until it succeeds, fails permanently or
// ten minutes have passed: a scheduler that restarts, or whose database does, gets the
// report late rather than never (the lease decides whether the run is still ours).
func retry(ctx context.Context, fn func(context.Context) error) error {
	return retryFor(ctx, logPatience, fn)
}

// retryFor is retry giving up after limit.
func retryFor(ctx context.Context, limit time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	wait := 50 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		err := fn(actx)
		acancel()
		var p permanent
		if err == nil || errors.As(err, &p) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// jobEnv is the job's environment: its variables and its secrets (a secret wins).
func jobEnv(job *runnerv1.Job) map[string]string {
	env := make(map[string]string, len(job.Env)+len(job.Secrets))
	for k, v := range job.Env {
		env[k] = v
	}
	for k, v := range job.Secrets {
		env[k] = v
	}
	return env
}

// secretValues are what the engine masks in the output.
func secretValues(job *runnerv1.Job) []string {
	out := make([]string, 0, len(job.Secrets))
	for _, v := range job.Secrets {
		out = append(out, v)
	}
	return out
}

// WeakWarning is the line a run's log starts with when its sandbox lacks layers and the
// runner allows weak isolation.
func WeakWarning(missing []string) string {
	return "WARNING: weak isolation (the runner allows it: --allow-weak-isolation); this job runs without: " + strings.Join(missing, "; ")
}
