package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/pipeline"
)

// leakedFD is a descriptor opened without close-on-exec before any job
// ran; no step may see it.
var leakedFD = -1

func TestMain(m *testing.M) {
	fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0)
	if err == nil {
		leakedFD = fd
	}
	os.Exit(m.Run())
}

type event struct {
	kind   string // started, skipped, finished
	index  int
	name   string
	reason string
	result StepResult
}

// recorder is an Observer that keeps everything and checks the chunk
// numbering as it goes.
type recorder struct {
	t          *testing.T
	mu         sync.Mutex
	events     []event
	chunks     []LogChunk
	keep       bool // keep chunk data
	nextSeq    int64
	offset     int64
	concurrent int32
	onLog      func(LogChunk)
	errs       []string
}

func newRecorder(t *testing.T) *recorder { return &recorder{t: t, keep: true, nextSeq: 1} }

func (r *recorder) enter() func() {
	if !r.mu.TryLock() {
		r.errs = append(r.errs, "observer called concurrently")
		r.mu.Lock()
	}
	return r.mu.Unlock
}

func (r *recorder) StepStarted(i int, name string, at time.Time) {
	defer r.enter()()
	r.events = append(r.events, event{kind: "started", index: i, name: name})
}

func (r *recorder) StepSkipped(i int, name, reason string) {
	defer r.enter()()
	r.events = append(r.events, event{kind: "skipped", index: i, name: name, reason: reason})
}

func (r *recorder) StepFinished(i int, name string, res StepResult) {
	defer r.enter()()
	r.events = append(r.events, event{kind: "finished", index: i, name: name, reason: res.Reason, result: res})
}

func (r *recorder) Log(c LogChunk) {
	unlock := r.enter()
	if c.Seq != r.nextSeq {
		r.errs = append(r.errs, fmt.Sprintf("chunk seq %d, want %d", c.Seq, r.nextSeq))
	}
	if c.Offset != r.offset {
		r.errs = append(r.errs, fmt.Sprintf("chunk %d offset %d, want %d", c.Seq, c.Offset, r.offset))
	}
	if len(c.Data) == 0 || len(c.Data) > MaxChunkSize {
		r.errs = append(r.errs, fmt.Sprintf("chunk %d has %d bytes", c.Seq, len(c.Data)))
	}
	switch {
	case c.Stream == "system" && c.Step == -1:
		// The job's preamble: before any step; or the caches saved after the last.
		if len(r.events) > 0 && !r.allDone() {
			r.errs = append(r.errs, fmt.Sprintf("system chunk %d for no step after %d events", c.Seq, len(r.events)))
		}
	case c.Stream != "stdout" && c.Stream != "stderr" && c.Stream != "system":
		r.errs = append(r.errs, fmt.Sprintf("chunk %d stream %q", c.Seq, c.Stream))
	default:
		if n := len(r.events); n == 0 || r.events[n-1].kind != "started" || r.events[n-1].index != c.Step {
			r.errs = append(r.errs, fmt.Sprintf("chunk %d for step %d outside that step's start/finish", c.Seq, c.Step))
		}
	}
	r.nextSeq++
	r.offset += int64(len(c.Data))
	if r.keep {
		r.chunks = append(r.chunks, c)
	}
	f := r.onLog
	unlock()
	if f != nil {
		f(c)
	}
}

// allDone reports whether the last event finished or skipped a step (r.mu held).
func (r *recorder) allDone() bool {
	n := len(r.events)
	return n > 0 && r.events[n-1].kind != "started"
}

// output returns the concatenated output of a step's stream.
func (r *recorder) output(step int, stream string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, c := range r.chunks {
		if c.Step == step && c.Stream == stream {
			b.Write(c.Data)
		}
	}
	return b.String()
}

func (r *recorder) check() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		r.t.Error(e)
	}
}

// statuses summarises the events: "0:succeeded 1:skipped ...".
func (r *recorder) statuses() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, e := range r.events {
		switch e.kind {
		case "skipped":
			parts = append(parts, fmt.Sprintf("%d:skipped", e.index))
		case "finished":
			parts = append(parts, fmt.Sprintf("%d:%s", e.index, e.result.Status))
		}
	}
	return strings.Join(parts, " ")
}

func (r *recorder) reason(index int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.index == index && e.kind != "started" {
			return e.reason
		}
	}
	return ""
}

type step map[string]any

func mustPipeline(t testing.TB, steps ...step) *pipeline.Pipeline {
	t.Helper()
	data, err := json.Marshal(map[string]any{"steps": steps})
	if err != nil {
		t.Fatal(err)
	}
	p, err := pipeline.Parse("test.json", data)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

func run(t *testing.T, ctx context.Context, job Job) (Result, *recorder) {
	t.Helper()
	if job.Dir == "" {
		job.Dir = t.TempDir()
	}
	rec := newRecorder(t)
	res := Run(ctx, job, rec)
	rec.check()
	return res, rec
}

func TestSuccessWithSkippedStepAndOutput(t *testing.T) {
	p := mustPipeline(t,
		step{"name": "Greet", "run": []string{"echo out1; echo err1 >&2", "echo out2; echo err2 >&2"}},
		step{"name": "Only on tags", "condition": "context.event == 'tag'", "run": "echo never"},
		step{"name": "Last", "condition": "context.event == 'push' && env.MODE == 'ci'", "run": "printf 'last\\n'"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Env: map[string]string{"MODE": "ci"}, Context: map[string]any{"event": "push"}})
	if res.Status != StatusSucceeded || res.Reason != "" {
		t.Fatalf("result %s %q", res.Status, res.Reason)
	}
	if got, want := rec.statuses(), "0:succeeded 1:skipped 2:succeeded"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
	if got, want := rec.reason(1), "condition is false: context.event == 'tag'"; got != want {
		t.Errorf("skip reason %q, want %q", got, want)
	}
	if got := rec.output(0, "stdout"); got != "out1\nout2\n" {
		t.Errorf("stdout %q", got)
	}
	if got := rec.output(0, "stderr"); got != "err1\nerr2\n" {
		t.Errorf("stderr %q", got)
	}
	if got := rec.output(2, "stdout"); got != "last\n" {
		t.Errorf("last stdout %q", got)
	}
	if len(res.Steps) != 3 || res.Steps[1].Status != StatusSkipped || res.Steps[0].StartedAt.IsZero() {
		t.Errorf("result steps %+v", res.Steps)
	}
}

func TestFailingStepStopsLaterSteps(t *testing.T) {
	p := mustPipeline(t,
		step{"name": "Build", "run": []string{"echo a", "exit 3", "echo never"}},
		step{"name": "Test", "run": "echo never"},
		step{"name": "Report", "condition": "failure() && steps.build.exit_code == 3", "run": "echo report"},
		step{"name": "Cleanup", "condition": "always()", "run": "echo cleanup"},
		step{"name": "Not after success", "condition": "success()", "run": "echo never"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p})
	if res.Status != StatusFailed {
		t.Fatalf("status %s", res.Status)
	}
	if want := `step "Build" failed: exit code 3 (command 2 of 3)`; res.Reason != want {
		t.Errorf("reason %q, want %q", res.Reason, want)
	}
	if got, want := rec.statuses(), "0:failed 1:skipped 2:succeeded 3:succeeded 4:skipped"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
	if got := rec.reason(1); got != "an earlier step failed" {
		t.Errorf("skip reason %q", got)
	}
	if got := rec.output(0, "stdout"); got != "a\n" {
		t.Errorf("build output %q", got)
	}
	if res.Steps[0].ExitCode != 3 {
		t.Errorf("exit code %d", res.Steps[0].ExitCode)
	}
}

func TestShellStopsAtFirstFailingLine(t *testing.T) {
	p := mustPipeline(t, step{"name": "s", "run": "false\necho after"})
	res, rec := run(t, context.Background(), Job{Pipeline: p})
	if res.Status != StatusFailed || rec.output(0, "stdout") != "" {
		t.Fatalf("status %s output %q", res.Status, rec.output(0, "stdout"))
	}
}

func TestContinueOnError(t *testing.T) {
	p := mustPipeline(t,
		step{"name": "Lint", "id": "lint", "run": "exit 1", "continueOnError": true},
		step{"name": "After", "condition": "steps.lint.status == 'failed'", "run": "echo after"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s %q", res.Status, res.Reason)
	}
	if got, want := rec.statuses(), "0:failed 1:succeeded"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
}

func TestConditionErrorFailsStep(t *testing.T) {
	p := mustPipeline(t,
		step{"name": "Deploy", "condition": "env.DEPLOY_TOKEN != ''", "run": "echo deploying"},
		step{"name": "Guarded", "condition": "always() && env.?DEPLOY_TOKEN.orValue('') == ''", "run": "echo guarded"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p})
	if res.Status != StatusFailed {
		t.Fatalf("status %s", res.Status)
	}
	if r := rec.reason(0); !strings.Contains(r, `no such key "DEPLOY_TOKEN"`) || !strings.Contains(r, "has(env.DEPLOY_TOKEN)") {
		t.Errorf("reason %q", r)
	}
	if got, want := rec.statuses(), "0:failed 1:succeeded"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
}

// readPID waits until the file holds a pid.
func readPID(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatalf("pid file %q: %v", data, err)
	}
	return pid
}

func assertGone(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			state, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			t.Errorf("process %d survived the job (kill: %v, stat: %s)", pid, err, state)
		}
	}
}

func TestJobTimeoutKillsEveryProcess(t *testing.T) {
	dir := t.TempDir()
	p := mustPipeline(t,
		step{"name": "Hang", "run": "sleep 1000 & echo $! > bg.pid; echo $$ > sh.pid; sleep 1000"},
		step{"name": "Stubborn", "run": "echo never"},
		step{"name": "Cleanup", "condition": "always()", "run": "echo cleaning; echo $(cat bg.pid) > seen.pid"},
	)
	start := time.Now()
	res, rec := run(t, context.Background(), Job{Pipeline: p, Dir: dir, Timeout: time.Second})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	if res.Status != StatusTimedOut {
		t.Fatalf("status %s %q", res.Status, res.Reason)
	}
	if want := `the job exceeded its time limit of 1s while step "Hang" was running`; res.Reason != want {
		t.Errorf("reason %q, want %q", res.Reason, want)
	}
	if got, want := rec.statuses(), "0:timed_out 1:skipped 2:succeeded"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
	if got := rec.reason(1); got != "the job timed out" {
		t.Errorf("skip reason %q", got)
	}
	if got := rec.output(2, "stdout"); got != "cleaning\n" {
		t.Errorf("cleanup output %q", got)
	}
	assertGone(t, readPID(t, filepath.Join(dir, "bg.pid")), readPID(t, filepath.Join(dir, "sh.pid")))
}

func TestKillAfterGraceWhenTermIgnored(t *testing.T) {
	dir := t.TempDir()
	p := mustPipeline(t, step{"name": "Ignore TERM", "run": "trap '' TERM; sleep 1000 & echo $! > bg.pid; sleep 1000"})
	res, _ := run(t, context.Background(), Job{Pipeline: p, Dir: dir, Timeout: 500 * time.Millisecond, KillGrace: 300 * time.Millisecond})
	if res.Status != StatusTimedOut {
		t.Fatalf("status %s", res.Status)
	}
	assertGone(t, readPID(t, filepath.Join(dir, "bg.pid")))
}

func TestCancel(t *testing.T) {
	dir := t.TempDir()
	p := mustPipeline(t,
		step{"name": "Wait", "run": "sleep 1000 & echo $! > bg.pid; echo ready; wait"},
		step{"name": "On cancel", "condition": "cancelled()", "run": "echo cancelled"},
		step{"name": "On failure", "condition": "failure()", "run": "echo never"},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec := newRecorder(t)
	rec.onLog = func(c LogChunk) {
		if bytes.Contains(c.Data, []byte("ready")) {
			cancel()
		}
	}
	res := Run(ctx, Job{Pipeline: p, Dir: dir}, rec)
	rec.check()
	if res.Status != StatusCancelled {
		t.Fatalf("status %s %q", res.Status, res.Reason)
	}
	if got, want := rec.statuses(), "0:cancelled 1:succeeded 2:skipped"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
	assertGone(t, readPID(t, filepath.Join(dir, "bg.pid")))
}

func TestStepTimeout(t *testing.T) {
	p := mustPipeline(t,
		step{"name": "Slow", "run": "sleep 1000", "timeout": "200ms"},
		step{"name": "Next", "run": "echo never"},
		step{"name": "Notify", "condition": "failure()", "run": "echo notify"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Timeout: time.Minute})
	if res.Status != StatusFailed {
		t.Fatalf("status %s", res.Status)
	}
	if want := `step "Slow" timed out: exceeded the step's time limit of 200ms`; res.Reason != want {
		t.Errorf("reason %q, want %q", res.Reason, want)
	}
	if got, want := rec.statuses(), "0:timed_out 1:skipped 2:succeeded"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
}

func TestBackgroundProcessKilledAtJobEnd(t *testing.T) {
	dir := t.TempDir()
	p := mustPipeline(t,
		step{"name": "Start service", "run": "sleep 1000 >/dev/null 2>&1 & echo $! > bg.pid"},
		step{"name": "Use it", "run": "kill -0 $(cat bg.pid) && echo alive"},
		step{"name": "Holds the pipe", "run": "sleep 1000 & echo $! > held.pid"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Dir: dir})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s %q", res.Status, res.Reason)
	}
	if got := rec.output(1, "stdout"); got != "alive\n" {
		t.Errorf("service not alive in the next step: %q", got)
	}
	assertGone(t, readPID(t, filepath.Join(dir, "bg.pid")), readPID(t, filepath.Join(dir, "held.pid")))
}

func TestLargeOutputCompleteAndInOrder(t *testing.T) {
	p := mustPipeline(t, step{"name": "Big", "run": "seq 1 200000; seq 1 1000 >&2"})
	res, rec := run(t, context.Background(), Job{Pipeline: p})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s", res.Status)
	}
	var want strings.Builder
	for i := 1; i <= 200000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if got := rec.output(0, "stdout"); got != want.String() {
		t.Errorf("stdout differs: %d bytes, want %d", len(got), want.Len())
	}
	if n := len(rec.chunks); n > 40 {
		t.Errorf("%d chunks for 1.3 MB: not chunked", n)
	}
}

func TestHugeOutputBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MiB")
	}
	const total = 256 << 20
	p := mustPipeline(t, step{"name": "Huge", "run": fmt.Sprintf("head -c %d /dev/zero | tr '\\0' x", total)})
	rec := newRecorder(t)
	rec.keep = false
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	var n int
	rec.onLog = func(c LogChunk) {
		if n++; n%64 == 0 {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
		}
	}
	res := Run(context.Background(), Job{Pipeline: p, Dir: t.TempDir()}, rec)
	rec.check()
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s", res.Status)
	}
	if rec.offset != total {
		t.Errorf("got %d bytes, want %d", rec.offset, total)
	}
	if peak > 64<<20 {
		t.Errorf("heap peaked at %d MiB while streaming %d MiB", peak>>20, total>>20)
	}
	t.Logf("%d chunks, heap peak %d MiB", rec.nextSeq-1, peak>>20)
}

func TestEnvironmentIsScrubbed(t *testing.T) {
	t.Setenv("SIMPLECI_TEST_LEAK", "leaked")
	p := mustPipeline(t, step{"name": "Env", "env": map[string]string{"STEP_VAR": "step", "SHARED": "from-step"}, "run": "env | sort"})
	res, rec := run(t, context.Background(), Job{Pipeline: p, Env: map[string]string{"JOB_VAR": "job", "SHARED": "from-job"}})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s", res.Status)
	}
	out := rec.output(0, "stdout")
	if strings.Contains(out, "SIMPLECI_TEST_LEAK") {
		t.Errorf("the engine's environment leaked into the step:\n%s", out)
	}
	for _, want := range []string{"CI=true\n", "SIMPLECI=true\n", "JOB_VAR=job\n", "STEP_VAR=step\n", "SHARED=from-step\n", "PATH=" + DefaultPath + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if home, _ := os.UserHomeDir(); home != "" && strings.Contains(out, "HOME="+home+"\n") {
		t.Errorf("HOME is the engine's home")
	}
}

func TestNoInheritedDescriptors(t *testing.T) {
	if leakedFD < 0 {
		t.Skip("could not open a descriptor")
	}
	p := mustPipeline(t, step{"name": "fds", "run": "ls /proc/$$/fd"})
	res, rec := run(t, context.Background(), Job{Pipeline: p})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s", res.Status)
	}
	fds := strings.Fields(rec.output(0, "stdout"))
	for _, fd := range fds {
		if fd == strconv.Itoa(leakedFD) {
			t.Errorf("descriptor %d reached the step (fds: %v)", leakedFD, fds)
		}
	}
}

func TestMasking(t *testing.T) {
	p := mustPipeline(t, step{"name": "Leak", "run": []string{
		"printf 'token=s3cr3t-'; sleep 0.2; printf 'value!\\n'",
		"echo s3cr3t-value s3cr3t-valu",
		"printf s3cr3t-value | base64",
		"echo s3cr3t-value >&2",
	}})
	res, rec := run(t, context.Background(), Job{Pipeline: p, Secrets: []string{"s3cr3t-value", ""}})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s", res.Status)
	}
	out, errOut := rec.output(0, "stdout"), rec.output(0, "stderr")
	if want := "token=***!\n*** s3cr3t-valu\n***\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	if errOut != "***\n" {
		t.Errorf("stderr %q", errOut)
	}
}

func TestWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(os.TempDir(), filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	p := mustPipeline(t,
		step{"name": "In sub", "workingDirectory": "sub/dir", "run": "pwd"},
		step{"name": "Missing", "workingDirectory": "nope", "run": "pwd", "continueOnError": true},
		step{"name": "Escape", "workingDirectory": "out", "run": "pwd", "continueOnError": true},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Dir: dir})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s", res.Status)
	}
	real, _ := filepath.EvalSymlinks(dir)
	if got := rec.output(0, "stdout"); got != filepath.Join(real, "sub", "dir")+"\n" {
		t.Errorf("pwd %q", got)
	}
	if r := rec.reason(1); r != `working directory "nope" does not exist in the checkout` {
		t.Errorf("missing: %q", r)
	}
	if r := rec.reason(2); !strings.Contains(r, "leaves the checkout") {
		t.Errorf("escape: %q", r)
	}
}

func TestErrored(t *testing.T) {
	p := mustPipeline(t, step{"name": "s", "run": "true"})
	for name, job := range map[string]Job{
		"no pipeline": {Dir: t.TempDir()},
		"no dir":      {Pipeline: p, Dir: filepath.Join(t.TempDir(), "missing")},
		"bad env":     {Pipeline: p, Dir: t.TempDir(), Env: map[string]string{"A=B": "x"}},
	} {
		t.Run(name, func(t *testing.T) {
			res := Run(context.Background(), job, nil)
			if res.Status != StatusErrored || res.Reason == "" {
				t.Errorf("status %s %q", res.Status, res.Reason)
			}
		})
	}
}

func TestReusedStepsAreSkippedAndSeenByConditions(t *testing.T) {
	dir := t.TempDir()
	p := mustPipeline(t,
		step{"name": "Build", "run": "touch built"},
		step{"name": "Test", "condition": "steps.build.status == 'succeeded'", "run": "test ! -e built && echo tested"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Dir: dir,
		Reused: map[int]Reused{0: {Status: StatusSucceeded, Reason: "succeeded in run 4"}}})
	if res.Status != StatusSucceeded {
		t.Fatalf("result %s %q", res.Status, res.Reason)
	}
	if got, want := rec.statuses(), "0:skipped 1:succeeded"; got != want {
		t.Errorf("statuses %q, want %q", got, want)
	}
	if got := rec.reason(0); got != "succeeded in run 4" {
		t.Errorf("reason %q", got)
	}
	if got := rec.output(1, "stdout"); got != "tested\n" {
		t.Errorf("the reused step ran, or the next did not: stdout %q", got)
	}
}
