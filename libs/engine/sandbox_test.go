package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeSandbox is a Sandbox without isolation: it starts commands as
// libs/sandbox does (a new session instead of a new process group) and
// records what the engine asks of it.
type fakeSandbox struct {
	t         *testing.T
	home, tmp string
	dir       string // the job's workspace, where Kill finds escaped.pid
	// reasons maps a piece of a command's script to what Reason says
	// after that command.
	reasons map[string]string

	mu       sync.Mutex
	forks    int
	setpgid  []bool // attr.Sys.Setpgid of each ForkExec
	last     string // the script of the last command
	leaders  []int
	kills    int
	atKill   []string // problems seen when Kill was called
	escapees []int    // killed by Kill
}

func newFakeSandbox(t *testing.T, dir string) *fakeSandbox {
	return &fakeSandbox{t: t, home: t.TempDir(), tmp: t.TempDir(), dir: dir, reasons: map[string]string{}}
}

func (f *fakeSandbox) ForkExec(argv0 string, argv []string, attr *syscall.ProcAttr) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forks++
	f.setpgid = append(f.setpgid, attr.Sys != nil && attr.Sys.Setpgid)
	f.last = argv[len(argv)-1]
	a := *attr
	sys := syscall.SysProcAttr{Setsid: true}
	a.Sys = &sys
	pid, err := syscall.ForkExec(argv0, argv, &a)
	if err == nil {
		f.leaders = append(f.leaders, pid)
	}
	return pid, err
}

func (f *fakeSandbox) Home() string    { return f.home }
func (f *fakeSandbox) TempDir() string { return f.tmp }

func (f *fakeSandbox) Reason() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, v := range f.reasons {
		if strings.Contains(f.last, k) {
			return v
		}
	}
	return ""
}

// Kill checks that the engine already stopped the process groups of its
// commands, then kills the process named in escaped.pid (one that left its
// group) and reaps it (the engine made this process a child subreaper).
func (f *fakeSandbox) Kill() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kills++
	for _, g := range f.leaders {
		if groupAlive(g) {
			f.atKill = append(f.atKill, "group "+strconv.Itoa(g)+" still alive when Kill was called")
		}
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "escaped.pid"))
	if err != nil {
		return nil
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return errors.New("bad escaped.pid")
	}
	if syscall.Kill(pid, 0) != nil {
		f.atKill = append(f.atKill, "the escaped process was already gone when Kill was called")
		return nil
	}
	f.escapees = append(f.escapees, pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		if p, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); p == pid {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// TestSandboxRunsEveryCommand: with a sandbox, every command is started by
// its ForkExec (asked for a process group, as without), HOME and TMPDIR are
// the sandbox's and stay (the sandbox removes them), the preamble comes
// first, and Kill is called once at the end, after the process groups.
func TestSandboxRunsEveryCommand(t *testing.T) {
	dir := t.TempDir()
	sb := newFakeSandbox(t, dir)
	p := mustPipeline(t,
		step{"name": "Env", "run": []string{"echo HOME=$HOME", "echo TMPDIR=$TMPDIR"}},
		step{"name": "Write", "run": "echo hi > \"$HOME/f\" && echo hi > \"$TMPDIR/g\" && cat \"$HOME/f\""},
	)
	preamble := "isolation: test\n"
	res, rec := run(t, context.Background(), Job{Pipeline: p, Dir: dir, Sandbox: sb, Preamble: []byte(preamble)})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s %q", res.Status, res.Reason)
	}
	if sb.forks != 3 {
		t.Errorf("ForkExec called %d times, want 3 (one per command)", sb.forks)
	}
	for i, pg := range sb.setpgid {
		if !pg {
			t.Errorf("command %d was not asked for a process group (Setpgid)", i)
		}
	}
	if got, want := rec.output(0, "stdout"), "HOME="+sb.home+"\nTMPDIR="+sb.tmp+"\n"; got != want {
		t.Errorf("env output %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(sb.home, "f")); err != nil {
		t.Errorf("the engine removed the sandbox's HOME or its files: %v", err)
	}
	rec.mu.Lock()
	first := rec.chunks[0]
	rec.mu.Unlock()
	if first.Seq != 1 || first.Stream != "system" || first.Step != -1 || string(first.Data) != preamble {
		t.Errorf("first chunk %+v, want the preamble as seq 1, stream system, step -1", first)
	}
	if sb.kills != 1 {
		t.Errorf("Kill called %d times, want once", sb.kills)
	}
	for _, p := range sb.atKill {
		t.Error(p)
	}
}

// TestSandboxKillsWhatLeftItsGroup: a process that called setsid escapes
// the process-group kill; the sandbox's Kill, called after it, gets it.
func TestSandboxKillsWhatLeftItsGroup(t *testing.T) {
	dir := t.TempDir()
	sb := newFakeSandbox(t, dir)
	p := mustPipeline(t, step{"name": "Escape", "run": []string{
		"setsid sleep 1000 >/dev/null 2>&1 & echo $! > escaped.pid",
		"sleep 1000 >/dev/null 2>&1 & echo $! > bg.pid",
	}})
	res, _ := run(t, context.Background(), Job{Pipeline: p, Dir: dir, Sandbox: sb})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s %q", res.Status, res.Reason)
	}
	if len(sb.escapees) != 1 {
		t.Fatalf("Kill found %d escaped processes, want 1 (problems: %v)", len(sb.escapees), sb.atKill)
	}
	for _, p := range sb.atKill {
		t.Error(p)
	}
	assertGone(t, readPID(t, filepath.Join(dir, "bg.pid")), readPID(t, filepath.Join(dir, "escaped.pid")))
}

// TestSandboxReasonInStepReason: the sandbox's reason is added to a failed
// or timed-out step's reason, and to the run's.
func TestSandboxReasonInStepReason(t *testing.T) {
	sb := newFakeSandbox(t, "")
	sb.reasons["OOM"] = "memory limit (64 MiB) exceeded: the kernel killed 1 process"
	sb.reasons["BOMB"] = "pids limit (64) reached: 9 forks refused"
	p := mustPipeline(t,
		step{"name": "Fine", "run": "echo fine"},
		step{"name": "Hog", "continueOnError": true, "run": []string{"true", "exit 137 # OOM"}},
		step{"name": "Bomb", "continueOnError": true, "timeout": "200ms", "run": "sleep 1000 # BOMB"},
		step{"name": "Plain", "run": "exit 3"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Sandbox: sb})
	if res.Status != StatusFailed {
		t.Fatalf("status %s %q", res.Status, res.Reason)
	}
	if got, want := rec.reason(0), ""; got != want {
		t.Errorf("succeeded step reason %q", got)
	}
	if got, want := rec.reason(1), "exit code 137 (command 2 of 2): memory limit (64 MiB) exceeded: the kernel killed 1 process"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if got, want := rec.reason(2), "exceeded the step's time limit of 200ms; pids limit (64) reached: 9 forks refused"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if got, want := rec.reason(3), "exit code 3"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if want := `step "Plain" failed: exit code 3`; res.Reason != want {
		t.Errorf("run reason %q, want %q", res.Reason, want)
	}
}

// TestSandboxTMPDIRGrantedWins: TMPDIR is a default; the job's env may set
// its own. Without a sandbox TMPDIR is not set at all.
func TestSandboxTMPDIRGrantedWins(t *testing.T) {
	sb := newFakeSandbox(t, "")
	p := mustPipeline(t, step{"name": "Tmp", "run": "echo TMPDIR=${TMPDIR-unset}"})
	_, rec := run(t, context.Background(), Job{Pipeline: p, Sandbox: sb, Env: map[string]string{"TMPDIR": "/mine"}})
	if got := rec.output(0, "stdout"); got != "TMPDIR=/mine\n" {
		t.Errorf("with a granted TMPDIR: %q", got)
	}
	_, rec = run(t, context.Background(), Job{Pipeline: p})
	if got := rec.output(0, "stdout"); got != "TMPDIR=unset\n" {
		t.Errorf("without a sandbox: %q", got)
	}
}

// TestPreambleChunks: a long preamble is cut into chunks; the steps' chunks
// go on numbering after it.
func TestPreambleChunks(t *testing.T) {
	p := mustPipeline(t, step{"name": "Out", "run": "echo out"})
	pre := strings.Repeat("x", MaxChunkSize+10)
	_, rec := run(t, context.Background(), Job{Pipeline: p, Preamble: []byte(pre)})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.chunks) != 3 {
		t.Fatalf("%d chunks, want 2 of preamble and 1 of output", len(rec.chunks))
	}
	if rec.chunks[0].Stream != "system" || rec.chunks[1].Stream != "system" || len(rec.chunks[0].Data)+len(rec.chunks[1].Data) != len(pre) {
		t.Errorf("preamble chunks %s/%d %s/%d", rec.chunks[0].Stream, len(rec.chunks[0].Data), rec.chunks[1].Stream, len(rec.chunks[1].Data))
	}
	if c := rec.chunks[2]; c.Seq != 3 || c.Stream != "stdout" || string(c.Data) != "out\n" {
		t.Errorf("output chunk %+v", c)
	}
}
