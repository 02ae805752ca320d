package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/simpleci/simpleci/libs/eventstore"
)

var _ eventstore.TxStore = (*Store)(nil)

// WithTx implements eventstore.TxStore. tx must be a database/sql transaction
// over pgx's stdlib driver on the same database (sqldb.DB opens one).
//
// An append inside a caller's transaction keeps the package's ordering
// argument only if the transaction gets its id inside the append lock, so the
// append must be the transaction's first write: it checks
// pg_current_xact_id_if_assigned() under the lock and refuses with
// eventstore.ErrNotFirstWrite otherwise. The lock is taken and released inside
// a savepoint around the INSERT, as in Append, so the commit (and its fsync),
// and whatever the caller writes after the append, run outside it.
func (s *Store) WithTx(tx *sql.Tx) eventstore.Store { return &txStore{tx: tx} }

type txStore struct{ tx *sql.Tx }

// Append implements eventstore.Store inside the transaction. A lost race is not tried
// again, even with ExpectAny: the transaction already has an id (TxStore's contract).
func (s *txStore) Append(ctx context.Context, streamID string, expected int64, events ...eventstore.Event) (int64, error) {
	start := time.Now()
	v, err := appendEvents(ctx, s, streamID, expected, events, 1)
	eventstore.ObserveAppend("postgres", start, err)
	return v, err
}

const savepoint = "eventstore_append"

// insert runs lock, first-write check, insert, unlock inside a savepoint. A
// failed INSERT is rolled back to the savepoint, which leaves the caller's
// transaction usable and lets the session lock be released.
func (s *txStore) insert(ctx context.Context, a insertArgs) (version int64, err error) {
	if _, err := s.tx.ExecContext(ctx, "SAVEPOINT "+savepoint); err != nil {
		return 0, fmt.Errorf("savepoint: %w", err)
	}
	locked := false
	defer func() {
		if err == nil {
			return
		}
		// Undo the failed statement so the unlock can run, whatever ctx says.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, rerr := s.tx.ExecContext(rctx, "ROLLBACK TO SAVEPOINT "+savepoint); rerr != nil {
			// The transaction is unusable; its connection must not go back to
			// the pool holding the append lock. database/sql discards a
			// connection whose rollback fails, which ends the session.
			err = errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rerr))
			return
		}
		if locked {
			if _, uerr := s.tx.ExecContext(rctx, unlockSQL, lockClass, lockAppend); uerr != nil {
				err = errors.Join(err, fmt.Errorf("release append lock: %w", uerr))
			}
		}
	}()
	if _, err := s.tx.ExecContext(ctx, lockSQL, lockClass, lockAppend); err != nil {
		return 0, fmt.Errorf("take append lock: %w", err)
	}
	locked = true
	var first bool
	if err := s.tx.QueryRowContext(ctx, "SELECT pg_current_xact_id_if_assigned() IS NULL").Scan(&first); err != nil {
		return 0, fmt.Errorf("check transaction id: %w", err)
	}
	if !first {
		return 0, eventstore.ErrNotFirstWrite
	}
	rows, err := s.tx.QueryContext(ctx, insertSQL, a.streamID, a.expected, a.ids, a.types, a.payloads, a.metadata)
	if err != nil {
		if isUniqueViolation(err) {
			return 0, errNotAppended
		}
		return 0, fmt.Errorf("insert events: %w", err)
	}
	n := 0
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return 0, fmt.Errorf("insert events: %w", err)
		}
		version = max(version, v)
		n++
	}
	if err := rows.Err(); err != nil {
		if isUniqueViolation(err) {
			return 0, errNotAppended
		}
		return 0, fmt.Errorf("insert events: %w", err)
	}
	if _, err := s.tx.ExecContext(ctx, unlockSQL, lockClass, lockAppend); err != nil {
		return 0, fmt.Errorf("release append lock: %w", err)
	}
	locked = false
	if n == 0 {
		return 0, errNotAppended
	}
	if _, err := s.tx.ExecContext(ctx, "RELEASE SAVEPOINT "+savepoint); err != nil {
		return 0, fmt.Errorf("release savepoint: %w", err)
	}
	return version, nil
}

func (s *txStore) lookup(ctx context.Context, streamID string, ids []string) (map[string]string, int64, error) {
	rows, err := s.tx.QueryContext(ctx, "SELECT event_id, stream_id FROM events WHERE event_id = ANY($1)", ids)
	if err != nil {
		return nil, 0, fmt.Errorf("look up event ids: %w", err)
	}
	defer rows.Close()
	stored := make(map[string]string)
	for rows.Next() {
		var id, stream string
		if err := rows.Scan(&id, &stream); err != nil {
			return nil, 0, fmt.Errorf("look up event ids: %w", err)
		}
		stored[id] = stream
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("look up event ids: %w", err)
	}
	current, err := s.StreamVersion(ctx, streamID)
	return stored, current, err
}

// ReadStream implements eventstore.Store inside the transaction.
func (s *txStore) ReadStream(ctx context.Context, streamID string, fromVersion int64) ([]eventstore.Event, error) {
	rows, err := s.tx.QueryContext(ctx,
		`SELECT `+selectColumns+` FROM events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version`,
		streamID, fromVersion)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	events, err := scanSQLEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	return events, nil
}

// ReadAll implements eventstore.Store inside the transaction.
func (s *txStore) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("read all after %d: %w: limit %d must be positive", after, eventstore.ErrInvalidArgument, limit)
	}
	rows, err := s.tx.QueryContext(ctx, readAllSQL, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	events, err := scanSQLEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	return events, nil
}

// StreamVersion implements eventstore.Store inside the transaction.
func (s *txStore) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	var v int64
	err := s.tx.QueryRowContext(ctx,
		"SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", streamID).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("stream version of %s: %w", streamID, err)
	}
	return v, nil
}

func scanSQLEvents(rows *sql.Rows) ([]eventstore.Event, error) {
	defer rows.Close()
	return scanEvents(rows)
}
