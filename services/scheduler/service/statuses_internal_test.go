package service

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
)

type flakyDelivery struct {
	fails int
	err   error
	calls int
}

func (r *flakyDelivery) deliver(context.Context) error {
	r.calls++
	if r.calls <= r.fails {
		return r.err
	}
	return nil
}

func TestFinishedStatus(t *testing.T) {
	for status, want := range map[string]forge.StatusState{
		"succeeded": forge.StatusSuccess, "failed": forge.StatusFailure, "timed_out": forge.StatusFailure,
		"cancelled": forge.StatusError, "errored": forge.StatusError,
	} {
		if got := finishedStatus(status, "why").State; got != want {
			t.Errorf("%s → %s, want %s", status, got, want)
		}
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	r := &flakyDelivery{fails: 2, err: errors.New("GitHub answered 502")}
	if err := retry(ctx, r.deliver); err != nil || r.calls != 3 {
		t.Errorf("after two failures: err %v, %d calls", err, r.calls)
	}
	r = &flakyDelivery{fails: 10, err: errors.New("GitHub answered 502")}
	if err := retry(ctx, r.deliver); err == nil || r.calls != statusAttempts {
		t.Errorf("always failing: err %v, %d calls, want %d", err, r.calls, statusAttempts)
	}
	r = &flakyDelivery{fails: 10, err: forge.ErrNotFound}
	if err := retry(ctx, r.deliver); !errors.Is(err, forge.ErrNotFound) || r.calls != 1 {
		t.Errorf("not found is not retried: err %v, %d calls", err, r.calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r = &flakyDelivery{fails: 10, err: errors.New("down")}
	if err := retry(cctx, r.deliver); err == nil || r.calls != 1 {
		t.Errorf("a stopped follower stops retrying: err %v, %d calls", err, r.calls)
	}
}

func TestCheckSummary(t *testing.T) {
	now := time.Now()
	r := &domain.Run{Reason: "step 2 failed", Steps: []domain.Step{
		{Name: "build", Status: "succeeded", Started: now, Finished: now.Add(1500 * time.Millisecond)},
		{Name: "a|b\n<script>", Status: "failed", Reason: strings.Repeat("r", 500)},
	}}
	got := checkSummary(r)
	for _, want := range []string{"step 2 failed\n\n", "| build | succeeded | 1.5s |", `| a\|b &lt;script&gt; | failed |  |`} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Count(got, "\n") != 6 || strings.Contains(got, strings.Repeat("r", maxStepReason+1)) {
		t.Errorf("summary is not one line per step with bounded reasons:\n%s", got)
	}
	for status, want := range map[string]string{"succeeded": "success", "failed": "failure", "errored": "failure", "cancelled": "cancelled", "timed_out": "timed_out"} {
		if got := checkConclusion(status); got != want {
			t.Errorf("%s → %s, want %s", status, got, want)
		}
	}
}
