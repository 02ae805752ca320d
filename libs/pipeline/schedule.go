package pipeline

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones resolve the same on every host, with or without a zoneinfo database

	"github.com/robfig/cron/v3"
)

// Bounds of a schedule's fields.
const (
	MaxScheduleCron     = 128
	MaxScheduleTimezone = 64
)

// cronParser reads the five standard fields (minute, hour, day of month, month, day of
// week), with names (JAN, MON) and the usual * , - / forms; no seconds, no @descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// Cron is a parsed cron expression in its time zone: the slots at which a schedule
// fires (docs/adr/0029-scheduled-runs.md).
type Cron struct {
	// Expr is the expression as given (normalised spaces) and Location its time zone
	// (UTC when none was given).
	Expr     string
	Location *time.Location
	sched    cron.Schedule
}

// ParseCron checks a 5-field cron expression and an IANA time zone name ("" means
// UTC): "0 3 * * 1-5" with "Europe/Berlin" is 03:00 Berlin time on weekdays. The
// errors say which part is wrong.
func ParseCron(expr, timezone string) (*Cron, error) {
	if len(expr) > MaxScheduleCron {
		return nil, fmt.Errorf("cron expression is %d bytes (at most %d)", len(expr), MaxScheduleCron)
	}
	fields := strings.Fields(expr)
	if len(fields) != 5 {
		return nil, fmt.Errorf("cron expression %q has %d fields: want 5 (minute hour day-of-month month day-of-week), such as \"0 3 * * 1-5\"", expr, len(fields))
	}
	for _, f := range fields {
		if strings.ContainsAny(f, "=@") {
			// robfig/cron reads a CRON_TZ=... prefix and @descriptors itself; the time
			// zone has its own field here, and descriptors are not cron's five fields.
			return nil, fmt.Errorf("cron expression %q: %q is not a cron field (set the time zone in its own field)", expr, f)
		}
	}
	loc := time.UTC
	if timezone != "" {
		if len(timezone) > MaxScheduleTimezone || timezone == "Local" {
			return nil, fmt.Errorf("time zone %.64q: want an IANA name such as Europe/Berlin, or empty for UTC", timezone)
		}
		var err error
		if loc, err = time.LoadLocation(timezone); err != nil {
			return nil, fmt.Errorf("time zone %q: not an IANA time zone name (such as Europe/Berlin or America/New_York)", timezone)
		}
	}
	norm := strings.Join(fields, " ")
	s, err := cronParser.Parse(norm)
	if err != nil {
		return nil, fmt.Errorf("cron expression %q: %v", norm, err)
	}
	if spec, ok := s.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return &Cron{Expr: norm, Location: loc, sched: s}, nil
}

// Next returns the first slot strictly after t (zero when there is none within five
// years, such as "0 0 30 2 *"). Time zones and daylight saving time are the library's
// (robfig/cron): a wall-clock time skipped when clocks go forward does not occur that
// day, one repeated when they go back occurs at each of its instants.
func (c *Cron) Next(t time.Time) time.Time { return c.sched.Next(t) }

// Latest returns the last slot in (after, until], or zero when there is none. It walks
// forward from after, so after bounds the work: callers pass a recent time.
func (c *Cron) Latest(after, until time.Time) time.Time {
	var last time.Time
	for t := c.Next(after); !t.IsZero() && !t.After(until); t = c.Next(t) {
		last = t
	}
	return last
}
