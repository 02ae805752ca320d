package e2e_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/id"
)

// leads reports whether p's log (since its last restart) says it leads the scheduler's
// followers of the event log.
func leads(p *proc) bool {
	b, _ := os.ReadFile(p.log)
	text := string(b)
	if i := strings.LastIndex(text, "---- restarted by the test"); i >= 0 {
		text = text[i:]
	}
	state := false
	for _, line := range strings.Split(text, "\n") {
		if !strings.Contains(line, "leadership=scheduler-followers") {
			continue
		}
		switch {
		case strings.Contains(line, "msg=leading "):
			state = true
		case strings.Contains(line, `msg="no longer leading"`):
			state = false
		}
	}
	return state
}

// TestFaultLeaderKill: two schedulers share the work; the one leading the outbox and
// run-list followers is killed with SIGKILL while 50 runs are in flight. The other takes
// the followers over within seconds, every run finishes with its complete log, every
// event of every run reaches Kafka at least once, and the run list equals one rebuilt
// from the event log.
func TestFaultLeaderKill(t *testing.T) {
	requireFaults(t)
	c := startCluster(t, 2)
	c.procs["scheduler-2"] = start(t, "scheduler-2", c.common,
		append([]string{"serve", "--service", "scheduler", "--grpc", freeAddr(t), "--http", freeAddr(t)}, c.schedulerArgs...)...)
	eventually(t, 60*time.Second, "one scheduler to lead the followers", func() bool {
		return leads(c.procs["scheduler"]) != leads(c.procs["scheduler-2"])
	})
	// The leader to kill is scheduler-2: the gateway and the runners talk to "scheduler",
	// and killing that one for longer than a lease would (rightly) requeue runs. So when
	// "scheduler" leads, it stops gracefully (its lock is released) and comes back.
	if leads(c.procs["scheduler"]) {
		t.Log("scheduler led first: stopping it gracefully hands the lead to scheduler-2")
		c.procs["scheduler"].stop()
		eventually(t, 15*time.Second, "scheduler-2 to lead", func() bool { return leads(c.procs["scheduler-2"]) })
		c.procs["scheduler"].restart(t)
		eventually(t, 60*time.Second, "the gateway to answer", func() bool { return c.api.up("/api/v1/projects") })
	}

	// Every event published on the runs topic, seen by a consumer group of the test's own.
	seen := map[string]bool{}
	var mu sync.Mutex
	kb, err := bus.NewKafka(kafkaConfig("e2e-leader"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kb.Subscribe(ctx, event.TopicRuns, "e2e-leader-"+id.New(), func(_ context.Context, m bus.Message) error {
		mu.Lock()
		seen[m.ID] = true
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	p, sha := c.project("leader")
	var ids []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // pushes keep arriving through the takeover
		defer wg.Done()
		ids = c.pushes(p, sha, 50)
	}()
	eventually(t, 60*time.Second, "runs to be running", func() bool {
		var out struct{ Runs []run }
		return c.get("/api/v1/projects/"+p.Name+"/runs?status=running", &out) && len(out.Runs) > 0
	})
	killed := time.Now()
	c.procs["scheduler-2"].kill()
	eventually(t, 15*time.Second, "scheduler to take the followers over", func() bool { return leads(c.procs["scheduler"]) })
	t.Logf("followers taken over %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	wg.Wait()

	c.checkRuns(c.waitRuns(ids, 180*time.Second))
	c.checkLogs(ids, 60*time.Second)
	c.checkEvents(ids)

	// Each run's events reached Kafka at least once.
	var want []string
	for _, rid := range ids {
		var out struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		c.api.json("GET", "/api/v1/runs/"+rid+"/events", nil, http.StatusOK, &out)
		for _, e := range out.Events {
			want = append(want, e.ID)
		}
	}
	eventually(t, 60*time.Second, "every run event on Kafka", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range want {
			if !seen[w] {
				return false
			}
		}
		return true
	})
	c.checkRebuild(p, len(ids))
}
