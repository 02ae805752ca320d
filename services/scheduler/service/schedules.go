package service

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/pipeline"
	"github.com/simpleci/simpleci/libs/platform/id"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/scheduler/internal/domain"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Scheduled runs (docs/adr/0029-scheduled-runs.md). A project's cron schedules are kept
// here, in sched_schedules. Every scheduler replica ticks; on a tick each schedule's
// latest slot at or before now is fired when it falls after the schedule was set and
// within MissedSlotWindow of now. Firing a slot requests a run whose id derives from the
// schedule and the slot (id.FromKey), so the replicas that fire one slot all name one
// run: the event store lets one of them record it (a stream is created once), in the
// transaction that queues its job, and the others find it recorded.

// MaxSchedules bounds a project's schedules (the API document says the same).
const MaxSchedules = 20

// Defaults of the schedule loop.
const (
	DefaultScheduleTick     = 15 * time.Second
	DefaultMissedSlotWindow = time.Hour
)

// triggerSchedule is the event of a scheduled run (context.event == 'schedule').
const triggerSchedule = "schedule"

// schedule is a row of sched_schedules.
type schedule struct {
	projectID, orgID string
	cron, tz, ref    string
	createdAt        time.Time
	parsed           *pipeline.Cron
}

// key identifies what a schedule fires, whatever its position: the run of one slot of
// one project's cron, time zone and ref is the same run.
func (sc schedule) key() string {
	return sc.projectID + "\x00" + sc.cron + "\x00" + sc.tz + "\x00" + sc.ref
}

// runID is the id of the run of the schedule's slot.
func (sc schedule) runID(slot time.Time) string {
	return id.FromKey("schedule", sc.projectID, sc.cron, sc.tz, sc.ref, slot.UTC().Format(time.RFC3339))
}

// checkSchedule validates one schedule of a request, naming it by its 1-based place.
func checkSchedule(i int, in *apiv1.Schedule) (*pipeline.Cron, error) {
	c, err := pipeline.ParseCron(in.GetCron(), in.GetTimezone())
	if err != nil {
		return nil, invalid("schedule %d: %v", i+1, err)
	}
	if ref := in.GetRef(); ref != "" {
		if len(ref) > 255 {
			return nil, invalid("schedule %d: ref is %d bytes (at most 255)", i+1, len(ref))
		}
		if err := forge.ValidateRef(ref); err != nil {
			return nil, invalid("schedule %d: ref %q: %v", i+1, ref, err)
		}
	}
	return c, nil
}

// SetSchedules replaces the caller's project's schedules.
func (s *Service) SetSchedules(ctx context.Context, req *apiv1.SetSchedulesRequest) (*apiv1.ListSchedulesResponse, error) {
	org, proj, err := s.callersProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	p := proj.GetProject()
	in := req.GetSchedules()
	if len(in) > MaxSchedules {
		return nil, invalid("%d schedules: at most %d per project", len(in), MaxSchedules)
	}
	now := s.now()
	var out []schedule
	seen := map[string]int{}
	for i, sc := range in {
		c, err := checkSchedule(i, sc)
		if err != nil {
			return nil, err
		}
		row := schedule{projectID: p.GetId(), orgID: org, cron: c.Expr, tz: sc.GetTimezone(), ref: sc.GetRef(), createdAt: now, parsed: c}
		if j, dup := seen[row.key()]; dup {
			return nil, invalid("schedule %d is the same as schedule %d", i+1, j+1)
		}
		seen[row.key()] = i
		out = append(out, row)
	}
	if len(in) > 0 && !slices.Contains(p.GetEvents(), triggerSchedule) {
		return nil, invalid("project %s does not start runs on the schedule event (its events: %s): add it first, e.g. simpleci projects update %s --events %s",
			p.GetName(), strings.Join(p.GetEvents(), ","), p.GetName(), strings.Join(append(slices.Clone(p.GetEvents()), triggerSchedule), ","))
	}
	// Two concurrent replacements of one project's list may collide on its rows (the
	// loser's insert finds the winner's): the loser replaces the winner's list, again.
	for attempt := 1; ; attempt++ {
		if err = s.replaceSchedules(ctx, p.GetId(), out); err == nil || attempt == 3 || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("store schedules: %w", err)
	}
	s.log.Info("schedules set", "project", p.GetId(), "schedules", len(out), "actor", actor(ctx))
	return s.scheduleList(out, now), nil
}

// replaceSchedules stores out as the project's schedules, in one transaction; a schedule
// the project had keeps its createdAt.
func (s *Service) replaceSchedules(ctx context.Context, projectID string, out []schedule) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		old, err := s.schedulesOf(ctx, tx, projectID)
		if err != nil {
			return err
		}
		for i := range out { // an unchanged schedule keeps its start
			for _, o := range old {
				if o.key() == out[i].key() {
					out[i].createdAt = o.createdAt
				}
			}
		}
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM sched_schedules WHERE project_id = ?`), projectID); err != nil {
			return err
		}
		for i, sc := range out {
			if _, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO sched_schedules (project_id, position, org_id, cron, timezone, ref, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`), sc.projectID, i, sc.orgID, sc.cron, sc.tz, sc.ref, sc.createdAt.UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
}

// ListSchedules returns the caller's project's schedules.
func (s *Service) ListSchedules(ctx context.Context, req *apiv1.ListSchedulesRequest) (*apiv1.ListSchedulesResponse, error) {
	_, proj, err := s.callersProject(ctx, req.GetProject())
	if err != nil {
		return nil, err
	}
	rows, err := s.schedulesOf(ctx, s.db, proj.GetProject().GetId())
	if err != nil {
		return nil, fmt.Errorf("read schedules: %w", err)
	}
	return s.scheduleList(rows, s.now()), nil
}

func (s *Service) scheduleList(rows []schedule, now time.Time) *apiv1.ListSchedulesResponse {
	out := &apiv1.ListSchedulesResponse{Schedules: []*apiv1.Schedule{}}
	for _, sc := range rows {
		a := &apiv1.Schedule{Cron: sc.cron, Timezone: sc.tz, Ref: sc.ref, CreatedAt: timestamppb.New(sc.createdAt)}
		if sc.parsed != nil {
			if next := sc.parsed.Next(now); !next.IsZero() {
				a.NextRunAt = timestamppb.New(next)
			}
		}
		out.Schedules = append(out.Schedules, a)
	}
	return out
}

// schedulesOf reads a project's schedules in order ("" : every project's).
func (s *Service) schedulesOf(ctx context.Context, q querier, projectID string) ([]schedule, error) {
	query := `SELECT project_id, org_id, cron, timezone, ref, created_at FROM sched_schedules`
	var args []any
	if projectID != "" {
		query += ` WHERE project_id = ?`
		args = append(args, projectID)
	}
	rows, err := q.QueryContext(ctx, s.db.Q(query+` ORDER BY project_id, position`), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []schedule
	for rows.Next() {
		var sc schedule
		var created int64
		if err := rows.Scan(&sc.projectID, &sc.orgID, &sc.cron, &sc.tz, &sc.ref, &created); err != nil {
			return nil, err
		}
		sc.createdAt = time.Unix(0, created)
		if sc.parsed, err = pipeline.ParseCron(sc.cron, sc.tz); err != nil {
			// Checked when set; a time zone a later tzdata dropped lands here.
			s.log.Error("stored schedule no longer parses; it does not fire", "project", sc.projectID, "cron", sc.cron, "timezone", sc.tz, "err", err)
		}
		out = append(out, sc)
	}
	return out, rows.Err()
}

// now is the scheduler's clock for schedules (Config.Clock).
func (s *Service) now() time.Time { return s.cfg.Clock() }

// DueSlot is the missed-slot rule: the slot of c to fire at now, given the schedule's
// start (created) and the last slot this process fired (zero: none). It is the latest
// slot in (max(created, last, now-window), now], or zero: of several slots missed while
// no scheduler ran, only the latest runs, and none older than window.
func DueSlot(c *pipeline.Cron, created, last, now time.Time, window time.Duration) time.Time {
	after := now.Add(-window)
	if created.After(after) {
		after = created
	}
	if last.After(after) {
		after = last
	}
	// A slot exactly at the start does not run: Latest's interval is open at after.
	return c.Latest(after, now)
}

// scheduleLoop fires due slots every ScheduleTick until ctx ends.
func (s *Service) scheduleLoop(ctx context.Context) {
	fired := map[string]time.Time{} // schedule key -> last slot handled by this process
	t := time.NewTicker(s.cfg.ScheduleTick)
	defer t.Stop()
	for {
		tctx, cancel := context.WithTimeout(ctx, s.cfg.ScheduleTick+time.Minute)
		s.fireDue(tctx, fired)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fireDue fires the due slot of every schedule; fired remembers the slots handled.
func (s *Service) fireDue(ctx context.Context, fired map[string]time.Time) {
	all, err := s.schedulesOf(ctx, s.db, "")
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("read schedules", "err", err)
		}
		return
	}
	now := s.now()
	live := make(map[string]bool, len(all))
	for _, sc := range all {
		live[sc.key()] = true
		if sc.parsed == nil {
			continue
		}
		slot := DueSlot(sc.parsed, sc.createdAt, fired[sc.key()], now, s.cfg.MissedSlotWindow)
		if slot.IsZero() {
			continue
		}
		if err := s.fire(ctx, sc, slot); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("scheduled run not started; retried next tick", "project", sc.projectID, "cron", sc.cron, "slot", slot, "err", err)
			}
			continue
		}
		fired[sc.key()] = slot
	}
	for k := range fired {
		if !live[k] {
			delete(fired, k)
		}
	}
}

// fire starts the run of one slot, unless it was started (by any replica) already.
func (s *Service) fire(ctx context.Context, sc schedule, slot time.Time) error {
	runID := sc.runID(slot)
	if v, err := s.store.StreamVersion(ctx, domain.StreamID(runID)); err != nil {
		return err
	} else if v > 0 {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	proj, err := s.cfg.Projects.ResolveProject(pctx, &apiv1.ResolveProjectRequest{OrgId: sc.orgID, Project: sc.projectID})
	cancel()
	if status.Code(err) == codes.NotFound { // the project was deleted: so are its schedules
		_, err := s.db.ExecContext(ctx, s.db.Q(`DELETE FROM sched_schedules WHERE project_id = ?`), sc.projectID)
		s.log.Info("schedules of a deleted project removed", "project", sc.projectID)
		return err
	}
	if err != nil {
		return fmt.Errorf("resolve project: %w", err)
	}
	if !slices.Contains(proj.GetProject().GetEvents(), triggerSchedule) {
		s.log.Info("scheduled slot skipped: the project's events do not include schedule", "project", sc.projectID, "slot", slot)
		return nil
	}
	rr := &eventsv1.RunRequested{RunId: runID, OrgId: sc.orgID, ProjectId: sc.projectID,
		Provider: proj.GetProject().GetProvider(), Repository: proj.GetProject().GetRepository(),
		Ref: sc.ref, Event: triggerSchedule, Actor: "schedule", RequestedAt: timestamppb.New(slot),
		Context: map[string]string{"schedule": sc.cron, "schedule_slot": slot.UTC().Format(time.RFC3339)},
		// The project's own repository at a ref its maintainers named.
		Trust: eventsv1.Trust_TRUST_SAME_REPOSITORY}
	if b, ok := strings.CutPrefix(sc.ref, "refs/heads/"); ok {
		rr.Branch = b
	} else if sc.ref != "" && !strings.HasPrefix(sc.ref, "refs/") {
		rr.Branch = sc.ref
	}
	r, err := s.requestRun(ctx, rr, false)
	if err != nil {
		return err
	}
	if r != nil { // recorded by this replica or, in a close race, by another
		s.log.Info("scheduled slot has its run", "run", r.ID, "number", r.Number, "project", sc.projectID, "cron", sc.cron, "slot", slot)
	}
	return nil
}
