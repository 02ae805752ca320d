package local

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// simpleciBinary builds the simpleci command once per test process.
func simpleciBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the simpleci binary")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "simpleci-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "simpleci")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/simpleci/simpleci/services/simpleci/cmd/simpleci").CombinedOutput()
		if err != nil {
			binErr = errors.New(err.Error() + "\n" + string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("build simpleci: %v", binErr)
	}
	return binPath
}

// TestBinaryExitCodes runs the real command: the dispatch in node.Main,
// flags and exit codes end to end.
func TestBinaryExitCodes(t *testing.T) {
	bin := simpleciBinary(t)
	tests := []struct {
		name     string
		pipeline string
		args     []string
		code     int
		stdout   string
		stderr   string
	}{
		{"exec succeeds", `{"steps": [{"name": "Ok", "run": "echo ok"}]}`, []string{"exec"}, 0, "==> Ok\nok\n", ""},
		{"exec fails", `{"steps": [{"name": "Bad", "run": "exit 4"}]}`, []string{"exec"}, 1, "<== Bad: failed (exit code 4)", ""},
		{"exec invalid", `{"steps": [{"name": "Bad"}]}`, []string{"exec"}, 2, "", `.simpleci/pipeline.json:1:12: step "Bad": missing "run"`},
		{"exec short secret", `{"steps": [{"name": "Ok", "run": "true"}]}`, []string{"exec", "--secret", "A=b"}, 2, "", "secrets need at least 4"},
		{"lint ok", `{"steps": [{"name": "Ok", "run": "true"}]}`, []string{"lint", "--event", "push"}, 0, ".simpleci/pipeline.json: ok, 1 step\nwould run   Ok", ""},
		{"lint errors", `{"steps": [{"name": "Bad"}]}`, []string{"lint"}, 1, `.simpleci/pipeline.json:1:12: step "Bad": missing "run"`, ""},
		{"lint usage", `{"steps": [{"name": "Ok", "run": "true"}]}`, []string{"lint", "extra"}, 2, "", `unexpected argument "extra"`},
		{"help lists the commands", "", []string{"help"}, 0, "exec    run the pipeline", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.pipeline != "" {
				writeFile(t, filepath.Join(dir, ".simpleci", "pipeline.json"), tt.pipeline)
			}
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = dir
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(out.String(), tt.stdout) || !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("exit %d (want %d)\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errOut.String())
			}
			if strings.Contains(out.String(), "\x1b[") {
				t.Errorf("colors although stdout is not a terminal:\n%s", out.String())
			}
		})
	}
}

// TestBinaryInterrupt sends SIGINT (Ctrl-C) to `simpleci exec`: the
// running step's processes are killed, the summary is printed, exit 1.
func TestBinaryInterrupt(t *testing.T) {
	bin := simpleciBinary(t)
	dir := pipelineDir(t, `{"steps": [
		{"name": "Long", "run": "sleep 60 & echo $! > sleep.pid; echo started; wait"},
		{"name": "Next", "run": "echo next"}]}`)
	cmd := exec.Command(bin, "exec")
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(out.String(), "started\n") })
	data, err := os.ReadFile(filepath.Join(dir, "sleep.pid"))
	if err != nil {
		t.Fatal(err)
	}
	sleepPID, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("still running 10s after SIGINT:\n%s", out.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{"<== Long: cancelled", "--> Next: skipped (the run was cancelled)", "Long  cancelled", "run cancelled in"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if sleepPID > 0 && syscall.Kill(sleepPID, 0) == nil {
		// It may be a zombie of a reaped-late parent; check its state.
		stat, _ := os.ReadFile("/proc/" + strconv.Itoa(sleepPID) + "/stat")
		if !strings.Contains(string(stat), ") Z ") {
			t.Errorf("the step's background process %d survived the interrupt: %s", sleepPID, stat)
		}
	}
}
