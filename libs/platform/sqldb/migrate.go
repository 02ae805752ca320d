package sqldb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"path"
	"strings"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Schema is the versioned migrations of one owner of tables: a service or the event store.
// Each owner keeps the versions it applied in its own table, so owners that share a
// database (one PostgreSQL database for every service) migrate independently.
//
// Migrations holds, under Dir, one directory per dialect, postgres/ and sqlite/, of goose
// SQL files (`-- +goose Up`) numbered from 00001. Migration 1 is the schema as it was before
// versioning, written with IF NOT EXISTS so that a database created then is adopted as
// version 1 with its data; every later migration is applied exactly once. A migration,
// once released, is never edited: a change is a new file.
type Schema struct {
	// Name names the owner, e.g. "auth"; its version table is Name_schema_migrations.
	Name string
	// Migrations is usually the package's embed.FS.
	Migrations fs.FS
	// Dir is the directory in Migrations that holds postgres/ and sqlite/ (empty: the root).
	Dir string
}

// VersionTable is the table in which s's applied versions are kept.
func (s Schema) VersionTable() string { return s.Name + "_schema_migrations" }

// Migration names one migration file of a Schema.
type Migration struct {
	Version int64
	// Name is the file name, e.g. 00002_projects_default_branch.sql.
	Name string
}

// MigrationState is where one Schema stands in a database.
type MigrationState struct {
	Schema string
	// Current is the highest version applied; 0 when none is (a new database, or one made
	// before versioning, which migration 1 adopts). Above Latest: a newer build migrated
	// the database, and this one should not run on it.
	Current int64
	// Latest is the highest version this build knows.
	Latest int64
	// Pending lists the migrations not applied yet, in the order they will be.
	Pending []Migration
}

// migrationLockAttempts bounds the wait for another process that is migrating the same
// schema: lock attempts every second, this many times.
const migrationLockAttempts = 300

// provider opens goose's migration provider for s in db's dialect. On PostgreSQL it holds a
// session-level advisory lock (one key per schema) while it works, so processes that start
// together migrate one after the other; SQLite databases opened by Open have one
// connection, which goose holds for the whole run.
func (db *DB) provider(s Schema) (*goose.Provider, error) {
	if s.Name == "" || s.Migrations == nil {
		return nil, errors.New("schema needs a name and migrations")
	}
	var dialect goose.Dialect
	opts := []goose.ProviderOption{
		goose.WithTableName(s.VersionTable()),
		goose.WithLogger(goose.NopLogger()),
		// Go migrations registered globally (goose.AddMigration) belong to nobody here.
		goose.WithDisableGlobalRegistry(true),
	}
	switch db.Dialect {
	case Postgres:
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(migrationLockID(s)),
			lock.WithLockTimeout(1, migrationLockAttempts))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	case SQLite:
		dialect = goose.DialectSQLite3
	default:
		return nil, fmt.Errorf("no migrations for dialect %q", db.Dialect)
	}
	dir, err := fs.Sub(s.Migrations, path.Join(cmp.Or(s.Dir, "."), string(db.Dialect)))
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(dialect, db.DB, dir, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s migrations (%s): %w", s.Name, db.Dialect, err)
	}
	return p, nil
}

// migrationLockID is the advisory lock key of s: a hash of its version table, so schemas
// in one database do not wait for each other.
func migrationLockID(s Schema) int64 {
	h := fnv.New64a()
	h.Write([]byte("simpleci/" + s.VersionTable()))
	return int64(h.Sum64())
}

// ApplyMigrations brings s up to its latest version in db and returns the migrations it
// applied (none when the database was current). Each migration runs in its own
// transaction; a failed one is rolled back and stops the run with an error that names it.
func (db *DB) ApplyMigrations(ctx context.Context, s Schema) ([]Migration, error) {
	p, err := db.provider(s)
	if err != nil {
		return nil, err
	}
	results, err := p.Up(ctx)
	var perr *goose.PartialError
	if errors.As(err, &perr) {
		results = perr.Applied
	}
	var applied []Migration
	for _, r := range results {
		applied = append(applied, migration(r.Source))
	}
	switch {
	case perr != nil && perr.Failed != nil:
		return applied, fmt.Errorf("migrate %s: %s: %w", s.Name, migration(perr.Failed.Source).Name, perr.Err)
	case err != nil:
		return applied, fmt.Errorf("migrate %s: %w", s.Name, err)
	}
	return applied, nil
}

// MigrationState reports where s stands in db. It creates the version table when it is
// missing (with nothing applied), as applying would.
func (db *DB) MigrationState(ctx context.Context, s Schema) (MigrationState, error) {
	p, err := db.provider(s)
	if err != nil {
		return MigrationState{}, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return MigrationState{}, fmt.Errorf("migration status of %s: %w", s.Name, err)
	}
	state := MigrationState{Schema: s.Name}
	for _, m := range st {
		state.Latest = max(state.Latest, m.Source.Version)
		if m.State != goose.StateApplied {
			state.Pending = append(state.Pending, migration(m.Source))
		}
	}
	// From the version table, not from the files: a database migrated by a newer build
	// shows a version above Latest.
	if state.Current, err = p.GetDBVersion(ctx); err != nil {
		return MigrationState{}, fmt.Errorf("migration status of %s: %w", s.Name, err)
	}
	return state, nil
}

func migration(src *goose.Source) Migration {
	return Migration{Version: src.Version, Name: path.Base(strings.ReplaceAll(src.Path, "\\", "/"))}
}
