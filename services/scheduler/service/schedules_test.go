package service_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/pipeline"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"github.com/simpleci/simpleci/services/scheduler/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDueSlotMissedSlotRule(t *testing.T) {
	c, err := pipeline.ParseCron("0 * * * *", "")
	if err != nil {
		t.Fatal(err)
	}
	ts := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var zero time.Time
	for _, tc := range []struct {
		name               string
		created, last, now string
		window             time.Duration
		want               string // "" : nothing due
	}{
		{"the slot just passed", "2026-01-01T00:00:00Z", "", "2026-01-01T10:00:05Z", time.Hour, "2026-01-01T10:00:00Z"},
		{"already fired", "2026-01-01T00:00:00Z", "2026-01-01T10:00:00Z", "2026-01-01T10:30:00Z", time.Hour, ""},
		{"down three hours: only the latest missed slot", "2026-01-01T00:00:00Z", "2026-01-01T07:00:00Z", "2026-01-01T10:30:00Z", time.Hour, "2026-01-01T10:00:00Z"},
		{"the latest missed slot is older than the window", "2026-01-01T00:00:00Z", "", "2026-01-01T10:30:00Z", 20 * time.Minute, ""},
		{"no slot before the schedule was set", "2026-01-01T10:10:00Z", "", "2026-01-01T10:30:00Z", time.Hour, ""},
		{"a slot at the moment it was set does not run", "2026-01-01T10:00:00Z", "", "2026-01-01T10:30:00Z", time.Hour, ""},
	} {
		last := zero
		if tc.last != "" {
			last = ts(tc.last)
		}
		got := service.DueSlot(c, ts(tc.created), last, ts(tc.now), tc.window)
		if (tc.want == "" && !got.IsZero()) || (tc.want != "" && !got.Equal(ts(tc.want))) {
			t.Errorf("%s: DueSlot = %v, want %q", tc.name, got, tc.want)
		}
	}
}

// fakeClock is a clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestSchedulesTwoReplicas runs two schedulers over one database: each slot of a
// schedule starts exactly one run, with event schedule, listed by trigger=schedule; a
// stop of several hours runs only the latest missed slot.
func TestSchedulesTwoReplicas(t *testing.T) {
	clock := &fakeClock{}
	start := time.Date(2026, 1, 1, 10, 0, 30, 0, time.UTC)
	clock.set(start)
	var cfg *service.Config
	e := newEnv(t, func(c *service.Config) {
		c.Clock, c.ScheduleTick = clock.now, 5*time.Millisecond
		cfg = c
	})
	projects := cfg.Projects.(*fakeProjects)
	projects.projects = append(projects.projects, &apiv1.ResolvedProject{Project: &apiv1.Project{Id: "p-nightly", OrgId: "org1", Name: "nightly",
		Provider: "local", Repository: e.repo.dir, Events: []string{"manual", "schedule"}, Tier: "standard"}})
	second, err := service.New(e.ctx, *cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, stop2 := context.WithCancel(e.ctx)
	defer stop2()
	if err := second.Start(ctx2); err != nil {
		t.Fatal(err)
	}

	// Bad schedules are refused, saying why.
	for _, c := range []struct {
		project string
		in      []*apiv1.Schedule
		want    string
	}{
		{"nightly", []*apiv1.Schedule{{Cron: "0 3 * *"}}, "schedule 1: cron expression \"0 3 * *\" has 4 fields"},
		{"nightly", []*apiv1.Schedule{{Cron: "0 3 * * *", Timezone: "Europe/Nowhere"}}, "schedule 1: time zone \"Europe/Nowhere\""},
		{"nightly", []*apiv1.Schedule{{Cron: "0 3 * * *", Ref: "a..b"}}, "schedule 1: ref \"a..b\""},
		{"nightly", []*apiv1.Schedule{{Cron: "0 3 * * *"}, {Cron: "0  3 * * *"}}, "schedule 2 is the same as schedule 1"},
		{"app", []*apiv1.Schedule{{Cron: "0 3 * * *"}}, "does not start runs on the schedule event"},
	} {
		_, err := e.svc.SetSchedules(e.user("org1"), &apiv1.SetSchedulesRequest{Project: c.project, Schedules: c.in})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetSchedules(%v) = %v, want InvalidArgument with %q", c.in, err, c.want)
		}
	}

	set, err := e.svc.SetSchedules(e.user("org1"), &apiv1.SetSchedulesRequest{Project: "nightly",
		Schedules: []*apiv1.Schedule{{Cron: "* * * * *", Ref: "main"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := set.GetSchedules()[0].GetNextRunAt().AsTime(); !got.Equal(start.Truncate(time.Minute).Add(time.Minute)) {
		t.Errorf("nextRunAt = %s, want the next minute", got)
	}
	scheduled := func() []*apiv1.Run {
		resp, err := e.svc.ListRuns(e.user("org1"), &apiv1.ListRunsRequest{Project: "nightly", Trigger: "schedule", PageSize: 200})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetRuns()
	}
	// Nothing is due until the first minute after the schedule was set.
	time.Sleep(50 * time.Millisecond)
	const slots = 5
	for i := 1; i <= slots; i++ {
		clock.advance(time.Minute)
		e.eventually("the run of slot "+clock.now().Truncate(time.Minute).String(), func() bool { return len(scheduled()) >= i })
		time.Sleep(50 * time.Millisecond) // ten ticks of each replica
		if n := len(scheduled()); n != i {
			t.Fatalf("after %d slots: %d scheduled runs, want %d", i, n, i)
		}
	}
	runs := scheduled()
	for i, r := range runs {
		if r.GetEvent() != "schedule" || r.GetTrigger() != "schedule" || r.GetBranch() != "main" || r.GetSha() != e.repo.shas["main"] || r.GetStatus() != "queued" {
			t.Errorf("run %d: event %q trigger %q branch %q sha %q status %q, want a queued schedule run of main's head", r.GetNumber(), r.GetEvent(), r.GetTrigger(), r.GetBranch(), r.GetSha(), r.GetStatus())
		}
		if want := int64(slots - i); r.GetNumber() != want {
			t.Errorf("run list position %d: number %d, want %d", i, r.GetNumber(), want)
		}
	}
	job := e.mustClaim()
	if job.GetContext()["event"] != "schedule" || job.GetContext()["schedule"] != "* * * * *" {
		t.Errorf("job context %v, want event schedule and the cron", job.GetContext())
	}

	// Both schedulers stop for three hours (the clock jumps): of the 180 missed slots only
	// the latest runs, once.
	clock.advance(3 * time.Hour)
	e.eventually("the latest missed slot's run", func() bool { return len(scheduled()) >= slots+1 })
	time.Sleep(100 * time.Millisecond)
	if n := len(scheduled()); n != slots+1 {
		t.Fatalf("after a stop of three hours: %d scheduled runs, want %d", n, slots+1)
	}
	latest, err := e.svc.GetRun(e.user("org1"), &apiv1.GetRunRequest{Run: scheduled()[0].GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if want := clock.now().Truncate(time.Minute); !latest.GetCreatedAt().IsValid() || latest.GetNumber() != slots+1 {
		t.Errorf("latest run %d, want number %d for slot %s", latest.GetNumber(), slots+1, want)
	}

	// Setting the same schedule again keeps when it was set; a new one starts now.
	again, err := e.svc.SetSchedules(e.user("org1"), &apiv1.SetSchedulesRequest{Project: "nightly",
		Schedules: []*apiv1.Schedule{{Cron: "*  *  * * *", Ref: "main"}, {Cron: "0 3 * * *", Timezone: "Asia/Tokyo"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := again.GetSchedules(); len(got) != 2 || !got[0].GetCreatedAt().AsTime().Equal(start) || !got[1].GetCreatedAt().AsTime().Equal(clock.now()) {
		t.Errorf("schedules set again: %v; want the first created at %s, the second now", got, start)
	}

	// Removing the schedules stops the runs.
	if _, err := e.svc.SetSchedules(e.user("org1"), &apiv1.SetSchedulesRequest{Project: "nightly"}); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Minute)
	time.Sleep(100 * time.Millisecond)
	if n := len(scheduled()); n != slots+1 {
		t.Errorf("after removing the schedule: %d scheduled runs, want %d", n, slots+1)
	}
	if l, err := e.svc.ListSchedules(e.user("org1"), &apiv1.ListSchedulesRequest{Project: "nightly"}); err != nil || len(l.GetSchedules()) != 0 {
		t.Errorf("ListSchedules = %v, %v; want none", l, err)
	}
}
