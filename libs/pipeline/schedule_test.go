package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/pipeline"
)

func TestParseCronErrors(t *testing.T) {
	for _, c := range []struct{ expr, tz, want string }{
		{"0 3 * *", "", "has 4 fields: want 5"},
		{"0 0 3 * * *", "", "has 6 fields: want 5"},
		{"", "", "has 0 fields"},
		{"61 * * * *", "", "end of range (61) above maximum (59)"},
		{"0 25 * * *", "", "above maximum (23)"},
		{"0 3 * * funday", "", `cron expression "0 3 * * funday"`},
		{"CRON_TZ=UTC 0 3 * *", "", "is not a cron field"},
		{"@daily x y z w", "", "is not a cron field"},
		{"0 3 * * *", "Mars/Olympus", `time zone "Mars/Olympus": not an IANA time zone name`},
		{"0 3 * * *", "Local", "want an IANA name"},
		{strings.Repeat("1", 200), "", "at most 128"},
	} {
		_, err := pipeline.ParseCron(c.expr, c.tz)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseCron(%q, %q) = %v, want an error with %q", c.expr, c.tz, err, c.want)
		}
	}
}

func mustCron(t *testing.T, expr, tz string) *pipeline.Cron {
	t.Helper()
	c, err := pipeline.ParseCron(expr, tz)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCronNextInTimeZone(t *testing.T) {
	c := mustCron(t, "0  3 * *   1-5", "Europe/Berlin")
	if c.Expr != "0 3 * * 1-5" {
		t.Errorf("Expr = %q, want normalised spaces", c.Expr)
	}
	// Friday 2026-01-02 10:00 UTC: the next weekday 03:00 in Berlin (UTC+1 in winter)
	// is Monday 2026-01-05 02:00 UTC.
	if got, want := c.Next(at(t, "2026-01-02T10:00:00Z")), at(t, "2026-01-05T02:00:00Z"); !got.Equal(want) {
		t.Errorf("Next = %s, want %s", got, want)
	}
	// In summer Berlin is UTC+2.
	if got, want := c.Next(at(t, "2026-07-01T10:00:00Z")), at(t, "2026-07-02T01:00:00Z"); !got.Equal(want) {
		t.Errorf("Next = %s, want %s", got, want)
	}
	// No time zone: UTC.
	u := mustCron(t, "30 12 1 JAN *", "")
	if got, want := u.Next(at(t, "2026-06-01T00:00:00Z")), at(t, "2027-01-01T12:30:00Z"); !got.Equal(want) {
		t.Errorf("Next = %s, want %s", got, want)
	}
	// A date that never comes.
	if got := mustCron(t, "0 0 30 2 *", "").Next(at(t, "2026-01-01T00:00:00Z")); !got.IsZero() {
		t.Errorf("Next of 30 February = %s, want zero", got)
	}
}

// Daylight saving time as the library computes it, which the docs state: Europe/Berlin
// goes from 02:00 to 03:00 on 2026-03-29 and from 03:00 back to 02:00 on 2026-10-25.
func TestCronDaylightSavingTime(t *testing.T) {
	c := mustCron(t, "30 2 * * *", "Europe/Berlin")
	// Spring: 02:30 does not exist on the 29th; the next slot is the 30th's 02:30 CEST.
	if got, want := c.Next(at(t, "2026-03-28T12:00:00Z")), at(t, "2026-03-29T00:30:00Z"); got.Equal(want) {
		t.Fatalf("spring: Next = %s, a time that does not exist in Berlin", got)
	}
	if got, want := c.Next(at(t, "2026-03-28T12:00:00Z")), at(t, "2026-03-30T00:30:00Z"); !got.Equal(want) {
		t.Errorf("spring: Next = %s, want %s (the skipped 02:30 does not run)", got, want)
	}
	// Autumn: 02:30 happens twice (CEST, then CET); each instant is a slot.
	first := c.Next(at(t, "2026-10-24T12:00:00Z"))
	if want := at(t, "2026-10-25T00:30:00Z"); !first.Equal(want) {
		t.Errorf("autumn: first slot = %s, want %s", first, want)
	}
	second := c.Next(first)
	if want := at(t, "2026-10-25T01:30:00Z"); !second.Equal(want) {
		t.Errorf("autumn: second slot = %s, want %s (02:30 CET)", second, want)
	}
	// An hourly schedule keeps one slot per real hour across both changes.
	h := mustCron(t, "0 * * * *", "Europe/Berlin")
	for _, from := range []string{"2026-10-24T22:00:00Z", "2026-03-28T22:00:00Z"} {
		prev := at(t, from)
		for range 6 {
			s := h.Next(prev)
			if s.Sub(prev) != time.Hour {
				t.Errorf("hourly from %s: slot %s follows %s, want one hour later", from, s, prev)
			}
			prev = s
		}
	}
}

func TestCronLatest(t *testing.T) {
	c := mustCron(t, "*/15 * * * *", "")
	from, until := at(t, "2026-01-01T10:00:00Z"), at(t, "2026-01-01T11:07:00Z")
	if got, want := c.Latest(from, until), at(t, "2026-01-01T11:00:00Z"); !got.Equal(want) {
		t.Errorf("Latest = %s, want %s", got, want)
	}
	// The interval is open at its start and closed at its end.
	if got := c.Latest(at(t, "2026-01-01T11:00:00Z"), at(t, "2026-01-01T11:14:59Z")); !got.IsZero() {
		t.Errorf("Latest after the slot = %s, want zero", got)
	}
	if got, want := c.Latest(at(t, "2026-01-01T10:59:59Z"), at(t, "2026-01-01T11:00:00Z")), at(t, "2026-01-01T11:00:00Z"); !got.Equal(want) {
		t.Errorf("Latest at the slot = %s, want %s", got, want)
	}
}
