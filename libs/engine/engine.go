package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/simpleci/simpleci/libs/pipeline"
)

// Status is the outcome of a step or a run.
type Status string

// Statuses of steps and runs. StatusErrored is only for runs (the engine
// could not do its job: no workspace, sh cannot be started);
// StatusSkipped only appears in [Result.Steps].
const (
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusTimedOut  Status = "timed_out"
	StatusCancelled Status = "cancelled"
	StatusErrored   Status = "errored"
	StatusSkipped   Status = "skipped"
)

// Defaults for the optional fields of [Job].
const (
	DefaultKillGrace      = 2 * time.Second
	DefaultCleanupTimeout = 30 * time.Second
)

// WaitDelay is how long the engine keeps reading a command's output after
// the command exited, for background processes that still hold it.
const WaitDelay = time.Second

// Reused is the outcome of a step in an earlier run that a re-run takes over.
type Reused struct {
	Status   Status
	ExitCode int
	Reason   string
}

// DefaultPath is the PATH a step gets unless the job's env sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Job is one run of a pipeline in a checkout.
type Job struct {
	// Pipeline is the parsed pipeline to run. Required.
	Pipeline *pipeline.Pipeline
	// Dir is the checkout, the working directory of the steps. Required;
	// it must exist.
	Dir string
	// Env holds the project and job variables granted to the job. Besides
	// the step's own env and the defaults listed in the package doc, it is
	// the only environment steps get; it is also env in conditions.
	Env map[string]string
	// Context is context in conditions (event, branch, sha, ...).
	Context map[string]any
	// Reused holds, by step index, steps decided in an earlier run (a re-run from its
	// failed step): each is reported skipped with its Reason and not executed, and later
	// steps' conditions see its earlier Status and ExitCode as steps.<id>.
	Reused map[int]Reused
	// Timeout limits the whole job (the tier's run timeout); zero means no
	// limit.
	Timeout time.Duration
	// Secrets are values to mask in the output, and in every reason the
	// engine reports (see [Masker]). Empty values are ignored.
	Secrets []string
	// KillGrace is the time between SIGTERM and SIGKILL; zero means
	// DefaultKillGrace.
	KillGrace time.Duration
	// CleanupTimeout limits the steps that still run after the job timed
	// out or was cancelled (always() steps); zero means
	// DefaultCleanupTimeout.
	CleanupTimeout time.Duration
	// Sandbox, when not nil, runs every command of the job (see [Sandbox]);
	// nil runs them as children of the calling process with the floor of
	// isolation described in the package doc.
	Sandbox Sandbox
	// Preamble, when not empty, is delivered before anything else as the
	// job's first chunk(s), with Stream "system" and Step -1: the runner's
	// own lines, such as the isolation report. It is masked as a whole.
	Preamble []byte
	// StepLogLimit and RunLogLimit cap the output delivered for each step
	// and for the whole job (preamble included), in bytes; zero means no
	// cap. At the cut the log gets a "system" line saying which cap was
	// reached, the rest is read and discarded (the step keeps running; its
	// process never blocks on a full pipe), and at the end of the step a
	// second line says how many bytes were dropped. These lines are not
	// counted against the caps.
	StepLogLimit int64
	RunLogLimit  int64
	// Files keeps the caches and artifacts of cache-files and store-files steps; nil
	// fails such steps.
	Files Files
}

// Sandbox isolates the processes of one job (the runner's libs/sandbox
// implements it). The engine starts every command through ForkExec, sets
// HOME and TMPDIR to Home and TempDir, adds Reason to the reason of a step
// whose command failed (or timed out, or was cancelled), and calls Kill at
// the end of the job after the process groups were stopped. Closing the
// sandbox is the caller's.
type Sandbox interface {
	// ForkExec is syscall.ForkExec inside the sandbox. attr.Sys has
	// Setpgid; the sandbox may start a new session instead (the child
	// still leads a process group whose id is its pid).
	ForkExec(argv0 string, argv []string, attr *syscall.ProcAttr) (pid int, err error)
	// Home is the job's HOME, made and removed by the sandbox.
	Home() string
	// TempDir is the job's temporary directory (TMPDIR unless the job's
	// env sets one).
	TempDir() string
	// Reason says why the kernel killed or refused processes of the job
	// since the last ForkExec ("memory limit (1 GiB) exceeded: ...",
	// "pids limit (1024) reached: ..."), or "".
	Reason() string
	// Kill kills every process of the job, also those that left their
	// process group (setsid, double fork).
	Kill() error
}

// StepResult is the outcome of one step.
type StepResult struct {
	// Status is StatusSucceeded, StatusFailed, StatusTimedOut or
	// StatusCancelled for a step that started; StatusSkipped for one that
	// did not (in Result.Steps only).
	Status Status
	// ExitCode of the last command that ran; -1 if it was killed by a
	// signal or never ran.
	ExitCode int
	// Reason explains a status other than succeeded, for people, without
	// repeating the status: "exit code 2 (command 2 of 3)",
	// "exceeded the step's time limit of 1m30s", "condition: no such key
	// ...", "condition is false: ..." (skipped).
	Reason string
	// StartedAt and FinishedAt are zero for a skipped step.
	StartedAt, FinishedAt time.Time
}

// LogChunk is a piece of a step's output.
type LogChunk struct {
	// Step is the index of the step in the pipeline; -1 for [Job.Preamble].
	Step int
	// Seq numbers the chunks of a job: 1, 2, 3, ... without gaps.
	Seq int64
	// Offset is the byte offset of Data in the job's whole output (all
	// steps, both streams): a chunk's Offset is the previous chunk's
	// Offset plus its length.
	Offset int64
	// Stream is "stdout" or "stderr", or "system" for [Job.Preamble].
	Stream string
	// Data is at most MaxChunkSize bytes, already masked. It belongs to
	// the observer: the engine does not touch it after the call, unless
	// the observer is a DataBorrower, for which Data is valid only
	// during the call.
	Data []byte
	// At is when the chunk was flushed.
	At time.Time
}

// Observer receives what happens in a job as it happens. The engine never
// calls its methods concurrently and calls them in order: for each step
// either StepSkipped, or StepStarted, its Log chunks, then StepFinished;
// after the last step, "system" chunks of step -1 say which caches were
// saved (cache-files steps, when the run succeeded).
// A slow observer slows the job's output down (back-pressure), never
// memory up; an observer that blocks forever blocks the job (timeouts
// still kill its processes, but Run does not return).
type Observer interface {
	// StepStarted is called before the step's first command starts.
	StepStarted(index int, name string, at time.Time)
	// StepSkipped is called for a step whose condition is false.
	StepSkipped(index int, name string, reason string)
	// StepFinished is called when the step's last command ended.
	StepFinished(index int, name string, r StepResult)
	// Log delivers a chunk of output.
	Log(chunk LogChunk)
}

// Result is the outcome of a job.
type Result struct {
	// Status is StatusSucceeded, StatusFailed, StatusTimedOut,
	// StatusCancelled or StatusErrored.
	Status Status
	// Reason explains a status other than succeeded, for people.
	Reason string
	// Steps has one entry per step of the pipeline, in order.
	Steps []StepResult
	// StartedAt and FinishedAt bound the job.
	StartedAt, FinishedAt time.Time
}

var (
	errJobTimeout     = errors.New("job timeout")
	errStepTimeout    = errors.New("step timeout")
	errCleanupTimeout = errors.New("cleanup timeout")
)

// Run runs the job's steps in order and returns its outcome. obs may be
// nil. Cancelling ctx cancels the job: the running step is stopped and
// the run ends cancelled. Run returns after every process of the job is
// gone (see the package doc for the limits of that).
func Run(ctx context.Context, job Job, obs Observer) Result {
	prepareProcess()
	r := &jobRun{job: job, em: newEmitter(obs), startedAt: time.Now()}
	r.em.stepCap, r.em.runCap = job.StepLogLimit, job.RunLogLimit
	// Reasons are masked like the output: an error that quotes a value
	// (an expression's, a program's) cannot carry a secret out.
	r.em.mask = NewMasker(job.Secrets)
	if job.KillGrace <= 0 {
		r.job.KillGrace = DefaultKillGrace
	}
	if job.CleanupTimeout <= 0 {
		r.job.CleanupTimeout = DefaultCleanupTimeout
	}
	res := r.run(ctx)
	res.Reason = r.em.mask.String(res.Reason)
	for i := range res.Steps {
		res.Steps[i].Reason = r.em.mask.String(res.Steps[i].Reason)
	}
	res.StartedAt, res.FinishedAt = r.startedAt, time.Now()
	return res
}

type jobRun struct {
	job       Job
	em        *emitter
	startedAt time.Time
	home      string
	tmp       string // TMPDIR by default; "" leaves it unset
	masks     [][]byte
	groups    []int // process groups the job created
	dirReal   string
	cio       *commandIO    // made by the first command
	saves     []pendingSave // caches to save when the run succeeds
}

func (r *jobRun) errored(format string, args ...any) Result {
	res := Result{Status: StatusErrored, Reason: fmt.Sprintf(format, args...)}
	if r.job.Pipeline != nil {
		for range r.job.Pipeline.Steps {
			res.Steps = append(res.Steps, StepResult{Status: StatusSkipped, ExitCode: -1, Reason: "the run errored"})
		}
	}
	return res
}

func (r *jobRun) run(ctx context.Context) Result {
	job := r.job
	r.em.system([]byte(r.em.mask.String(string(job.Preamble))))
	if job.Pipeline == nil || len(job.Pipeline.Steps) == 0 {
		return r.errored("no pipeline or no steps")
	}
	if job.Dir == "" {
		return r.errored("no workspace directory")
	}
	dir, err := filepath.Abs(job.Dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err == nil {
		var fi os.FileInfo
		if fi, err = os.Stat(dir); err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", dir)
		}
	}
	if err != nil {
		return r.errored("workspace: %v", err)
	}
	r.dirReal = dir
	if err := checkEnv(job.Env); err != nil {
		return r.errored("job env: %v", err)
	}
	if job.Sandbox != nil {
		// The sandbox's HOME and temporary directory are the job user's, and
		// the sandbox removes them.
		r.home, r.tmp = job.Sandbox.Home(), job.Sandbox.TempDir()
	} else {
		home, err := os.MkdirTemp("", "simpleci-home-")
		if err != nil {
			return r.errored("create HOME: %v", err)
		}
		r.home = home
		defer os.RemoveAll(home)
	}
	r.masks = maskValues(job.Secrets)
	defer r.killAll()

	jobCtx, cancelJob := context.WithCancel(ctx)
	if job.Timeout > 0 {
		jobCtx, cancelJob = context.WithTimeoutCause(ctx, job.Timeout, errJobTimeout)
	}
	defer cancelJob()

	steps := job.Pipeline.Steps
	res := Result{Status: StatusSucceeded, Steps: make([]StepResult, len(steps))}
	vars := map[string]pipeline.StepState{}
	var cleanupCtx context.Context // set once the job timed out or was cancelled
	for i, step := range steps {
		if cleanupCtx == nil && jobCtx.Err() != nil {
			r.stopped(&res, jobCtx, "")
		}
		if res.Status == StatusErrored {
			res.Steps[i] = StepResult{Status: StatusSkipped, ExitCode: -1, Reason: "the run errored"}
			r.em.stepSkipped(i, step.Name, res.Steps[i].Reason)
			vars[step.ID] = pipeline.StepState{Status: pipeline.StatusSkipped, ExitCode: -1}
			continue
		}
		if u, ok := job.Reused[i]; ok {
			res.Steps[i] = StepResult{Status: StatusSkipped, ExitCode: -1, Reason: u.Reason}
			r.em.stepSkipped(i, step.Name, u.Reason)
			vars[step.ID] = pipeline.StepState{Status: string(u.Status), ExitCode: u.ExitCode}
			continue
		}
		// The step's env templates see the job's env; the condition and
		// the commands see the job's env merged with the rendered step env.
		sv := pipeline.Vars{Env: job.Env, Context: job.Context, Steps: vars, Run: pipeline.RunState{Status: string(res.Status)}}
		env, envErr := step.Environment(sv)
		if envErr != nil {
			env = mergeEnv(job.Env)
		}
		sv.Env = env
		ok, condErr := step.Condition.Eval(sv)
		if envErr != nil && (ok || condErr != nil) {
			condErr = envErr // the step would run: it fails with the template's error
		}
		if condErr == nil && !ok {
			sr := StepResult{Status: StatusSkipped, ExitCode: -1, Reason: skipReason(step, res.Status)}
			res.Steps[i] = sr
			vars[step.ID] = pipeline.StepState{Status: pipeline.StatusSkipped, ExitCode: -1}
			r.em.stepSkipped(i, step.Name, sr.Reason)
			continue
		}
		base := jobCtx
		if res.Status == StatusTimedOut || res.Status == StatusCancelled {
			if cleanupCtx == nil {
				var cancel context.CancelFunc
				cleanupCtx, cancel = context.WithTimeoutCause(context.WithoutCancel(ctx), r.job.CleanupTimeout, errCleanupTimeout)
				defer cancel()
			}
			base = cleanupCtx
		}
		started := time.Now()
		r.em.stepStarted(i, step.Name, started)
		var sr StepResult
		var infraErr error
		switch {
		case condErr != nil:
			sr = StepResult{Status: StatusFailed, ExitCode: -1, Reason: condErr.Error()}
		case step.Type != "":
			sr = r.runFilesStep(base, i, step, sv)
		default:
			sr, infraErr = r.runStep(base, i, step, sv)
		}
		sr.StartedAt, sr.FinishedAt = started, time.Now()
		res.Steps[i] = sr
		vars[step.ID] = pipeline.StepState{Status: string(sr.Status), ExitCode: sr.ExitCode}
		r.em.stepFinished(i, step.Name, sr)

		switch {
		case infraErr != nil:
			res.Status, res.Reason = StatusErrored, fmt.Sprintf("step %q: %v", step.Name, infraErr)
		case sr.Status == StatusSucceeded:
		case base != jobCtx:
			// A cleanup step's failure does not change a timed out or
			// cancelled run.
		case jobCtx.Err() != nil:
			r.stopped(&res, jobCtx, step.Name)
		case step.ContinueOnError:
		case res.Status == StatusSucceeded:
			res.Status, res.Reason = StatusFailed, fmt.Sprintf("step %q %s: %s", step.Name, verb(sr.Status), sr.Reason)
		}
	}
	if res.Status == StatusSucceeded && len(r.saves) > 0 {
		r.saveCaches(jobCtx)
	}
	return res
}

// stopped marks the run timed out or cancelled, by what stopped jobCtx.
func (r *jobRun) stopped(res *Result, jobCtx context.Context, running string) {
	if res.Status == StatusTimedOut || res.Status == StatusCancelled || res.Status == StatusErrored {
		return
	}
	where := ""
	if running != "" {
		where = fmt.Sprintf(" while step %q was running", running)
	}
	if errors.Is(context.Cause(jobCtx), errJobTimeout) {
		res.Status, res.Reason = StatusTimedOut, fmt.Sprintf("the job exceeded its time limit of %s%s", r.job.Timeout, where)
		return
	}
	res.Status, res.Reason = StatusCancelled, "the run was cancelled"+where
}

// verb says what happened to a step, for a run's reason.
func verb(s Status) string {
	switch s {
	case StatusTimedOut:
		return "timed out"
	case StatusCancelled:
		return "was cancelled"
	}
	return string(s)
}

func skipReason(step *pipeline.Step, run Status) string {
	if step.Condition.Implicit() {
		switch run {
		case StatusFailed:
			return "an earlier step failed"
		case StatusTimedOut:
			return "the job timed out"
		case StatusCancelled:
			return "the run was cancelled"
		}
	}
	return fmt.Sprintf("condition is false: %s", step.Condition)
}

// runStep runs the step's commands in order, stopping at the first one
// that fails. sv is what the step's condition saw (sv.Env: the job's env
// merged with the step's rendered env); the commands' templates are
// rendered with it, all before the first command starts. A non-nil error
// means the engine could not run it at all.
func (r *jobRun) runStep(base context.Context, index int, step *pipeline.Step, sv pipeline.Vars) (StepResult, error) {
	ctx := base
	if step.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(base, step.Timeout, errStepTimeout)
		defer cancel()
	}
	dir, err := r.stepDir(step)
	if err != nil {
		return StepResult{Status: StatusFailed, ExitCode: -1, Reason: err.Error()}, nil
	}
	if err := checkEnv(step.Env); err != nil {
		return StepResult{Status: StatusFailed, ExitCode: -1, Reason: "env: " + err.Error()}, nil
	}
	cmds, err := step.Commands(sv)
	if err != nil {
		return StepResult{Status: StatusFailed, ExitCode: -1, Reason: err.Error()}, nil
	}
	envList := buildEnv(r.home, r.tmp, r.dirReal, sv.Env)
	sr := StepResult{Status: StatusSucceeded, ExitCode: 0}
	interrupted := false // by a timeout or cancel, not by the command's own exit
	kernel := ""         // what the sandbox says of an interrupted command
	for n, script := range cmds {
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		cr, err := r.runCommand(ctx, index, script, dir, envList)
		if err != nil {
			return StepResult{Status: StatusFailed, ExitCode: -1, Reason: "could not start: " + err.Error()}, err
		}
		sr.ExitCode = cr.exitCode
		which := ""
		if len(cmds) > 1 {
			which = fmt.Sprintf(" (command %d of %d)", n+1, len(cmds))
		}
		if cr.stopped {
			interrupted = true
			kernel = r.sandboxReason()
			break
		}
		if cr.exitCode != 0 {
			sr.Status = StatusFailed
			if cr.signal != "" {
				sr.Reason = "killed by signal " + cr.signal + which
			} else {
				sr.Reason = fmt.Sprintf("exit code %d%s", cr.exitCode, which)
			}
			if why := r.sandboxReason(); why != "" {
				sr.Reason += ": " + why
			}
			return sr, nil
		}
	}
	if interrupted {
		sr = r.interrupted(ctx, step)
		if kernel != "" {
			sr.Reason += "; " + kernel
		}
	}
	return sr, nil
}

// sandboxReason is what the job's sandbox says about the command that just
// ended (a memory or pids limit), or "".
func (r *jobRun) sandboxReason() string {
	if r.job.Sandbox == nil {
		return ""
	}
	return r.job.Sandbox.Reason()
}

// stepDir resolves the step's working directory, refusing one that leaves
// the checkout through a symbolic link.
func (r *jobRun) stepDir(step *pipeline.Step) (string, error) {
	if step.WorkingDirectory == "" {
		return r.dirReal, nil
	}
	dir := filepath.Join(r.dirReal, filepath.FromSlash(step.WorkingDirectory))
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("working directory %q does not exist in the checkout", step.WorkingDirectory)
		}
		return "", fmt.Errorf("working directory %q: %v", step.WorkingDirectory, err)
	}
	if real != r.dirReal && !strings.HasPrefix(real, r.dirReal+string(filepath.Separator)) {
		return "", fmt.Errorf("working directory %q leaves the checkout (through a symbolic link)", step.WorkingDirectory)
	}
	if fi, err := os.Stat(real); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("working directory %q is not a directory", step.WorkingDirectory)
	}
	return real, nil
}
