// Package eventstore defines the append-only event log that SimpleCI's
// event-sourced aggregates (the Run) are stored in, independent of the
// database behind it.
//
// A stream holds the events of one aggregate ("run-<id>"), numbered 1, 2, 3…
// by Version without gaps. Every event also gets a global Position, increasing
// across all streams, which projections and the outbox forwarder use to follow
// the whole log with ReadAll.
//
// Implementations: package postgres (pgx) for production and package sqlite
// (pure Go) for the embedded default. Both pass the one conformance suite in
// package eventstoretest.
package eventstore

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Event is one recorded fact in a stream.
//
// Fields marked "set by the store" are ignored by Append and filled in when
// the event is read back.
type Event struct {
	// ID is the event's unique id (ULID/UUID), chosen by the caller. It is
	// unique across all streams; Append uses it to make redelivered appends
	// idempotent (see Store.Append).
	ID string
	// StreamID names the stream, e.g. "run-<id>". Set by the store from the
	// stream Append was called with.
	StreamID string
	// Version is the 1-based position of the event within its stream. Set by
	// the store.
	Version int64
	// Type is the permanent event type name (never renamed once deployed).
	Type string
	// Payload is the serialized protobuf message. Any bytes round-trip
	// exactly; an empty payload reads back as nil.
	Payload []byte
	// Metadata carries org_id, project_id, causation and correlation ids and
	// the like. It is stored as JSON, so keys and values must be valid UTF-8
	// without NUL characters. Empty metadata reads back as nil.
	Metadata map[string]string
	// RecordedAt is when the store recorded the event, in UTC with
	// microsecond precision. Set by the store.
	RecordedAt time.Time
	// Position is the event's global position: strictly increasing in the
	// order ReadAll returns events, unique, but not necessarily dense (gaps are
	// normal). Set by the store.
	Position int64
}

// Special values for the expected version passed to Store.Append. Any other
// expected value n >= 1 means "the stream's current version is exactly n".
const (
	// ExpectAny appends whatever the stream's current version is.
	ExpectAny int64 = -1
	// ExpectNoStream appends only if the stream has no events yet.
	ExpectNoStream int64 = 0
)

var (
	// ErrConcurrency means the stream's current version did not match the
	// expected version: another writer appended first. Reload the aggregate
	// and retry the command.
	ErrConcurrency = errors.New("eventstore: stream version does not match the expected version")

	// ErrDuplicateEvent means an event id in the append is already stored,
	// but the append is not a plain redelivery: some of its ids are new, or an
	// id belongs to another stream. Nothing was written. It points to a bug in
	// the caller (event ids reused for different facts).
	ErrDuplicateEvent = errors.New("eventstore: event id already stored")

	// ErrInvalidArgument means the append was malformed (empty stream id,
	// event id or type, the same id twice in one append, an expected version
	// below ExpectAny, metadata that is not valid UTF-8 or contains NUL, a
	// non-positive ReadAll limit). Nothing was written.
	ErrInvalidArgument = errors.New("eventstore: invalid argument")

	// ErrNotFirstWrite means an append through TxStore.WithTx came after the
	// transaction had already written something else (PostgreSQL). Nothing
	// was written; append first, then write the rows derived from the events.
	ErrNotFirstWrite = errors.New("eventstore: an append must be its transaction's first write")
)

// Store is an append-only log of event streams.
//
// Implementations are safe for concurrent use by multiple goroutines and, for
// PostgreSQL, by multiple processes.
type Store interface {
	// Append atomically adds events to the end of streamID and returns the
	// stream's new version. The events' StreamID, Version, RecordedAt and
	// Position are ignored and assigned by the store.
	//
	// expected is the version the caller last saw: ExpectNoStream (0) for a
	// new stream, n for a stream whose current version is n, or ExpectAny.
	// When it does not match, Append writes nothing and returns an error
	// wrapping ErrConcurrency. ExpectAny never fails with ErrConcurrency.
	//
	// Idempotency rule: if EVERY event id of the call is already stored in
	// streamID (a redelivered command), Append writes nothing and returns
	// (current version, nil), whatever expected is, so a consumer that
	// processes a message twice sees success both times. If only some of the
	// ids are stored, or one is stored in another stream, Append writes
	// nothing and returns an error wrapping ErrDuplicateEvent.
	//
	// Append with no events writes nothing and returns the current version,
	// or ErrConcurrency if it does not match expected.
	Append(ctx context.Context, streamID string, expected int64, events ...Event) (int64, error)

	// ReadStream returns the events of streamID with Version >= fromVersion
	// in version order (fromVersion <= 1 reads the whole stream). A stream
	// that does not exist reads as empty, not as an error. Every committed
	// append is visible to ReadStream as soon as Append returns.
	ReadStream(ctx context.Context, streamID string, fromVersion int64) ([]Event, error)

	// ReadAll returns at most limit events with Position > after, in
	// position order, across all streams. Pass the Position of the last event
	// you processed as after (0 to start at the beginning).
	//
	// It never skips an event: an event that becomes visible later always
	// has a Position greater than every event already returned, so a reader
	// that resumes from its last Position misses nothing even when appends
	// commit out of order. The price (PostgreSQL) is that an event may show
	// up in ReadAll a little after Append returned, while older transactions
	// are still open; readers poll or are woken by a notification.
	ReadAll(ctx context.Context, after int64, limit int) ([]Event, error)

	// StreamVersion returns the current version of streamID: the Version of
	// its last event, or 0 if it has none.
	StreamVersion(ctx context.Context, streamID string) (int64, error)
}

// TxStore is a Store whose appends and reads can join a database transaction
// the caller owns, so that a decision's events and the rows derived from them
// (a job queue, a projection's position) commit together or not at all.
type TxStore interface {
	Store
	// WithTx returns the store inside tx, a transaction on the database the
	// store was opened on. Appends through it become visible when tx commits
	// and vanish when it rolls back; reads through it see tx's own appends.
	// The returned Store must not be used after tx ends.
	//
	// Rules for the caller (PostgreSQL; SQLite accepts anything):
	//   - an append must be tx's first write: read what you need, append,
	//     then write the derived rows. Otherwise the append fails with
	//     ErrNotFirstWrite (see package postgres for why). A read that locks
	//     rows (SELECT ... FOR UPDATE) counts as a write.
	//   - one append per transaction; after an append that returned an error,
	//     roll tx back. A lost race returns ErrConcurrency even with
	//     ExpectAny: retry the whole transaction.
	WithTx(tx *sql.Tx) Store
}
