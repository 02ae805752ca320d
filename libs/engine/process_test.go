package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCommandLoopWithoutPidfd runs commands as on a kernel without
// pidfd_open (before Linux 5.3), where the loop notices the exit by
// polling wait4.
func TestCommandLoopWithoutPidfd(t *testing.T) {
	usePidfd = false
	defer func() { usePidfd = true }()
	p := mustPipeline(t,
		step{"name": "Quick", "run": "true"},
		step{"name": "Output", "run": []string{loremCommand(5000), "echo err >&2; exit 3"}, "continueOnError": true},
		step{"name": "Closes its output", "run": "exec >&- 2>&-; sleep 0.2"},
	)
	start := time.Now()
	res, rec := run(t, context.Background(), Job{Pipeline: p})
	if got := rec.statuses(); got != "0:succeeded 1:failed 2:succeeded" {
		t.Errorf("statuses %s (%s)", got, res.Reason)
	}
	if r := rec.reason(1); r != "exit code 3 (command 2 of 2)" {
		t.Errorf("reason %q", r)
	}
	if n := strings.Count(rec.output(1, "stdout"), "\n"); n != 5000 {
		t.Errorf("%d lines of output, want 5000", n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

// TestBulkAndInteractiveOutput checks the batching of bulk output: every
// byte arrives, in order, also when the stream turns quiet again, and the
// other stream's lines are not lost in between.
func TestBulkAndInteractiveOutput(t *testing.T) {
	p := mustPipeline(t, step{"name": "Mixed", "run": loremCommand(50_000) + "; echo tail; sleep 0.05; echo late >&2; seq 1 3"})
	res, rec := run(t, context.Background(), Job{Pipeline: p})
	if res.Status != StatusSucceeded {
		t.Fatalf("%s %s", res.Status, res.Reason)
	}
	var want strings.Builder
	for i := 1; i <= 50_000; i++ {
		fmt.Fprintf(&want, "%d lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore\n", i)
	}
	want.WriteString("tail\n1\n2\n3\n")
	if got := rec.output(0, "stdout"); got != want.String() {
		t.Errorf("stdout: %d bytes, want %d", len(got), want.Len())
	}
	if got := rec.output(0, "stderr"); got != "late\n" {
		t.Errorf("stderr %q", got)
	}
}
