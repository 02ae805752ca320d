// Package postgres is the PostgreSQL implementation of eventstore.Store,
// built on pgx v5.
//
// # Schema
//
// One table, events (migrations in libs/eventstore/schema): a bigserial global position, the stream id
// and version (UNIQUE together: that constraint is the optimistic concurrency
// check), a globally unique event id, type, payload (bytea), metadata (jsonb),
// recorded_at, and transaction_id, the xid8 of the appending transaction.
//
// # Why ReadAll never skips a late commit
//
// Positions come from a sequence, so they are handed out when rows are
// inserted, not when transactions commit: a transaction can take position 7,
// stay open, and commit after position 8 was committed and read. A reader
// that then continued "after 8" would never see 7.
//
// Like watermill-sql, every row records the id of its transaction, and
// ReadAll only returns rows whose transaction id is below the xmin of the
// reader's snapshot (pg_snapshot_xmin(pg_current_snapshot())): every
// transaction below xmin has finished, so nothing will ever appear below it.
//
// That alone is not enough with a single Position cursor (watermill-sql
// orders and resumes by (transaction_id, offset) instead): transaction ids
// are assigned in a different order than sequence values, so an open
// transaction with a higher id can hold a lower position than a committed one
// with a lower id, and the committed one is returned first. Append therefore
// takes a session-level advisory lock (see lockClass) around the INSERT, and
// releases it before the commit: inside the lock the transaction gets its id
// and all its positions, so across appends transaction-id order equals
// position order. With that, the set ReadAll returns is always a prefix (by
// position) of everything that will ever be committed. The lock serialises
// only the INSERT statement (tens of microseconds), not the commit and its
// fsync, so concurrent appenders still share group commits.
//
// Consequence for writers: only this package may insert into events. An
// insert from a transaction that already had an id (one that wrote something
// else first) would break the ordering argument, so an append that joins a
// caller's transaction (WithTx, see tx.go) must be that transaction's first
// write, and is refused with eventstore.ErrNotFirstWrite otherwise.
//
// Consequence for readers: a transaction that stays open anywhere on the
// server (any database) holds back xmin, and with it ReadAll. Keep write
// transactions short.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/eventstore/internal/record"
	"github.com/simpleci/simpleci/libs/eventstore/schema"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

// Advisory lock key, pg_advisory_lock(lockClass, lockAppend). lockClass is
// "SCI1" in ASCII, so it does not collide with other users of advisory locks
// by accident.
const (
	lockClass  int32 = 0x53434931
	lockAppend int32 = 1
)

// maxAnyAttempts bounds the retries of an ExpectAny append that lost a race
// for the next version. Each lost race means another append succeeded, and the
// append lock makes a second loss unlikely, so this is never reached in
// practice.
const maxAnyAttempts = 100

// Store is the PostgreSQL eventstore.Store. It is safe for concurrent use by
// many goroutines and many processes sharing one database.
type Store struct {
	pool *pgxpool.Pool
}

var _ eventstore.Store = (*Store)(nil)

// New returns a Store over pool. Call Migrate once before use.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// Migrate brings the events table to the latest version of schema.Migrations,
// creating it in a new database. It is safe to call from several processes at
// once: they take turns under an advisory lock.
func (s *Store) Migrate(ctx context.Context) error {
	db := stdlib.OpenDBFromPool(s.pool) // closing it leaves the pool open
	defer db.Close()
	if _, err := (&sqldb.DB{DB: db, Dialect: sqldb.Postgres, Pool: s.pool}).ApplyMigrations(ctx, schema.Migrations); err != nil {
		return fmt.Errorf("migrate eventstore: %w", err)
	}
	return nil
}

// insertSQL appends a batch in one statement, so the version check and the
// insert see the same state. It inserts nothing when $2 (expected) is neither
// -1 nor the current version; a concurrent append of the same version fails on
// events_stream_version_key (SQLSTATE 23505).
const insertSQL = `
WITH cur AS (
	SELECT coalesce(max(stream_version), 0) AS v FROM events WHERE stream_id = $1
)
INSERT INTO events (stream_id, stream_version, event_id, type, payload, metadata)
SELECT $1, cur.v + e.ord, e.event_id, e.type, coalesce(e.payload, '\x'::bytea), e.metadata::jsonb
FROM cur,
	unnest($3::text[], $4::text[], $5::bytea[], $6::text[])
		WITH ORDINALITY AS e(event_id, type, payload, metadata, ord)
WHERE $2::bigint = -1 OR cur.v = $2::bigint
ORDER BY e.ord
RETURNING stream_version`

const (
	lockSQL   = "SELECT pg_advisory_lock($1, $2)"
	unlockSQL = "SELECT pg_advisory_unlock($1, $2)"
)

// insertArgs is one append, in the column arrays insertSQL takes.
type insertArgs struct {
	streamID string
	expected int64
	ids      []string
	types    []string
	payloads [][]byte
	metadata []*string
}

func newInsertArgs(streamID string, expected int64, events []eventstore.Event) (insertArgs, error) {
	a := insertArgs{
		streamID: streamID,
		expected: expected,
		ids:      make([]string, len(events)),
		types:    make([]string, len(events)),
		payloads: make([][]byte, len(events)),
		metadata: make([]*string, len(events)),
	}
	for i, e := range events {
		a.ids[i] = e.ID
		a.types[i] = e.Type
		a.payloads[i] = e.Payload
		m, err := record.EncodeMetadata(e.Metadata)
		if err != nil {
			return insertArgs{}, fmt.Errorf("event %s: %w", e.ID, err)
		}
		if m != nil {
			ms := string(m)
			a.metadata[i] = &ms
		}
	}
	return a, nil
}

// queue adds the append's three statements to b: take the append lock,
// insert, release the lock. Sent outside a transaction block they run as one
// implicit transaction that commits at the batch's Sync, after the unlock.
func (a insertArgs) queue(b *pgx.Batch) {
	b.Queue(lockSQL, lockClass, lockAppend)
	b.Queue(insertSQL, a.streamID, a.expected, a.ids, a.types, a.payloads, a.metadata)
	b.Queue(unlockSQL, lockClass, lockAppend)
}

// errNotAppended means the insert wrote nothing: either the expected version
// did not match or a unique key was taken. Append then looks at what is
// stored to tell a redelivery, a duplicate and a version conflict apart.
var errNotAppended = errors.New("not appended")

// Append implements eventstore.Store. See the package documentation for the
// locking that keeps ReadAll safe.
func (s *Store) Append(ctx context.Context, streamID string, expected int64, events ...eventstore.Event) (int64, error) {
	start := time.Now()
	v, err := appendEvents(ctx, s, streamID, expected, events, maxAnyAttempts)
	eventstore.ObserveAppend("postgres", start, err)
	return v, err
}

// appender is where appendEvents writes: the pool (Store) or a caller's transaction
// (txStore, tx.go).
type appender interface {
	// insert runs the append; errNotAppended when the expected version did not match or
	// a unique key was taken.
	insert(ctx context.Context, a insertArgs) (int64, error)
	// lookup returns which of ids are stored (id -> stream id) and streamID's version.
	lookup(ctx context.Context, streamID string, ids []string) (map[string]string, int64, error)
	StreamVersion(ctx context.Context, streamID string) (int64, error)
}

// appendEvents is Append through a. After an insert that wrote nothing, what is stored
// tells a redelivery, a duplicate and a version conflict apart. An ExpectAny append that
// lost the race for the next version is tried again, up to anyAttempts times in all.
func appendEvents(ctx context.Context, a appender, streamID string, expected int64, events []eventstore.Event, anyAttempts int) (int64, error) {
	if err := record.Validate(streamID, expected, events); err != nil {
		return 0, fmt.Errorf("append to %s: %w", streamID, err)
	}
	if len(events) == 0 {
		v, err := a.StreamVersion(ctx, streamID)
		if err != nil {
			return 0, fmt.Errorf("append to %s: %w", streamID, err)
		}
		if expected != eventstore.ExpectAny && v != expected {
			return 0, fmt.Errorf("append to %s: expected version %d, stream is at %d: %w", streamID, expected, v, eventstore.ErrConcurrency)
		}
		return v, nil
	}
	args, err := newInsertArgs(streamID, expected, events)
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", streamID, err)
	}
	for attempt := 1; ; attempt++ {
		v, err := a.insert(ctx, args)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, errNotAppended) {
			return 0, fmt.Errorf("append to %s: %w", streamID, err)
		}
		stored, current, lerr := a.lookup(ctx, streamID, args.ids)
		if lerr != nil {
			return 0, fmt.Errorf("append to %s: after conflict: %w", streamID, lerr)
		}
		outcome, cerr := record.Classify(streamID, args.ids, stored)
		switch outcome {
		case record.Redelivered:
			return current, nil
		case record.Duplicate:
			return 0, fmt.Errorf("append to %s: %w", streamID, cerr)
		}
		if expected == eventstore.ExpectAny && attempt < anyAttempts {
			continue // lost the race for the next version; the winner is committed now
		}
		return 0, fmt.Errorf("append to %s: expected version %d, stream is at %d: %w", streamID, expected, current, eventstore.ErrConcurrency)
	}
}

// insert runs one append as a single pipelined implicit transaction:
// lock, insert, unlock, commit at Sync. It returns errNotAppended when the
// expected version did not match or a unique key was taken.
func (s *Store) insert(ctx context.Context, args insertArgs) (int64, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()

	b := &pgx.Batch{}
	args.queue(b)
	br := conn.SendBatch(ctx, b)
	version, n, err := readInsertBatch(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		// A failed statement makes the server skip the rest of the pipeline, the
		// unlock included; the session lock survives the rollback.
		releaseAppendLock(ctx, conn)
		if isUniqueViolation(err) {
			return 0, errNotAppended
		}
		return 0, err
	}
	if n == 0 {
		return 0, errNotAppended
	}
	return version, nil
}

// readInsertBatch reads the results of lock, insert, unlock.
func readInsertBatch(br pgx.BatchResults) (version int64, n int, err error) {
	if _, err := br.Exec(); err != nil {
		return 0, 0, fmt.Errorf("take append lock: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return 0, 0, fmt.Errorf("insert events: %w", err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("insert events: %w", err)
		}
		version = max(version, v)
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("insert events: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return 0, 0, fmt.Errorf("release append lock: %w", err)
	}
	return version, n, nil
}

// releaseAppendLock releases the append lock after a failed pipeline. If
// that fails too, the connection is closed, which releases every lock it held:
// a connection that went back to the pool still holding the lock would stop
// all appends.
func releaseAppendLock(ctx context.Context, conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// Returns false (and a harmless warning) when the lock was not taken.
	if _, err := conn.Exec(ctx, unlockSQL, lockClass, lockAppend); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// lookup returns which of ids are stored (id -> stream id) and the current
// version of streamID.
func (s *Store) lookup(ctx context.Context, streamID string, ids []string) (map[string]string, int64, error) {
	b := &pgx.Batch{}
	b.Queue("SELECT event_id, stream_id FROM events WHERE event_id = ANY($1)", ids)
	b.Queue("SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", streamID)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()

	rows, err := br.Query()
	if err != nil {
		return nil, 0, fmt.Errorf("look up event ids: %w", err)
	}
	stored := make(map[string]string)
	for rows.Next() {
		var id, stream string
		if err := rows.Scan(&id, &stream); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("look up event ids: %w", err)
		}
		stored[id] = stream
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("look up event ids: %w", err)
	}
	var current int64
	if err := br.QueryRow().Scan(&current); err != nil {
		return nil, 0, fmt.Errorf("read stream version: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, 0, fmt.Errorf("look up event ids: %w", err)
	}
	return stored, current, nil
}

const selectColumns = `position, stream_id, stream_version, event_id, type, payload, metadata, recorded_at`

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, streamID string, fromVersion int64) ([]eventstore.Event, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT `+selectColumns+` FROM events WHERE stream_id = $1 AND stream_version >= $2 ORDER BY stream_version`,
		streamID, fromVersion)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	defer rows.Close()
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	return events, nil
}

// readAllSQL only returns rows of transactions that finished before the
// oldest transaction still running; see the package documentation.
const readAllSQL = `SELECT ` + selectColumns + ` FROM events
WHERE position > $1 AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY position
LIMIT $2`

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("read all after %d: %w: limit %d must be positive", after, eventstore.ErrInvalidArgument, limit)
	}
	rows, err := s.pool.Query(ctx, readAllSQL, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	defer rows.Close()
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	return events, nil
}

// StreamVersion implements eventstore.Store.
func (s *Store) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	var v int64
	err := s.pool.QueryRow(ctx,
		"SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1", streamID).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("stream version of %s: %w", streamID, err)
	}
	return v, nil
}

// rows is what scanEvents needs of pgx.Rows and *sql.Rows.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanEvents reads events from rows; the caller closes them.
func scanEvents(rows rows) ([]eventstore.Event, error) {
	var events []eventstore.Event
	for rows.Next() {
		var (
			e        eventstore.Event
			metadata []byte
		)
		if err := rows.Scan(&e.Position, &e.StreamID, &e.Version, &e.ID, &e.Type, &e.Payload, &metadata, &e.RecordedAt); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		m, err := record.DecodeMetadata(metadata)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", e.ID, err)
		}
		e.Metadata = m
		e.Payload = record.Payload(e.Payload)
		e.RecordedAt = e.RecordedAt.UTC()
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return events, nil
}
