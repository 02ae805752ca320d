package e2e_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestScheduleTwoSchedulers: a cron schedule with two scheduler processes over the real
// Kafka and PostgreSQL starts exactly one run per slot over several slots. The
// schedulers' clock (SIMPLECI_TEST_CLOCK, tests only) runs 20 times as fast, so a
// minute's slot comes every 3 seconds.
func TestScheduleTwoSchedulers(t *testing.T) {
	clock := fmt.Sprintf("%s/2030-01-01T00:00:00Z/20", time.Now().UTC().Format(time.RFC3339Nano))
	c := startClusterEnv(t, 0, []string{"SIMPLECI_TEST_CLOCK=" + clock}, "--tier", "standard:timeout=60s", "--lease", "10s")
	c.procs["scheduler-2"] = start(t, "scheduler-2", c.common,
		append([]string{"serve", "--service", "scheduler", "--grpc", freeAddr(t), "--http", freeAddr(t)}, c.schedulerArgs...)...)
	a := c.api
	repo, shas := gitRepo(t, map[string]string{"main": pipelineJSON(map[string]any{"name": "nightly", "run": []string{"true"}})})
	a.json("POST", "/api/v1/projects", map[string]any{"name": "app", "provider": "local", "repository": repo,
		"events": []string{"manual"}}, http.StatusOK, nil)
	sched := map[string]any{"schedules": []map[string]string{{"cron": "* * * * *", "timezone": "Europe/Berlin", "ref": "main"}}}
	// Without the schedule event the project refuses schedules, saying so.
	if code, b := a.do("PUT", "/api/v1/projects/app/schedules", sched, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "does not start runs on the schedule event") {
		t.Fatalf("schedules without the schedule event: %d %s", code, b)
	}
	if code, b := a.do("PUT", "/api/v1/projects/app/schedules", map[string]any{"schedules": []map[string]string{{"cron": "0 3 * *"}}}, nil); code != http.StatusBadRequest || !strings.Contains(string(b), "has 4 fields") {
		t.Fatalf("a 4-field cron: %d %s", code, b)
	}
	a.json("PATCH", "/api/v1/projects/app", map[string]any{"events": []string{"manual", "schedule"}}, http.StatusOK, nil)
	var set struct {
		Schedules []struct {
			Cron      string `json:"cron"`
			NextRunAt string `json:"nextRunAt"`
		} `json:"schedules"`
	}
	a.json("PUT", "/api/v1/projects/app/schedules", sched, http.StatusOK, &set)
	if len(set.Schedules) != 1 || set.Schedules[0].Cron != "* * * * *" || set.Schedules[0].NextRunAt == "" {
		t.Fatalf("PUT schedules answered %+v", set)
	}

	const want = 5
	var runs struct {
		Runs []run `json:"runs"`
	}
	eventually(t, 90*time.Second, fmt.Sprintf("%d scheduled runs", want), func() bool {
		a.json("GET", "/api/v1/projects/app/runs?trigger=schedule&pageSize=200", nil, http.StatusOK, &runs)
		return len(runs.Runs) >= want
	})
	// Stop the schedule, then let both schedulers finish what they started.
	a.json("PUT", "/api/v1/projects/app/schedules", map[string]any{"schedules": []any{}}, http.StatusOK, nil)
	time.Sleep(4 * time.Second)
	a.json("GET", "/api/v1/projects/app/runs?trigger=schedule&pageSize=200", nil, http.StatusOK, &runs)

	// Each run names its slot (context.schedule_slot of its RunQueued): one run per slot,
	// with no slot left out between the first and the last.
	var slots []time.Time
	for _, r := range runs.Runs {
		if r.Event != "schedule" || r.Sha != shas["main"] {
			t.Errorf("run %s: event %q sha %q, want schedule at main's head %s", r.Number, r.Event, r.Sha, shas["main"])
		}
		var evs struct {
			Events []struct {
				Type    string `json:"type"`
				Payload struct {
					Context map[string]string `json:"context"`
				} `json:"payload"`
			} `json:"events"`
		}
		a.json("GET", "/api/v1/runs/"+r.ID+"/events", nil, http.StatusOK, &evs)
		if len(evs.Events) == 0 || evs.Events[0].Type != "simpleci.events.v1.RunQueued" {
			t.Fatalf("run %s: events %+v", r.Number, evs.Events)
		}
		slot, err := time.Parse(time.RFC3339, evs.Events[0].Payload.Context["schedule_slot"])
		if err != nil {
			t.Fatalf("run %s: schedule_slot: %v", r.Number, err)
		}
		slots = append(slots, slot)
	}
	slices.SortFunc(slots, func(x, y time.Time) int { return x.Compare(y) })
	if len(slots) < want {
		t.Fatalf("%d scheduled runs, want at least %d", len(slots), want)
	}
	for i := 1; i < len(slots); i++ {
		if d := slots[i].Sub(slots[i-1]); d != time.Minute {
			t.Errorf("slots %s and %s are %s apart: want one run per minute's slot, no duplicate and no gap", slots[i-1], slots[i], d)
		}
	}

	// The CLI: add, list, refuse a bad one, remove.
	cli := func(args ...string) (string, error) { return runCLI(a.base, a.token, args...) }
	if out, err := cli("projects", "schedule", "add", "app", "--cron", "0 3 * * 1-5", "--timezone", "Europe/Berlin", "--ref", "main"); err != nil ||
		!strings.Contains(out, "0 3 * * 1-5") || !strings.Contains(out, "Europe/Berlin") || !strings.Contains(out, "main") {
		t.Fatalf("projects schedule add: %v\n%s", err, out)
	}
	if out, err := cli("projects", "schedule", "add", "app", "--cron", "0 3 * * 1-5", "--timezone", "Mars/Base"); err == nil || !strings.Contains(out, "schedule 2: time zone \"Mars/Base\"") {
		t.Fatalf("projects schedule add with a bad time zone: %v\n%s", err, out)
	}
	if out, err := cli("projects", "schedule", "list", "app"); err != nil || !strings.Contains(out, "1  0 3 * * 1-5") {
		t.Fatalf("projects schedule list: %v\n%s", err, out)
	}
	if out, err := cli("projects", "schedule", "remove", "app", "1"); err != nil || !strings.Contains(out, "no schedules") {
		t.Fatalf("projects schedule remove: %v\n%s", err, out)
	}
}
