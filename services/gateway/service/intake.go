package service

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/simpleci/simpleci/libs/bus"
	"github.com/simpleci/simpleci/libs/platform/leader"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	"github.com/simpleci/simpleci/libs/platform/telemetry"
	"github.com/simpleci/simpleci/libs/platform/wake"
)

//go:embed migrations
var migrations embed.FS

// Schema is the gateway's one table, gw_outbox, as versioned migrations; its versions are
// kept in gateway_schema_migrations.
var Schema = sqldb.Schema{Name: "gateway", Migrations: migrations, Dir: "migrations"}

// intake makes an accepted delivery durable before the gateway answers 202
// (docs/adr: durable webhook intake): the message goes into gw_outbox, and a forwarder
// publishes what is there in order and removes it once the bus accepted it, retrying
// while the bus is down. When the database cannot take the message, it is published
// directly; only when neither works is the delivery refused (503).
type intake struct {
	db      *sqldb.DB
	bus     bus.Bus
	log     *slog.Logger
	added   wake.Signal
	replays *replays // pruned by the forwarder; nil: nothing to prune
}

// pruneEvery is how often the forwarder deletes the bodies past the replay window.
const pruneEvery = time.Minute

// forwardBatch bounds the messages one publish carries.
const forwardBatch = 100

// accept makes m durable: in the outbox, else on the bus. It says which.
func (in *intake) accept(ctx context.Context, topic string, m bus.Message) (string, error) {
	if in.db != nil {
		_, err := in.db.ExecContext(ctx, in.db.Q(`INSERT INTO gw_outbox (message_id, topic, msg_key, msg_type, payload, created_at, trace_context)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING`), m.ID, topic, m.Key, m.Type, m.Payload, time.Now().UnixNano(), traceContext(ctx))
		if err == nil {
			in.added.Notify()
			return "outbox", nil
		}
		in.log.Error("record delivery in the outbox; publishing directly", "err", err)
	}
	if err := in.bus.Publish(ctx, topic, m); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	return "bus", nil
}

// forward publishes the outbox until ctx ends, on one gateway of the deployment at a time
// (libs/platform/leader); another takes over when it dies.
func (in *intake) forward(ctx context.Context) {
	leader.Run(ctx, in.db, "gateway-outbox", leader.Options{Log: in.log}, func(ctx context.Context) {
		backoff := 100 * time.Millisecond
		var pruned time.Time
		for ctx.Err() == nil {
			if in.replays != nil && time.Since(pruned) >= pruneEvery {
				pruned = time.Now()
				if n, err := in.replays.prune(ctx); err != nil {
					in.log.Warn("prune remembered webhook bodies", "err", err)
				} else if n > 0 {
					in.log.Info("pruned remembered webhook bodies past the replay window", "rows", n)
				}
			}
			signal := in.added.Wait()
			n, err := in.forwardOnce(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				in.log.Warn("forward accepted deliveries; retrying", "err", err, "retry_in", backoff)
				sleep(ctx, backoff)
				backoff = min(backoff*2, 5*time.Second)
				continue
			case n == forwardBatch:
				continue // more waiting
			}
			backoff = 100 * time.Millisecond
			t := time.NewTimer(time.Second) // deliveries accepted by other gateways
			select {
			case <-ctx.Done():
			case <-signal:
			case <-t.C:
			}
			t.Stop()
		}
	})
}

// forwardOnce publishes the oldest messages of the outbox and removes them.
func (in *intake) forwardOnce(ctx context.Context) (int, error) {
	rows, err := in.db.QueryContext(ctx, in.db.Q(`SELECT seq, message_id, topic, msg_key, msg_type, payload, trace_context FROM gw_outbox ORDER BY seq LIMIT ?`), forwardBatch)
	if err != nil {
		return 0, err
	}
	type pending struct {
		seq   int64
		topic string
		msg   bus.Message
	}
	var batch []pending
	for rows.Next() {
		var p pending
		var tc string
		if err := rows.Scan(&p.seq, &p.msg.ID, &p.topic, &p.msg.Key, &p.msg.Type, &p.msg.Payload, &tc); err != nil {
			rows.Close()
			return 0, err
		}
		p.msg.Metadata = carriedTrace(tc)
		batch = append(batch, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(batch) == 0 {
		return 0, err
	}
	// One publish per run of messages of the same topic, in order.
	for start := 0; start < len(batch); {
		end := start
		var msgs []bus.Message
		for end < len(batch) && batch[end].topic == batch[start].topic {
			msgs = append(msgs, batch[end].msg)
			end++
		}
		// A row the bus refuses for good (over its limit: the intake checks events since
		// they are bounded, so only a row from before) is set aside in the poison queue and
		// removed with the others, so it cannot hold back every tenant's deliveries.
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := bus.PublishOrSetAside(pctx, in.bus, batch[start].topic, "outbox:gateway", msgs, func(m bus.Message) string {
			return fmt.Sprintf("the gateway's outbox row %s is removed", m.ID)
		})
		cancel()
		if err != nil {
			return 0, fmt.Errorf("publish %d messages on %s: %w", len(msgs), batch[start].topic, err)
		}
		// By sequence number, one by one in a transaction: a message another gateway
		// recorded with a lower number that committed after the read was not published.
		err = in.db.Tx(ctx, func(tx *sql.Tx) error {
			for _, p := range batch[start:end] {
				if _, err := tx.ExecContext(ctx, in.db.Q(`DELETE FROM gw_outbox WHERE seq = ?`), p.seq); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("remove forwarded messages: %w", err)
		}
		start = end
	}
	return len(batch), nil
}

// traceContext is ctx's trace context as the outbox stores it: JSON of the W3C fields,
// ” when there is none (tracing is off).
func traceContext(ctx context.Context) string {
	md := map[string]string{}
	telemetry.Inject(ctx, md)
	if len(md) == 0 {
		return ""
	}
	b, _ := json.Marshal(md)
	return string(b)
}

// carriedTrace is the bus metadata carrying a stored trace context (nil: none), so the
// consumer continues the trace of the request that accepted the delivery.
func carriedTrace(stored string) map[string]string {
	if stored == "" {
		return nil
	}
	var md map[string]string
	if json.Unmarshal([]byte(stored), &md) != nil {
		return nil // not ours to fail a delivery over
	}
	return telemetry.Carried(md)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// errNoDurablePath is what the webhook answers 503 for.
var errNoDurablePath = errors.New("neither the gateway's database nor the bus accepted the delivery")
