package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/simpleci/simpleci/libs/eventstore"
)

func TestZZProbe(t *testing.T) {
	s, pool := newTestStore(t)
	ctx := context.Background()
	pool.Exec(ctx, "CREATE TABLE t (id bigserial primary key, v text)")
	const n = 300
	measure := func(name string, fn func(i int)) {
		start := time.Now()
		for i := range n {
			fn(i)
		}
		t.Logf("%-30s %v/op", name, time.Since(start)/n)
	}
	measure("plain insert", func(i int) { pool.Exec(ctx, "INSERT INTO t (v) VALUES ('x')") })
	measure("batch lock+insert+unlock t", func(i int) {
		b := &pgx.Batch{}
		b.Queue(lockSQL, lockClass, lockAppend)
		b.Queue("INSERT INTO t (v) VALUES ('x')")
		b.Queue(unlockSQL, lockClass, lockAppend)
		if err := pool.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
	})
	var v int64
	measure("store append", func(i int) {
		var err error
		v, err = s.Append(ctx, "run-x", v, eventstore.Event{ID: newID(i), Type: "A", Payload: []byte("p")})
		if err != nil {
			t.Fatal(err)
		}
	})
	measure("store append any", func(i int) {
		var err error
		v, err = s.Append(ctx, "run-y", eventstore.ExpectAny, eventstore.Event{ID: newID(i + 1000), Type: "A", Payload: []byte("p")})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func newID(i int) string { return time.Now().Format(time.RFC3339Nano) + string(rune('a'+i%26)) }
