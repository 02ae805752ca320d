package client

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
)

// apiSchedule is a project's cron schedule as the API shows it.
type apiSchedule struct {
	Cron      string `json:"cron"`
	Timezone  string `json:"timezone,omitempty"`
	Ref       string `json:"ref,omitempty"`
	NextRunAt string `json:"nextRunAt,omitempty"`
	CreatedAt string `json:"createdAt,omitempty"`
}

// scheduleArgs are the flags of `projects schedule add`.
type scheduleArgs struct{ cron, timezone, ref string }

// schedules runs `simpleci projects schedule list|add|remove PROJECT ...`. add and
// remove read the project's schedules and write them back changed (PUT replaces them).
func (a *api) schedules(ctx context.Context, rest []string, add scheduleArgs) error {
	if len(rest) < 3 {
		return errUsage
	}
	verb, project := rest[1], rest[2]
	path := "/api/v1/projects/" + url.PathEscape(project) + "/schedules"
	var cur struct {
		Schedules []apiSchedule `json:"schedules"`
	}
	if err := a.do(ctx, "GET", path, nil, &cur); err != nil {
		return err
	}
	switch {
	case verb == "list" && len(rest) == 3:
		return a.printSchedules(cur.Schedules)
	case verb == "add" && len(rest) == 3:
		if add.cron == "" {
			return fmt.Errorf("projects schedule add: --cron is required, such as --cron '0 3 * * 1-5'")
		}
		cur.Schedules = append(cur.Schedules, apiSchedule{Cron: add.cron, Timezone: add.timezone, Ref: add.ref})
	case verb == "remove" && len(rest) == 4:
		n, err := strconv.Atoi(rest[3])
		if err != nil || n < 1 || n > len(cur.Schedules) {
			return fmt.Errorf("projects schedule remove: %q: want the number of a schedule as projects schedule list shows it (1 to %d)", rest[3], len(cur.Schedules))
		}
		cur.Schedules = append(cur.Schedules[:n-1], cur.Schedules[n:]...)
	default:
		return errUsage
	}
	body := map[string]any{"schedules": []map[string]string{}}
	for _, s := range cur.Schedules {
		body["schedules"] = append(body["schedules"].([]map[string]string), map[string]string{"cron": s.Cron, "timezone": s.Timezone, "ref": s.Ref})
	}
	var out struct {
		Schedules []apiSchedule `json:"schedules"`
	}
	if err := a.do(ctx, "PUT", path, body, &out); err != nil {
		return err
	}
	return a.printSchedules(out.Schedules)
}

func (a *api) printSchedules(ss []apiSchedule) error {
	if len(ss) == 0 {
		fmt.Fprintln(a.io.Out, "no schedules")
		return nil
	}
	w := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "#\tCRON\tTIME ZONE\tREF\tNEXT RUN")
	for i, s := range ss {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", i+1, s.Cron, def(s.Timezone, "UTC"), def(s.Ref, "HEAD"), def(s.NextRunAt, "-"))
	}
	return w.Flush()
}
