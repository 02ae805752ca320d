package service_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
	"github.com/simpleci/simpleci/libs/forge"
	"github.com/simpleci/simpleci/libs/forge/local"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/event"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	eventsv1 "github.com/simpleci/simpleci/proto/simpleci/events/v1"
	"github.com/simpleci/simpleci/services/gateway/service"
)

// downBus is a bus whose Publish fails while down is set, as Kafka's does while the
// broker is unreachable.
type downBus struct {
	bus.Bus
	down atomic.Bool
}

func (b *downBus) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	if b.down.Load() {
		return errors.New("kafka: client has run out of available brokers to talk to")
	}
	return b.Bus.Publish(ctx, topic, msgs...)
}

// TestWebhookAcceptedWhileBusDown: a delivery is answered 202 once it is in the gateway's
// outbox, while the bus is down, and its RunRequested is published when the bus is back;
// with the database gone too it is published directly; with neither it is refused.
func TestWebhookAcceptedWhileBusDown(t *testing.T) {
	dbs := map[string]func(t *testing.T) string{"sqlite": func(t *testing.T) string { return filepath.Join(t.TempDir(), "gateway.db") }}
	if os.Getenv(pgtest.EnvURL) != "" {
		dbs["postgres"] = func(t *testing.T) string { return pgtest.NewDatabase(t) }
	}
	for name, url := range dbs {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			db, err := sqldb.Open(e.ctx, url(t))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			gc := bus.NewGoChannel(nil)
			defer gc.Close()
			b := &downBus{Bus: gc}
			got := make(chan *eventsv1.RunRequested, 10)
			if err := gc.Subscribe(e.ctx, event.TopicRunRequests, "test", func(_ context.Context, m bus.Message) error {
				ev, err := event.Decode(m.Type, m.Payload)
				if err == nil {
					got <- ev.(*eventsv1.RunRequested)
				}
				return err
			}); err != nil {
				t.Fatal(err)
			}
			lf, err := local.New(local.Options{MirrorDir: t.TempDir(), LocalRoots: []string{os.TempDir()}})
			if err != nil {
				t.Fatal(err)
			}
			forges, _ := forge.NewRegistry(lf)
			conn, err := auth.Dial("127.0.0.1:1", "")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, stop := context.WithCancel(e.ctx)
			defer stop()
			mux := http.NewServeMux()
			if err := service.Register(ctx, mux, service.Config{Projects: conn, Scheduler: conn, Logs: conn,
				Internal: &directProjects{f: e.projects}, Bus: b, Forges: forges, DB: db, Log: slog.New(slog.DiscardHandler)}); err != nil {
				t.Fatal(err)
			}
			post := func(sha string) int {
				body := pushBody("refs/heads/main", sha)
				req := httptest.NewRequestWithContext(e.ctx, http.MethodPost, "/api/v1/webhooks/local/app", bytes.NewReader(body))
				req.Header.Set(forge.SignatureHeader, forge.Sign([]byte(app.WebhookSecret), body))
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, req)
				return rec.Code
			}
			wantSHA := func(sha string) {
				t.Helper()
				select {
				case rr := <-got:
					if rr.GetSha() != sha {
						t.Fatalf("published %s, want %s", rr.GetSha(), sha)
					}
				case <-time.After(15 * time.Second):
					t.Fatalf("RunRequested for %s not published", sha)
				}
			}

			b.down.Store(true)
			shas := []string{strings.Repeat("1", 40), strings.Repeat("2", 40), strings.Repeat("3", 40)}
			for _, sha := range shas {
				if code := post(sha); code != http.StatusAccepted {
					t.Fatalf("delivery while the bus is down: %d, want 202", code)
				}
			}
			select {
			case rr := <-got:
				t.Fatalf("published while the bus is down: %v", rr)
			case <-time.After(300 * time.Millisecond):
			}
			var n int
			if err := db.QueryRowContext(e.ctx, `SELECT count(*) FROM gw_outbox`).Scan(&n); err != nil || n != 3 {
				t.Fatalf("outbox holds %d deliveries (%v), want 3", n, err)
			}
			b.down.Store(false)
			for _, sha := range shas { // in the order they were accepted
				wantSHA(sha)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				if err := db.QueryRowContext(e.ctx, `SELECT count(*) FROM gw_outbox`).Scan(&n); err == nil && n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("outbox still holds %d forwarded deliveries", n)
				}
				time.Sleep(20 * time.Millisecond)
			}

			// The database gone: published directly.
			stop()
			db.Close()
			if code := post(strings.Repeat("4", 40)); code != http.StatusAccepted {
				t.Fatalf("delivery without the database: %d, want 202", code)
			}
			wantSHA(strings.Repeat("4", 40))
			// Neither: refused, so that the sender retries.
			b.down.Store(true)
			if code := post(strings.Repeat("5", 40)); code != http.StatusServiceUnavailable {
				t.Fatalf("delivery with nothing durable: %d, want 503", code)
			}
		})
	}
}
