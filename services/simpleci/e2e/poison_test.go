package e2e_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/id"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// kafkaPartitions is the partition count `simpleci serve` gives the topics it creates.
const kafkaPartitions = 12

// keysOnEveryPartition returns one key per partition of a topic with n partitions, as
// Sarama's default hash partitioner places keyed records (FNV-1a, modulo n).
func keysOnEveryPartition(prefix string, n int) []string {
	keys := make([]string, n)
	found := 0
	for i := 0; found < n; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		h := fnv.New32a()
		h.Write([]byte(k))
		p := int32(h.Sum32()) % int32(n)
		if p < 0 {
			p = -p
		}
		if keys[p] == "" {
			keys[p] = k
			found++
		}
	}
	return keys
}

// TestPoisonServices is issue 8's "a malformed message on each consumed topic lands in the
// poison topic and the runs behind it still finish; poison replay re-delivers it", on the
// split deployment over the real Kafka and PostgreSQL.
func TestPoisonServices(t *testing.T) {
	c := startClusterWith(t, 1, "--tier", "standard:timeout="+tierTimeout.String(), "--lease", "10s")
	brokers := os.Getenv("SIMPLECI_TEST_KAFKA_BROKERS")
	b, err := bus.NewKafka(kafkaConfig("simpleci-e2e"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	admin := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"admin", "poison"}, args...)...)
		cmd.Env = append(os.Environ(), "SIMPLECI_KAFKA_BROKERS="+brokers)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("simpleci admin poison %v: %v\n%s", args, err, out)
		}
		return string(out)
	}

	// A payload that is no protobuf of its type, ahead of the runs on every partition of
	// each consumed topic (one key per partition).
	consumed := map[string]struct{ typ, group string }{
		event.TopicRunRequests: {event.TypeOf(&eventsv1.RunRequested{}), "scheduler"},
		event.TopicRuns:        {event.TypeOf(&eventsv1.RunFinished{}), "log-runs"},
		event.TopicLogs:        {event.TypeOf(&eventsv1.LogEmitted{}), "log-chunks"},
	}
	malformed := map[string]string{} // message id → topic
	for topic, cg := range consumed {
		var msgs []bus.Message
		for _, key := range keysOnEveryPartition("malformed-"+id.New(), kafkaPartitions) {
			m := bus.Message{ID: "malformed-" + id.New(), Key: key, Type: cg.typ, Payload: []byte{0xff, 0xff, 0xff}}
			malformed[m.ID] = topic
			msgs = append(msgs, m)
		}
		if err := b.Publish(ctx, topic, msgs...); err != nil {
			t.Fatal(err)
		}
	}

	p, sha := c.project("poison")
	var runs []string
	for range 3 {
		runs = append(runs, c.api.push(p, "main2", sha))
	}
	for _, rid := range runs {
		if r := c.api.waitRun(rid, 90*time.Second); r.Status != "succeeded" {
			t.Fatalf("run %s behind the malformed messages: %s (%s)", rid, r.Status, r.Reason)
		}
		if text := logText(c.api.waitLogs(rid)); !strings.Contains(text, "line-5") || !strings.Contains(text, "done") {
			t.Fatalf("run %s log %q, want the pipeline's output", rid, text)
		}
	}

	// Every malformed message is in the poison topic with where it came from (polled in
	// process, then listed once with the command).
	eventually(t, 60*time.Second, "every malformed message in the poison topic", func() bool {
		ps, err := b.Poison().List(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range ps {
			if _, ok := malformed[p.Message.ID]; ok {
				n++
			}
		}
		return n >= len(malformed)
	})
	listed := admin("list", "--limit", "0")
	seen := map[string]bool{}
	for _, line := range strings.Split(listed, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		if topic, ok := malformed[f[4]]; ok {
			seen[f[4]] = true
			if f[1] != topic || f[2] != consumed[topic].group || f[3] != consumed[topic].typ || !strings.Contains(line, "decode") {
				t.Errorf("poison record %q: want topic %s, group %s, type %s and the decode error", line, topic, consumed[topic].group, consumed[topic].typ)
			}
		}
	}
	if len(seen) != len(malformed) {
		t.Errorf("simpleci admin poison list shows %d of the %d malformed messages:\n%s", len(seen), len(malformed), listed)
	}
	if out := admin("list", "--topic", event.TopicLogs, "--limit", "0"); strings.Contains(out, event.TopicRunRequests) {
		t.Errorf("list --topic %s shows other topics:\n%s", event.TopicLogs, out)
	}

	// `poison replay` re-delivers a record's original message to its topic: a malformed
	// one is poisoned again (a new record of the same message).
	var replayed bus.Poisoned
	if ps, err := b.Poison().List(ctx, event.TopicRunRequests, 0); err == nil {
		for _, p := range ps {
			if _, ok := malformed[p.Message.ID]; ok {
				replayed = p
				break
			}
		}
	}
	if replayed.ID == "" {
		t.Fatal("no malformed run request in the poison topic to replay")
	}
	if out := admin("replay", replayed.ID); !strings.Contains(out, replayed.Message.ID) {
		t.Fatalf("replay: %s", out)
	}
	eventually(t, 60*time.Second, "the replayed message to be delivered and poisoned again", func() bool {
		ps, err := b.Poison().List(ctx, event.TopicRunRequests, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Message.ID == replayed.Message.ID && p.ID != replayed.ID {
				return true
			}
		}
		return false
	})

	// A request that fails because a dependency is down (the project service is stopped,
	// so the scheduler cannot resolve the project) is not the message's fault: it is
	// retried for as long as the outage lasts, never poisoned, and the run happens once
	// the project service is back.
	var proj struct {
		ID         string `json:"id"`
		OrgID      string `json:"orgId"`
		Repository string `json:"repository"`
	}
	c.api.json("GET", "/api/v1/projects/poison", nil, http.StatusOK, &proj)
	c.procs["project"].stop()
	req := &eventsv1.RunRequested{RunId: id.New(), OrgId: proj.OrgID, ProjectId: proj.ID, Provider: "local",
		Repository: proj.Repository, Ref: "refs/heads/main2", Branch: "main2", Sha: sha, Event: "push",
		Actor: "alice", DeliveryId: "outage-" + id.New(), RequestedAt: timestamppb.Now()}
	m, err := event.Encode(req.RunId, req.RunId, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, event.TopicRunRequests, m); err != nil {
		t.Fatal(err)
	}
	// Longer than the retries' budget (about 23 s).
	outageEnds := time.Now().Add(30 * time.Second)
	for time.Now().Before(outageEnds) {
		ps, err := b.Poison().List(ctx, event.TopicRunRequests, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Message.ID == req.RunId {
				t.Fatalf("the request was poisoned while the project service was down: %+v", p)
			}
		}
		time.Sleep(2 * time.Second) // sample the poison topic through the outage
	}
	c.procs["project"].restart(t)
	if r := c.api.waitRun(req.RunId, 120*time.Second); r.Status != "succeeded" {
		t.Fatalf("the run requested during the outage: %s (%s)", r.Status, r.Reason)
	}
}

// TestPoisonDev: `simpleci dev` keeps its poison queue in DATA/poison, where `simpleci
// admin poison list --data` reads it from another process, and the running dev carries out
// `replay`. The in-process bus cannot be reached from the test, so the record is put in the
// queue as the bus would have, for a run request that failed at the time.
func TestPoisonDev(t *testing.T) {
	a, _, data := startDevIn(t, t.TempDir())
	admin := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(append([]string{"admin", "poison"}, args...), "--data", data)...).CombinedOutput()
		if err != nil {
			t.Fatalf("simpleci admin poison %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := admin("list"); strings.Count(out, "\n") != 1 {
		t.Fatalf("a fresh dev's poison queue: %q, want the header only", out)
	}
	var proj struct {
		ID         string `json:"id"`
		OrgID      string `json:"orgId"`
		Repository string `json:"repository"`
	}
	a.json("GET", "/api/v1/projects/demo", nil, http.StatusOK, &proj)
	sha, err := exec.Command("git", "-C", proj.Repository, "rev-parse", "main").Output()
	if err != nil {
		t.Fatal(err)
	}
	req := &eventsv1.RunRequested{RunId: id.New(), OrgId: proj.OrgID, ProjectId: proj.ID, Provider: "local",
		Repository: proj.Repository, Ref: "refs/heads/main", Branch: "main", Sha: strings.TrimSpace(string(sha)),
		Event: "push", Actor: "alice", RequestedAt: timestamppb.Now()}
	m, err := event.Encode(req.RunId, req.RunId, req)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := bus.OpenPoisonDir(filepath.Join(data, "poison")).Add(bus.Poisoned{Message: m,
		Topic: event.TopicRunRequests, Group: "scheduler", Error: "resolve project: unavailable"})
	if err != nil {
		t.Fatal(err)
	}
	out := admin("list", "--topic", event.TopicRunRequests)
	if !strings.Contains(out, rec.ID) || !strings.Contains(out, req.RunId) || !strings.Contains(out, "resolve project: unavailable") {
		t.Fatalf("list:\n%s\nwant record %s of message %s with its error", out, rec.ID, req.RunId)
	}
	if out := admin("replay", rec.ID); !strings.Contains(out, "queued for replay") {
		t.Fatalf("replay: %s", out)
	}
	if r := a.waitRun(req.RunId, 60*time.Second); r.Status != "succeeded" {
		t.Fatalf("replayed run: %s (%s)", r.Status, r.Reason)
	}
	eventually(t, 10*time.Second, "the replay request to be carried out and removed", func() bool {
		entries, err := os.ReadDir(filepath.Join(data, "poison", "replay"))
		return err == nil && len(entries) == 0
	})
}

func logText(chunks []chunk) string {
	var b strings.Builder
	for _, c := range chunks {
		if c.Stream != "system" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}
