package e2e_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/jackc/pgx/v5"
)

// planted is a value that must never leave the places it belongs in (a secret: the job's
// environment; a token: the caller's hands), in every form a leak would take.
type planted struct {
	name  string
	forms [][]byte
}

func plant(name, value string) planted {
	p := planted{name: name, forms: [][]byte{[]byte(value), []byte(hex.EncodeToString([]byte(value)))}}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		p.forms = append(p.forms, []byte(enc.EncodeToString([]byte(value))))
	}
	// JSON (a database row as row_to_json, an API answer) escapes some characters, each
	// encoder its own way: the part before the first of them is looked for too.
	if i := strings.IndexAny(value, "\"\\<>&"); i >= 12 {
		p.forms = append(p.forms, []byte(value[:i]))
	}
	return p
}

// leaks returns a description of each planted value b holds.
func leaks(where string, b []byte, values ...planted) []string {
	var out []string
	for _, v := range values {
		for _, f := range v.forms {
			if bytes.Contains(b, f) {
				i := bytes.Index(b, f)
				out = append(out, fmt.Sprintf("%s holds %s (as %q, at byte %d)", where, v.name, f, i))
				break
			}
		}
	}
	return out
}

// leakPipeline makes every step fail on, or print, the secret DEPLOY_TOKEN: conditions
// and templates whose errors would quote it, and output that the log must mask.
var leakPipeline = map[string]any{"steps": []map[string]any{
	{"name": "cond", "condition": "timestamp(env.DEPLOY_TOKEN) > timestamp(0)", "run": "echo never"},
	{"name": "tmpl", "condition": "always()", "run": "echo {{ int(env.DEPLOY_TOKEN) }}"},
	{"name": "env", "condition": "always()", "env": map[string]string{"X": "{{ env[env.DEPLOY_TOKEN] }}"}, "run": "echo never"},
	{"name": "regex", "condition": "always()", "run": "echo {{ 'x'.matches(env.DEPLOY_TOKEN) }}"},
	{"name": "bool", "condition": "always() ? dyn(env.DEPLOY_TOKEN) : false", "run": "echo never"},
	{"name": "print", "condition": "always()", "run": "echo token=$DEPLOY_TOKEN; printf '%s' \"$DEPLOY_TOKEN\" | base64; echo \"$DEPLOY_TOKEN\" >&2"},
	{"name": "signal", "condition": "always()", "run": "sh -c 'echo \"$DEPLOY_TOKEN\"; kill -TERM $$'"},
}}

// leakReasons are the step reasons leakPipeline's failures must give: what failed, never
// the value.
var leakReasons = map[string]string{"cond": "type conversion error", "tmpl": "type conversion error from 'string' to 'int'",
	"env": "no such key: the key is computed", "regex": "the regular expression does not compile", "bool": "evaluated to a value of type string"}

// TestHostileServices is issue 9's hostile suite on the split deployment (six processes,
// the real Kafka and PostgreSQL): hostile requests from outside, each with its expected
// answer, and a planted secret that pipelines try to leak; then the secret, the admin
// token, the internal token and the runner's token are looked for in the database (every row of every table),
// the event log, every record of the deployment's Kafka topics, every service's own log
// and the API's answers: zero hits.
func TestHostileServices(t *testing.T) {
	c := startClusterWith(t, 1, "--tier", "standard:timeout="+tierTimeout.String(), "--lease", "10s")
	secret := plant("the project secret", "zq9-Plant(ed)-S3cret\"<&>(")
	admin := plant("the admin token", c.api.token)
	internal := plant("the internal token", internalToken(c))
	runner := plant("runner-1's token", runnerToken(c, "runner-1"))
	identity := plant("the secret of runnerIdentity's project", identitySecret)
	forkSecret := plant("the secret a fork's pull request must not get", trustSecret)

	edge, edgeSha := c.project("hostile-edge")
	c.api.waitRun(c.api.push(edge, "main2", edgeSha), 90*time.Second)
	as := func(t *testing.T) *api { return &api{t: t, base: c.api.base, token: c.api.token} }
	t.Run("edge", func(t *testing.T) { hostileEdge(t, as(t), edge.Name, "main2") })
	t.Run("repository binding", func(t *testing.T) { refuseBindings(t, as(t), bindingAttacks) })
	t.Run("pull requests from a fork", func(t *testing.T) { pullRequestTrust(t, as(t)) })
	t.Run("a replayed webhook", func(t *testing.T) {
		a := as(t)
		body, _ := json.Marshal(map[string]any{"ref": "refs/heads/main2", "after": edgeSha, "sender": map[string]string{"login": "replayer"}})
		hdr := func(delivery string) map[string]string {
			return map[string]string{"X-Hub-Signature-256": sign(edge.WebhookSecret, body), "X-GitHub-Delivery": delivery}
		}
		if code, b := a.do("POST", edge.WebhookPath, body, hdr("first")); code != http.StatusAccepted {
			t.Fatalf("first delivery: %d %s", code, b)
		}
		if code, b := a.do("POST", edge.WebhookPath, body, hdr("replayed")); code != http.StatusConflict || !strings.Contains(string(b), "already delivered") {
			t.Fatalf("the same signed body under a new delivery id: %d %s, want 409", code, b)
		}
	})

	src, _ := json.Marshal(leakPipeline)
	repo, shas := gitRepo(t, map[string]string{"main": string(src)})
	var pr project
	c.api.json("POST", "/api/v1/projects", map[string]any{"name": "leaky", "provider": "local", "repository": repo, "events": []string{"push"}}, http.StatusOK, &pr)
	c.api.json("PUT", "/api/v1/projects/leaky/secrets/DEPLOY_TOKEN", map[string]string{"value": string(secret.forms[0])}, http.StatusOK, nil)
	r := c.api.waitRun(c.api.push(pr, "main", shas["main"]), 90*time.Second)
	if r.Status != "failed" || !strings.Contains(r.Reason, `step "cond" failed: condition: type conversion error`) {
		t.Errorf("run %s, reason %q: want failed by the condition's conversion error", r.Status, r.Reason)
	}
	for _, s := range r.Steps {
		if w, ok := leakReasons[s.Name]; ok && (s.Status != "failed" || !strings.Contains(s.Reason, w)) {
			t.Errorf("step %s: %s %q, want failed with %q", s.Name, s.Status, s.Reason, w)
		}
	}
	text := logText(c.api.waitLogs(r.ID))
	if !strings.Contains(text, "token=***") {
		t.Errorf("log %q: want the secret in the step's environment, masked", text)
	}

	t.Run("runner identities", func(t *testing.T) { runnerIdentity(t, c) })

	var found []string
	for _, path := range []string{"/api/v1/runs/" + r.ID, "/api/v1/runs/" + r.ID + "/events", "/api/v1/runs/" + r.ID + "/logs",
		"/api/v1/projects/leaky", "/api/v1/projects/leaky/secrets", "/api/v1/projects"} {
		code, b := c.api.do("GET", path, nil, nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, b)
		}
		found = append(found, leaks("GET "+path, b, secret, internal, runner, forkSecret, identity)...)
	}

	// Stop every process, so that what it buffered is written and its log is complete.
	for _, p := range c.procs {
		p.stop()
	}
	// The run's id is the control: the scans must find it where it belongs, or they
	// look at the wrong thing.
	control := plant("the run id", r.ID)
	seen := map[string]bool{}
	scan := func(kind string) func(where string, b []byte) {
		return func(where string, b []byte) {
			found = append(found, leaks(where, b, secret, admin, internal, runner, forkSecret, identity)...)
			if len(leaks(where, b, control)) > 0 {
				seen[kind] = true
			}
		}
	}
	rows, tables := scanDatabase(t, c.dbURL, scan("database"))
	records, topics := scanKafka(t, scan("kafka"))
	for name, p := range c.procs {
		b, err := os.ReadFile(p.log)
		if err != nil || len(b) == 0 {
			t.Fatalf("the %s log: %v (%d bytes)", name, err, len(b))
		}
		scan("logs")("the "+name+" log", b)
	}
	for _, kind := range []string{"database", "kafka", "logs"} {
		if !seen[kind] {
			t.Errorf("the %s scan did not find the control value (the run id %s): it looks at the wrong thing", kind, r.ID)
		}
	}
	t.Logf("scanned %d rows of %d tables, %d Kafka records of %d topics, %d service logs", rows, tables, records, topics, len(c.procs))
	if tables < 10 || rows < 20 || topics < 3 || records < 10 {
		t.Errorf("scanned too little to mean anything: %d rows of %d tables, %d records of %d topics", rows, tables, records, topics)
	}
	for _, f := range found {
		t.Error(f)
	}
}

// internalToken is the cluster's internal token, as its processes got it.
func internalToken(c *cluster) string {
	for _, e := range c.common {
		if v, ok := strings.CutPrefix(e, "SIMPLECI_INTERNAL_TOKEN="); ok {
			return v
		}
	}
	c.t.Fatal("the cluster has no internal token")
	return ""
}

// runnerToken is the token the runner name was started with.
func runnerToken(c *cluster, name string) string {
	for _, e := range c.procs[name].env {
		if v, ok := strings.CutPrefix(e, "SIMPLECI_RUNNER_TOKEN="); ok {
			return v
		}
	}
	c.t.Fatalf("runner %s has no token", name)
	return ""
}

// scanDatabase hands every row of every table of the database at url, as JSON (bytea as
// hex), to look, and returns how many rows and tables there were.
func scanDatabase(t *testing.T, url string, look func(where string, row []byte)) (rows, tables int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tr, err := conn.Query(ctx, `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(tr, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		rs, err := conn.Query(ctx, "SELECT row_to_json(t)::text FROM "+name+" t")
		if err != nil {
			t.Fatal(err)
		}
		all, err := pgx.CollectRows(rs, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, row := range all {
			look(fmt.Sprintf("table %s row %d", name, i), []byte(row))
		}
		rows += len(all)
		tables++
	}
	return rows, tables
}

// scanKafka hands every record (key, value, headers) of every topic of this test run's
// Kafka namespace to look, and returns how many records and topics there were.
func scanKafka(t *testing.T, look func(where string, record []byte)) (records, topics int) {
	kc := kafkaConfig("e2e-scan")
	sc := sarama.NewConfig()
	sc.Net.DialTimeout = 5 * time.Second
	sc.Consumer.Return.Errors = true
	client, err := sarama.NewClient(kc.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	all, err := client.Topics()
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for _, topic := range all {
		if !strings.HasPrefix(topic, kc.Namespace) {
			continue
		}
		topics++
		parts, err := client.Partitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			oldest, err1 := client.GetOffset(topic, p, sarama.OffsetOldest)
			end, err2 := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s/%d offsets: %v %v", topic, p, err1, err2)
			}
			if end <= oldest {
				continue
			}
			pc, err := consumer.ConsumePartition(topic, p, oldest)
			if err != nil {
				t.Fatal(err)
			}
			timeout := time.After(30 * time.Second)
			for next := oldest; next < end; {
				select {
				case m := <-pc.Messages():
					b := append(append([]byte{}, m.Key...), m.Value...)
					for _, h := range m.Headers {
						b = append(append(b, h.Key...), h.Value...)
					}
					look(fmt.Sprintf("Kafka record %s/%d@%d", topic, p, m.Offset), b)
					records++
					next = m.Offset + 1
				case err := <-pc.Errors():
					t.Fatalf("%s/%d: %v", topic, p, err)
				case <-timeout:
					t.Fatalf("%s/%d: read up to %d of %d within 30 s", topic, p, next, end)
				}
			}
			pc.Close()
		}
	}
	return records, topics
}
