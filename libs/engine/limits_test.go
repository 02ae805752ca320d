package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStepLogLimitCutsAndTheStepKeepsRunning(t *testing.T) {
	dir := t.TempDir()
	p := mustPipeline(t,
		step{"name": "Flood", "run": "head -c 307200 /dev/zero | tr '\\0' a; echo done > finished"},
		step{"name": "After", "run": "echo after"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Dir: dir, StepLogLimit: 100 << 10})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s (%s), want succeeded: a capped step keeps running", res.Status, res.Reason)
	}
	if out := rec.output(0, "stdout"); len(out) != 100<<10 || strings.Trim(out, "a") != "" {
		t.Errorf("step 0 delivered %d bytes, want exactly the cap (102400)", len(out))
	}
	sys := rec.output(0, "system")
	for _, want := range []string{"output truncated: step log limit (100 KiB) reached", "output truncated: 204800 bytes of this step's output dropped"} {
		if !strings.Contains(sys, want) {
			t.Errorf("step 0 system lines %q lack %q", sys, want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "finished")); err != nil || string(b) != "done\n" {
		t.Errorf("the capped step did not run to its end: %v", err)
	}
	if out := rec.output(1, "stdout"); out != "after\n" {
		t.Errorf("the next step's output %q, want its own cap: after", out)
	}
}

func TestRunLogLimitCutsEveryLaterStep(t *testing.T) {
	p := mustPipeline(t,
		step{"name": "One", "run": "head -c 122880 /dev/zero | tr '\\0' a"},
		step{"name": "Two", "run": "head -c 122880 /dev/zero | tr '\\0' b"},
		step{"name": "Three", "run": "echo c"},
	)
	res, rec := run(t, context.Background(), Job{Pipeline: p, Preamble: []byte("isolation: none\n"), StepLogLimit: 100 << 10, RunLogLimit: 150 << 10})
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s (%s)", res.Status, res.Reason)
	}
	total := len("isolation: none\n")
	for i := range 3 {
		total += len(rec.output(i, "stdout"))
	}
	if total != 150<<10 {
		t.Errorf("the run delivered %d bytes of output, want exactly the run cap (153600)", total)
	}
	if sys := rec.output(0, "system"); !strings.Contains(sys, "step log limit (100 KiB) reached") {
		t.Errorf("step 0 system lines %q", sys)
	}
	if sys := rec.output(1, "system"); !strings.Contains(sys, "run log limit (150 KiB) reached") || strings.Contains(sys, "step log limit") {
		t.Errorf("step 1 system lines %q: want the run's cut only", sys)
	}
	if out, sys := rec.output(2, "stdout"), rec.output(2, "system"); out != "" || sys != "[simpleci] output truncated: 2 bytes of this step's output dropped\n" {
		t.Errorf("step 2: output %q, system %q: want nothing but the count of what was dropped", out, sys)
	}
}

func TestLogLimitCutsBeforeACharacter(t *testing.T) {
	p := mustPipeline(t, step{"name": "UTF-8", "run": "printf 'a\\303\\251\\303\\251\\303\\251\\303\\251\\303\\251'"})
	_, rec := run(t, context.Background(), Job{Pipeline: p, StepLogLimit: 10})
	out := rec.output(0, "stdout")
	if out != "aéééé" || !utf8.ValidString(out) {
		t.Errorf("output %q, want the whole characters before the cap: aéééé", out)
	}
}
