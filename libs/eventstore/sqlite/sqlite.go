// Package sqlite is the SQLite implementation of eventstore.Store for the
// embedded default (`simpleci dev`), on the pure Go driver modernc.org/sqlite
// (builds with CGO_ENABLED=0).
//
// SQLite allows one writer at a time. Append runs in a BEGIN IMMEDIATE
// transaction, which takes the write lock before reading the stream's version,
// so the version check and the insert cannot interleave with another append
// (from this process or another one). Appends through one Store are also
// queued on a mutex, so goroutines wait on each other instead of on SQLite's
// sleeping busy handler.
//
// Because writers commit one after another in position order, a reader never
// sees a higher position before a lower one: ReadAll needs no extra guard.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/simpleci/simpleci/libs/eventstore"
	"github.com/simpleci/simpleci/libs/eventstore/internal/record"
	"github.com/simpleci/simpleci/libs/eventstore/schema"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

// BusyTimeout is how long a connection opened by Open waits for another
// writer (another process, or another user of the same database) to release
// the write lock before failing with SQLITE_BUSY.
const BusyTimeout = 10 * time.Second

// Open opens (creating if needed) the SQLite database file at path with the
// settings the eventstore and the other embedded stores expect, applied to
// every pooled connection: WAL journal (readers never block the writer),
// synchronous=NORMAL (durable across process crashes; a power loss may lose
// the last transactions, never corrupt the file), busy_timeout=BusyTimeout,
// foreign keys on, and BEGIN IMMEDIATE for transactions started with
// db.BeginTx (so a transaction that reads then writes cannot fail to upgrade
// its lock).
//
// path must be a file: an in-memory database would be private to each pooled
// connection.
func Open(path string) (*sql.DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open sqlite %q: need a plain file path (an in-memory database is private to each pooled connection)", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", path, err)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	// The file: URI form lets any character appear in the path (percent-encoded).
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", abs, err)
	}
	if !strings.EqualFold(mode, "wal") {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: journal_mode is %q, want wal", abs, mode)
	}
	return db, nil
}

// Store is the SQLite eventstore.Store. It is safe for concurrent use.
type Store struct {
	db *sql.DB
	// mu queues this Store's appends; see the package documentation.
	mu sync.Mutex
}

var _ eventstore.Store = (*Store)(nil)

// New returns a Store over db, preferably opened with Open. Call Migrate once
// before use.
func New(db *sql.DB) *Store {
	return &Store{db: db}
}

// Migrate brings the events table to the latest version of schema.Migrations,
// creating it in a new database.
func (s *Store) Migrate(ctx context.Context) error {
	if _, err := (&sqldb.DB{DB: s.db, Dialect: sqldb.SQLite}).ApplyMigrations(ctx, schema.Migrations); err != nil {
		return fmt.Errorf("migrate eventstore: %w", err)
	}
	return nil
}

// encode validates an append and encodes its events' metadata.
func encode(streamID string, expected int64, events []eventstore.Event) ([][]byte, error) {
	if err := record.Validate(streamID, expected, events); err != nil {
		return nil, fmt.Errorf("append to %s: %w", streamID, err)
	}
	metadata := make([][]byte, len(events))
	for i, e := range events {
		m, err := record.EncodeMetadata(e.Metadata)
		if err != nil {
			return nil, fmt.Errorf("append to %s: event %s: %w", streamID, e.ID, err)
		}
		metadata[i] = m
	}
	return metadata, nil
}

// Append implements eventstore.Store.
func (s *Store) Append(ctx context.Context, streamID string, expected int64, events ...eventstore.Event) (int64, error) {
	start := time.Now()
	v, err := s.append(ctx, streamID, expected, events)
	eventstore.ObserveAppend("sqlite", start, err)
	return v, err
}

func (s *Store) append(ctx context.Context, streamID string, expected int64, events []eventstore.Event) (int64, error) {
	metadata, err := encode(streamID, expected, events)
	if err != nil {
		return 0, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var version int64
	err = s.writeTx(ctx, func(conn *sql.Conn) error {
		var err error
		version, err = appendOn(ctx, conn, streamID, expected, events, metadata)
		return err
	})
	if errors.Is(err, errNoChange) {
		return version, nil
	}
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", streamID, err)
	}
	return version, nil
}

// conn is what an append needs of a connection or a transaction.
type conn interface {
	querier
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// appendOn appends inside a write transaction that is already open on c and
// returns the stream's version. errNoChange means nothing was written (a
// redelivery, or no events) and the version is current.
func appendOn(ctx context.Context, c conn, streamID string, expected int64, events []eventstore.Event, metadata [][]byte) (int64, error) {
	current, err := streamVersion(ctx, c, streamID)
	if err != nil {
		return 0, err
	}
	if len(events) > 0 {
		stored, err := storedIDs(ctx, c, record.IDs(events))
		if err != nil {
			return 0, err
		}
		outcome, err := record.Classify(streamID, record.IDs(events), stored)
		switch outcome {
		case record.Redelivered:
			return current, errNoChange
		case record.Duplicate:
			return 0, err
		}
	}
	if expected != eventstore.ExpectAny && current != expected {
		return 0, fmt.Errorf("expected version %d, stream is at %d: %w", expected, current, eventstore.ErrConcurrency)
	}
	if len(events) == 0 {
		return current, errNoChange
	}
	stmt, err := c.PrepareContext(ctx, `INSERT INTO events
		(stream_id, stream_version, event_id, type, payload, metadata, recorded_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, fmt.Errorf("prepare insert: %w", err)
	}
	defer stmt.Close()
	now := time.Now().UnixMicro()
	for i, e := range events {
		var md any
		if metadata[i] != nil {
			md = string(metadata[i])
		}
		payload := e.Payload
		if payload == nil {
			payload = []byte{}
		}
		if _, err := stmt.ExecContext(ctx, streamID, current+int64(i)+1, e.ID, e.Type, payload, md, now); err != nil {
			return 0, fmt.Errorf("insert event %s: %w", e.ID, mapConstraint(err))
		}
	}
	return current + int64(len(events)), nil
}

// errNoChange rolls back a write transaction that had nothing to write.
var errNoChange = errors.New("no change")

// writeTx runs fn inside BEGIN IMMEDIATE on one dedicated connection and
// commits when fn returns nil. BEGIN IMMEDIATE is issued by hand so the
// write lock is taken first whatever _txlock the *sql.DB was opened with.
func (s *Store) writeTx(ctx context.Context, fn func(conn *sql.Conn) error) (err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("get connection: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin immediate: %w", err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		// The caller's ctx may be what failed; the rollback must still run.
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			// Never hand a connection stuck inside a transaction back to the pool.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	if err := fn(conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", mapConstraint(err))
	}
	done = true
	return nil
}

// mapConstraint turns a UNIQUE violation into the store's errors. Under
// BEGIN IMMEDIATE the checks before the insert make these unreachable, but a
// second writer that does not take the write lock first would hit them.
func mapConstraint(err error) error {
	var se *sqlitedriver.Error
	if !errors.As(err, &se) || se.Code() != sqlite3.SQLITE_CONSTRAINT_UNIQUE {
		return err
	}
	if strings.Contains(se.Error(), "events.event_id") {
		return fmt.Errorf("%w: %v", eventstore.ErrDuplicateEvent, err)
	}
	return fmt.Errorf("%w: %v", eventstore.ErrConcurrency, err)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func streamVersion(ctx context.Context, q querier, streamID string) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = ?", streamID).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("stream version of %s: %w", streamID, err)
	}
	return v, nil
}

// storedIDs returns which of ids are stored, as id -> stream id.
func storedIDs(ctx context.Context, q querier, ids []string) (map[string]string, error) {
	const chunk = 500 // well below SQLite's limit on bound parameters
	stored := make(map[string]string)
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		marks := strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")
		rows, err := q.QueryContext(ctx, "SELECT event_id, stream_id FROM events WHERE event_id IN ("+marks+")", args...)
		if err != nil {
			return nil, fmt.Errorf("look up event ids: %w", err)
		}
		for rows.Next() {
			var id, stream string
			if err := rows.Scan(&id, &stream); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up event ids: %w", err)
			}
			stored[id] = stream
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("look up event ids: %w", err)
		}
		rows.Close()
	}
	return stored, nil
}

const selectColumns = `position, stream_id, stream_version, event_id, type, payload, metadata, recorded_at`

// ReadStream implements eventstore.Store.
func (s *Store) ReadStream(ctx context.Context, streamID string, fromVersion int64) ([]eventstore.Event, error) {
	return readStream(ctx, s.db, streamID, fromVersion)
}

func readStream(ctx context.Context, q querier, streamID string, fromVersion int64) ([]eventstore.Event, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT `+selectColumns+` FROM events WHERE stream_id = ? AND stream_version >= ? ORDER BY stream_version`,
		streamID, fromVersion)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	return events, nil
}

// ReadAll implements eventstore.Store.
func (s *Store) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	return readAll(ctx, s.db, after, limit)
}

func readAll(ctx context.Context, q querier, after int64, limit int) ([]eventstore.Event, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("read all after %d: %w: limit %d must be positive", after, eventstore.ErrInvalidArgument, limit)
	}
	rows, err := q.QueryContext(ctx,
		`SELECT `+selectColumns+` FROM events WHERE position > ? ORDER BY position LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	events, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	return events, nil
}

// StreamVersion implements eventstore.Store.
func (s *Store) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	return streamVersion(ctx, s.db, streamID)
}

func scanEvents(rows *sql.Rows) ([]eventstore.Event, error) {
	defer rows.Close()
	var events []eventstore.Event
	for rows.Next() {
		var (
			e          eventstore.Event
			metadata   sql.NullString
			recordedAt int64
		)
		if err := rows.Scan(&e.Position, &e.StreamID, &e.Version, &e.ID, &e.Type, &e.Payload, &metadata, &recordedAt); err != nil {
			return nil, fmt.Errorf("scan event: %w", err)
		}
		if metadata.Valid {
			m, err := record.DecodeMetadata([]byte(metadata.String))
			if err != nil {
				return nil, fmt.Errorf("event %s: %w", e.ID, err)
			}
			e.Metadata = m
		}
		e.Payload = record.Payload(e.Payload)
		e.RecordedAt = time.UnixMicro(recordedAt).UTC()
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return events, nil
}

var _ eventstore.TxStore = (*Store)(nil)

// WithTx implements eventstore.TxStore. tx must be a write transaction on the
// store's database (BEGIN IMMEDIATE: Open and sqldb set _txlock=immediate), so
// that the version check and the insert cannot interleave with another writer.
func (s *Store) WithTx(tx *sql.Tx) eventstore.Store { return &txStore{tx: tx} }

type txStore struct{ tx *sql.Tx }

// Append implements eventstore.Store inside the transaction.
func (s *txStore) Append(ctx context.Context, streamID string, expected int64, events ...eventstore.Event) (int64, error) {
	start := time.Now()
	v, err := s.append(ctx, streamID, expected, events)
	eventstore.ObserveAppend("sqlite", start, err)
	return v, err
}

func (s *txStore) append(ctx context.Context, streamID string, expected int64, events []eventstore.Event) (int64, error) {
	metadata, err := encode(streamID, expected, events)
	if err != nil {
		return 0, err
	}
	v, err := appendOn(ctx, s.tx, streamID, expected, events, metadata)
	if errors.Is(err, errNoChange) {
		return v, nil
	}
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", streamID, err)
	}
	return v, nil
}

// ReadStream implements eventstore.Store inside the transaction.
func (s *txStore) ReadStream(ctx context.Context, streamID string, fromVersion int64) ([]eventstore.Event, error) {
	return readStream(ctx, s.tx, streamID, fromVersion)
}

// ReadAll implements eventstore.Store inside the transaction.
func (s *txStore) ReadAll(ctx context.Context, after int64, limit int) ([]eventstore.Event, error) {
	return readAll(ctx, s.tx, after, limit)
}

// StreamVersion implements eventstore.Store inside the transaction.
func (s *txStore) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	return streamVersion(ctx, s.tx, streamID)
}
