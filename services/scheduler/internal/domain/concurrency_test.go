package domain_test

import (
	"errors"
	"strings"
	"testing"

	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/protobuf/proto"
)

func keyed(key string, limit int32) *eventsv1.RunQueued {
	q := queued("a")
	q.Number, q.ConcurrencyKey, q.ConcurrencyLimit = 7, key, limit
	return q
}

func TestCheckKey(t *testing.T) {
	for _, c := range []struct {
		q      *eventsv1.RunQueued
		before int
		held   bool
	}{
		{queued("a"), 50, false},            // no key: never held
		{keyed("deploy-main", 1), 0, false}, // the first of its key
		{keyed("deploy-main", 1), 1, true},  // one running or older queued run
		{keyed("deploy-main", 0), 1, true},  // a limit of 0 (an old event) counts as 1
		{keyed("k", 3), 2, false},
		{keyed("k", 3), 3, true},
	} {
		err := fold(c.q).CheckKey(c.before)
		if held := errors.Is(err, domain.ErrKeyHeld); held != c.held {
			t.Errorf("key %q limit %d, %d before: %v", c.q.ConcurrencyKey, c.q.ConcurrencyLimit, c.before, err)
		}
	}
}

func TestSupersede(t *testing.T) {
	// A queued run ends at once, cancelled, naming the run that superseded it.
	r := fold(keyed("k", 1))
	evs, err := r.Supersede(12, at(5))
	if err != nil || len(evs) != 2 {
		t.Fatalf("%v %v", evs, err)
	}
	r = fold(append([]proto.Message{keyed("k", 1)}, evs...)...)
	if r.Status != domain.RunCancelled || r.Reason != "superseded by run 12" {
		t.Fatalf("queued: %s %q", r.Status, r.Reason)
	}

	// A running one is asked to stop; whatever its runner reports, it ends with that reason.
	r = fold(keyed("k", 1), started())
	evs, err = r.Supersede(12, at(5))
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %v", evs, err)
	}
	r = fold(append([]proto.Message{keyed("k", 1), started()}, evs...)...)
	if r.Status != domain.RunRunning || !r.CancelRequested {
		t.Fatalf("running: %s %v", r.Status, r.CancelRequested)
	}
	if again, _ := r.Supersede(13, at(6)); len(again) != 0 {
		t.Fatalf("superseded twice: %v", again)
	}
	fin, err := r.Finish("lease-1", domain.RunCancelled, "cancelled", 0, at(7))
	if err != nil || fin.Reason != "superseded by run 12" {
		t.Fatalf("finish: %v %v", fin, err)
	}
	// A runner lost after the request: the reason still says why it was stopped.
	if ev, _ := r.LoseRunner("lease-1", 3, 0, at(8)).(*eventsv1.RunFinished); ev == nil || ev.Status != domain.RunCancelled ||
		ev.Reason != "superseded by run 12; the runner stopped answering" {
		t.Fatalf("lost: %v", ev)
	}
	// A user's cancel keeps the runner's reason.
	u := fold(keyed("k", 1), started(), &eventsv1.RunCancelRequested{Actor: "ann"})
	if fin, _ := u.Finish("lease-1", domain.RunCancelled, "cancelled", 0, at(7)); fin.Reason != "cancelled" {
		t.Fatalf("user cancel: %q", fin.Reason)
	}
	// A finished run records nothing.
	done := fold(keyed("k", 1), &eventsv1.RunFinished{Status: domain.RunSucceeded})
	if evs, err := done.Supersede(12, at(5)); err != nil || len(evs) != 0 {
		t.Fatalf("finished: %v %v", evs, err)
	}
}

func TestKeyWaitReason(t *testing.T) {
	for _, c := range []struct {
		limit          int
		running, ahead []int64
		want           string
	}{
		{1, []int64{4}, nil, `waiting for concurrency key "deploy-main" (limit 1): held by run 4`},
		{1, []int64{4}, []int64{5, 6}, `waiting for concurrency key "deploy-main" (limit 1): held by run 4; runs 5, 6 wait before it`},
		{1, nil, []int64{5}, `waiting for concurrency key "deploy-main" (limit 1): run 5 waits before it`},
		{2, []int64{1, 2, 3, 4, 5, 6, 7}, nil, `held by runs 1, 2, 3, 4, 5 and 2 more`},
		{2, []int64{4}, nil, ""}, // below the limit: the key does not hold it
	} {
		got := domain.KeyWaitReason("deploy-main", c.limit, c.running, c.ahead)
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("%d %v %v: %q, want %q", c.limit, c.running, c.ahead, got, c.want)
		}
	}
	if got := domain.KeyQueueFull("k", 100); !strings.Contains(got, `concurrency key "k" already has 100 runs waiting (at most 100)`) {
		t.Errorf("full: %q", got)
	}
}
