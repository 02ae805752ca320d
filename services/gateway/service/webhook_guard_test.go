package service_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/ratelimit"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/gateway/service"
)

// eachDatabase runs f with a fresh gateway database of each dialect this run can reach.
func eachDatabase(t *testing.T, f func(t *testing.T, db *sqldb.DB)) {
	dbs := map[string]func(t *testing.T) string{"sqlite": func(t *testing.T) string { return filepath.Join(t.TempDir(), "gateway.db") }}
	if os.Getenv(pgtest.EnvURL) != "" {
		dbs["postgres"] = func(t *testing.T) string { return pgtest.NewDatabase(t) }
	}
	for name, url := range dbs {
		t.Run(name, func(t *testing.T) {
			db, err := sqldb.Open(t.Context(), url(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			f(t, db)
		})
	}
}

func withDB(db *sqldb.DB) func(*service.Config) { return func(c *service.Config) { c.DB = db } }

func runIDOf(t *testing.T, body []byte) string {
	t.Helper()
	var resp struct {
		RunIDs []string `json:"runIds"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.RunIDs) != 1 {
		t.Fatalf("body %s: want {\"runIds\": [id]}", body)
	}
	return resp.RunIDs[0]
}

// TestWebhookReplayRefused: a signed body accepted once is refused (409, nothing published)
// when sent again under a new delivery id or none; the forge's own retry (same delivery id)
// still names the same run; another body is accepted.
func TestWebhookReplayRefused(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, withDB(db))
		body := pushBody("refs/heads/main", strings.Repeat("c", 40))
		deliver := func(id string) (int, string) {
			t.Helper()
			h := map[string]string{}
			if id != "" {
				h["X-GitHub-Delivery"] = id
			}
			rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: body, secret: app.WebhookSecret, headers: h})
			return rec.Code, rec.Body.String()
		}
		code, resp := deliver("d-1")
		if code != http.StatusAccepted {
			t.Fatalf("first delivery: %d %s", code, resp)
		}
		first := runIDOf(t, []byte(resp))
		if rr := e.next(); rr.GetRunId() != first {
			t.Fatalf("published %s, want %s", rr.GetRunId(), first)
		}
		code, resp = deliver("d-1") // the forge retries
		if code != http.StatusAccepted || runIDOf(t, []byte(resp)) != first {
			t.Fatalf("retry of the same delivery: %d %s, want 202 naming run %s", code, resp, first)
		}
		// The retry is published again only if the first was already forwarded out of the
		// outbox (else the outbox holds it once): either way, only the same run.
		marker := strings.Repeat("f", 40)
		if rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: pushBody("refs/heads/marker", marker), secret: app.WebhookSecret}); rec.Code != http.StatusAccepted {
			t.Fatalf("marker delivery: %d %s", rec.Code, rec.Body)
		}
		for rr := e.next(); rr.GetSha() != marker; rr = e.next() {
			if rr.GetRunId() != first {
				t.Fatalf("retry published run %s, want the same run %s", rr.GetRunId(), first)
			}
		}
		for _, id := range []string{"d-2", ""} {
			code, resp = deliver(id)
			var ae apiError
			json.Unmarshal([]byte(resp), &ae)
			if code != http.StatusConflict || !strings.Contains(ae.Message, "already delivered") || !strings.Contains(ae.Message, `delivery "d-1"`) {
				t.Fatalf("replay under delivery id %q: %d %s, want 409 naming the first delivery", id, code, resp)
			}
		}
		e.nothingPublished()
		other := pushBody("refs/heads/main", strings.Repeat("d", 40))
		if rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: other, secret: app.WebhookSecret,
			headers: map[string]string{"X-GitHub-Delivery": "d-2"}}); rec.Code != http.StatusAccepted {
			t.Fatalf("another body: %d %s", rec.Code, rec.Body)
		}
	})
}

// TestWebhookReplayWindow: a body is remembered for the window only, and the rows past it
// are pruned.
func TestWebhookReplayWindow(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, withDB(db), func(c *service.Config) { c.ReplayWindow = 300 * time.Millisecond })
		body := pushBody("refs/heads/main", strings.Repeat("f", 40))
		post := func(id string) int {
			return e.post(delivery{path: "/api/v1/webhooks/local/app", body: body, secret: app.WebhookSecret,
				headers: map[string]string{"X-GitHub-Delivery": id}}).Code
		}
		if c := post("w-1"); c != http.StatusAccepted {
			t.Fatalf("first: %d", c)
		}
		if c := post("w-2"); c != http.StatusConflict {
			t.Fatalf("replay within the window: %d, want 409", c)
		}
		time.Sleep(350 * time.Millisecond)
		if c := post("w-3"); c != http.StatusAccepted {
			t.Fatalf("same body after the window: %d, want 202", c)
		}
	})
}

// TestWebhookRateLimit: past a project's burst, deliveries are answered 429 with
// Retry-After and start nothing; other projects are not affected; after Retry-After the
// project's deliveries are accepted again.
func TestWebhookRateLimit(t *testing.T) {
	e := newEnv(t, func(c *service.Config) { c.WebhookLimits = ratelimit.Limits{Rate: 2, Burst: 3} })
	n := 0
	post := func(project, secret, ref string) *httptest.ResponseRecorder {
		n++
		body := pushBody(ref, strings.Repeat(strconv.Itoa(n%10), 40))
		return e.post(delivery{path: "/api/v1/webhooks/local/" + project, body: body, secret: secret})
	}
	for i := range 3 {
		if rec := post("app", app.WebhookSecret, "refs/heads/main"); rec.Code != http.StatusAccepted {
			t.Fatalf("delivery %d of the burst: %d %s", i+1, rec.Code, rec.Body)
		}
		e.next()
	}
	rec := post("app", app.WebhookSecret, "refs/heads/main")
	var ae apiError
	json.Unmarshal(rec.Body.Bytes(), &ae)
	after, err := strconv.Atoi(rec.Header().Get("Retry-After"))
	if rec.Code != http.StatusTooManyRequests || err != nil || after < 1 || !strings.Contains(ae.Message, "too many webhook deliveries for project app") {
		t.Fatalf("past the burst: %d Retry-After %q %s, want 429 with Retry-After", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if rec := post("tags-only", tagsOnly.WebhookSecret, "refs/tags/v1"); rec.Code != http.StatusAccepted {
		t.Fatalf("another project: %d %s", rec.Code, rec.Body)
	}
	if rr := e.next(); rr.GetProjectId() != tagsOnly.Project.Id {
		t.Fatalf("published %v, want the other project's run (the refused one started nothing)", rr)
	}
	time.Sleep(time.Duration(after) * time.Second)
	if rec := post("app", app.WebhookSecret, "refs/heads/main"); rec.Code != http.StatusAccepted {
		t.Fatalf("after Retry-After: %d %s", rec.Code, rec.Body)
	}
}

// TestOutboxNotBlockedByOversizeMessage: a row the bus can never take (over its limit)
// is set aside in the poison queue and removed; the deliveries behind it are published.
func TestOutboxNotBlockedByOversizeMessage(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sqldb.DB) {
		if _, err := db.ApplyMigrations(t.Context(), service.Schema); err != nil {
			t.Fatal(err)
		}
		big, err := event.Encode("big-run", "big-run", &eventsv1.RunRequested{RunId: "big-run"})
		if err != nil {
			t.Fatal(err)
		}
		big.Payload = append(big.Payload, make([]byte, bus.MaxMessageBytes)...) // as a row from before events were bounded
		if _, err := db.ExecContext(t.Context(), db.Q(`INSERT INTO gw_outbox (message_id, topic, msg_key, msg_type, payload, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
			big.ID, event.TopicRunRequests, big.Key, big.Type, big.Payload, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		e := newEnv(t, withDB(db))
		sha := strings.Repeat("9", 40)
		if rec := e.post(delivery{path: "/api/v1/webhooks/local/app", body: pushBody("refs/heads/main", sha), secret: app.WebhookSecret}); rec.Code != http.StatusAccepted {
			t.Fatalf("delivery: %d %s", rec.Code, rec.Body)
		}
		if rr := e.next(); rr.GetSha() != sha {
			t.Fatalf("published %v, want the delivery behind the oversize row", rr)
		}
		ps, err := e.bus.Poison().List(t.Context(), event.TopicRunRequests, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 || ps[0].Message.ID != "big-run" || ps[0].Group != "outbox:gateway" || !strings.Contains(ps[0].Error, "larger than the bus takes") {
			t.Fatalf("poison queue: %+v", ps)
		}
		var n int
		deadline := time.Now().Add(10 * time.Second)
		for db.QueryRowContext(t.Context(), `SELECT count(*) FROM gw_outbox`).Scan(&n); n != 0; db.QueryRowContext(t.Context(), `SELECT count(*) FROM gw_outbox`).Scan(&n) {
			if time.Now().After(deadline) {
				t.Fatalf("outbox still holds %d rows", n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
