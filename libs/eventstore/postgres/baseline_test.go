package postgres_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The baselines for BenchmarkAppend*: plain pgx INSERTs of the same rows into the same
// table (issue 4: Append must reach 80% of their rate), one transaction per call like
// Append, with none of its checks (expected version, idempotence, ordering lock).

func plainInsert(b *testing.B, batch int) {
	_, pool := newStore(b)
	ctx := context.Background()
	payload := make([]byte, 200)
	meta := []byte(`{"org_id":"org-1","project_id":"project-1"}`)
	i := 0
	for ; b.Loop(); i++ {
		tx, err := pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		var bt pgx.Batch
		for j := range batch {
			bt.Queue(`INSERT INTO events (stream_id, stream_version, event_id, type, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6)`,
				fmt.Sprintf("run-plain-%d", i), j+1, rand.Text(), "StepFinished", payload, meta)
		}
		if err := tx.SendBatch(ctx, &bt).Close(); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(i*batch)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkPlainInsertSingle(b *testing.B)   { plainInsert(b, 1) }
func BenchmarkPlainInsertBatch100(b *testing.B) { plainInsert(b, 100) }
