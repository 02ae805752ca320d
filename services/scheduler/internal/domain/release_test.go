package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestRelease(t *testing.T) {
	running := func(cancel bool) *domain.Run {
		r := &domain.Run{}
		r.Apply(&eventsv1.RunQueued{RunId: "r1", OrgId: "o", ProjectId: "p", Tier: "standard"}, time.Now())
		r.Apply(&eventsv1.RunStarted{RunId: "r1", RunnerId: "runner-a", LeaseId: "lease-1", StartedAt: timestamppb.Now()}, time.Now())
		if cancel {
			r.Apply(&eventsv1.RunCancelRequested{RunId: "r1"}, time.Now())
		}
		return r
	}
	t.Run("requeues as the next attempt", func(t *testing.T) {
		r := running(false)
		ev, err := r.Release("lease-1", "stopped at once", time.Now())
		rq, ok := ev.(*eventsv1.RunRequeued)
		if err != nil || !ok || rq.Attempt != 2 || !strings.Contains(rq.Reason, "handed back") {
			t.Fatalf("Release: %v, %v; want RunRequeued attempt 2 saying handed back", ev, err)
		}
	})
	t.Run("a run being cancelled ends cancelled", func(t *testing.T) {
		ev, err := running(true).Release("lease-1", "", time.Now())
		if f, ok := ev.(*eventsv1.RunFinished); err != nil || !ok || f.Status != domain.RunCancelled {
			t.Fatalf("Release: %v, %v; want RunFinished cancelled", ev, err)
		}
	})
	t.Run("another lease is refused", func(t *testing.T) {
		if _, err := running(false).Release("lease-2", "", time.Now()); !errors.Is(err, domain.ErrLeaseLost) {
			t.Fatalf("Release with another lease: %v, want ErrLeaseLost", err)
		}
	})
}
