package service

import (
	"context"
	"errors"
	"testing"

	"github.com/simpleci/simpleci/libs/forge"
)

type flakyReporter struct {
	fails int
	err   error
	calls int
}

func (r *flakyReporter) SetStatus(ctx context.Context, repo, sha string, st forge.Status) error {
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

func TestDeliverStatusRetries(t *testing.T) {
	ctx := context.Background()
	r := &flakyReporter{fails: 2, err: errors.New("GitHub answered 502")}
	if err := deliverStatus(ctx, r, "o/r", "sha", forge.Status{State: forge.StatusPending}); err != nil || r.calls != 3 {
		t.Errorf("after two failures: err %v, %d calls", err, r.calls)
	}
	r = &flakyReporter{fails: 10, err: errors.New("GitHub answered 502")}
	if err := deliverStatus(ctx, r, "o/r", "sha", forge.Status{State: forge.StatusPending}); err == nil || r.calls != statusAttempts {
		t.Errorf("always failing: err %v, %d calls, want %d", err, r.calls, statusAttempts)
	}
	r = &flakyReporter{fails: 10, err: forge.ErrNotFound}
	if err := deliverStatus(ctx, r, "o/r", "sha", forge.Status{State: forge.StatusPending}); !errors.Is(err, forge.ErrNotFound) || r.calls != 1 {
		t.Errorf("not found is not retried: err %v, %d calls", err, r.calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r = &flakyReporter{fails: 10, err: errors.New("down")}
	if err := deliverStatus(cctx, r, "o/r", "sha", forge.Status{State: forge.StatusPending}); err == nil || r.calls != 1 {
		t.Errorf("a stopped follower stops retrying: err %v, %d calls", err, r.calls)
	}
}
