package sqldb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

// envPostgres names the test PostgreSQL server (as libs/eventstore/pgtest, which this
// module cannot import: the event store depends on this module). Unset: the PostgreSQL
// cases are skipped; `make test` always sets it.
const envPostgres = "SIMPLECI_TEST_POSTGRES_URL"

// openDialect opens a fresh, empty database of the dialect for the test.
func openDialect(t *testing.T, dialect sqldb.Dialect) *sqldb.DB {
	t.Helper()
	if dialect == sqldb.SQLite {
		return openSQLite(t)
	}
	db, err := sqldb.Open(testCtx(t), openPostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openPostgresURL creates a database of its own on the test server, dropped when the test
// ends, and returns its URL.
func openPostgresURL(t *testing.T) string {
	t.Helper()
	admin := os.Getenv(envPostgres)
	if admin == "" {
		t.Skip(envPostgres + " not set: run via make test, or start deploy/local/postgres.sh")
	}
	ctx := testCtx(t)
	adb, err := sqldb.Open(ctx, admin)
	if err != nil {
		t.Fatalf("%s: %v", envPostgres, err)
	}
	defer adb.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "sqldb_test_" + hex.EncodeToString(b)
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adb, err := sqldb.Open(ctx, admin)
		if err != nil {
			t.Errorf("drop database %s: %v", name, err)
			return
		}
		defer adb.Close()
		if _, err := adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// itemsV1 is a schema's first migration, the table as createItems (the "code before
// versioning") makes it, written to adopt such a table.
var itemsV1 = map[sqldb.Dialect]string{
	sqldb.Postgres: "-- +goose Up\nCREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BYTEA NOT NULL);\nCREATE INDEX IF NOT EXISTS items_name ON items (name);\n",
	sqldb.SQLite:   "-- +goose Up\nCREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BLOB NOT NULL);\nCREATE INDEX IF NOT EXISTS items_name ON items (name);\n",
}

// schemaOf builds a Schema from migration files given for both dialects alike, after
// migration 1 (itemsV1).
func schemaOf(name string, later ...string) sqldb.Schema {
	fsys := fstest.MapFS{}
	for d, v1 := range itemsV1 {
		fsys[string(d)+"/00001_items.sql"] = &fstest.MapFile{Data: []byte(v1)}
		for i, sql := range later {
			fsys[string(d)+"/0000"+string(rune('2'+i))+"_later.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\n" + sql)}
		}
	}
	return sqldb.Schema{Name: name, Migrations: fsys}
}

func versions(ms []sqldb.Migration) []int64 {
	var vs []int64
	for _, m := range ms {
		vs = append(vs, m.Version)
	}
	return vs
}

func checkState(t *testing.T, db *sqldb.DB, s sqldb.Schema, current, latest int64, pending ...int64) {
	t.Helper()
	st, err := db.MigrationState(testCtx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if st.Schema != s.Name || st.Current != current || st.Latest != latest || !slices.Equal(versions(st.Pending), pending) {
		t.Fatalf("state %+v; want current %d, latest %d, pending %v", st, current, latest, pending)
	}
}

func apply(t *testing.T, db *sqldb.DB, s sqldb.Schema, want ...int64) {
	t.Helper()
	applied, err := db.ApplyMigrations(testCtx(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(versions(applied), want) {
		t.Fatalf("applied %v, want %v", versions(applied), want)
	}
}

func TestApplyMigrations(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := testCtx(t)
			v1 := schemaOf("items")
			addColour := `ALTER TABLE items ADD COLUMN colour TEXT NOT NULL DEFAULT 'none';`
			v2 := schemaOf("items", addColour)

			t.Run("new database", func(t *testing.T) {
				db := openDialect(t, dialect)
				checkState(t, db, v1, 0, 1, 1)
				apply(t, db, v1, 1)
				apply(t, db, v1) // nothing left
				checkState(t, db, v1, 1, 1)
			})

			t.Run("adopts the schema before versioning, and a later migration reaches it", func(t *testing.T) {
				db := openDialect(t, dialect)
				createItems(t, db)
				if _, err := db.ExecContext(ctx, db.Q(`INSERT INTO items (id, name, data) VALUES (?, ?, ?)`), "1", "one", []byte{0, 1}); err != nil {
					t.Fatal(err)
				}
				checkState(t, db, v1, 0, 1, 1)
				apply(t, db, v1, 1)
				checkState(t, db, v2, 1, 2, 2)
				apply(t, db, v2, 2)
				checkState(t, db, v2, 2, 2)
				var name, colour string
				var data []byte
				if err := db.QueryRowContext(ctx, `SELECT name, data, colour FROM items WHERE id = '1'`).Scan(&name, &data, &colour); err != nil {
					t.Fatal(err)
				}
				if name != "one" || string(data) != "\x00\x01" || colour != "none" {
					t.Fatalf("row after migrating: %q %q %q", name, data, colour)
				}
				// An older build sees the newer version, not its own latest.
				checkState(t, db, v1, 2, 1)
			})

			t.Run("a failed migration is rolled back and named", func(t *testing.T) {
				db := openDialect(t, dialect)
				broken := schemaOf("items", addColour, "CREATE TABLE never_created (a TEXT);\nNOT SQL;\n")
				applied, err := db.ApplyMigrations(ctx, broken)
				if err == nil || !strings.Contains(err.Error(), "00003_later.sql") {
					t.Fatalf("error %v; want one that names 00003_later.sql", err)
				}
				if !slices.Equal(versions(applied), []int64{1, 2}) {
					t.Fatalf("applied %v before the failure, want [1 2]", versions(applied))
				}
				checkState(t, db, broken, 2, 3, 3)
				if _, err := db.ExecContext(ctx, `SELECT COUNT(*) FROM never_created`); err == nil {
					t.Fatal("the failed migration's first statement was kept")
				}
			})

			t.Run("each schema has its own version table", func(t *testing.T) {
				db := openDialect(t, dialect)
				other := sqldb.Schema{Name: "other", Migrations: fstest.MapFS{
					"postgres/00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE other_a (a TEXT);\n")},
					"postgres/00002_b.sql": {Data: []byte("-- +goose Up\nCREATE TABLE other_b (b TEXT);\n")},
					"sqlite/00001_a.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE other_a (a TEXT);\n")},
					"sqlite/00002_b.sql":   {Data: []byte("-- +goose Up\nCREATE TABLE other_b (b TEXT);\n")},
				}}
				apply(t, db, v1, 1)
				apply(t, db, other, 1, 2)
				checkState(t, db, v1, 1, 1)
				checkState(t, db, other, 2, 2)
				for _, table := range []string{"items_schema_migrations", "other_schema_migrations"} {
					if _, err := db.ExecContext(ctx, "SELECT COUNT(*) FROM "+table); err != nil {
						t.Fatalf("version table %s: %v", table, err)
					}
				}
			})
		})
	}
}

// Processes that start together must not run a migration twice: the second waits for the
// first's lock, then finds nothing to do.
func TestApplyMigrationsConcurrently(t *testing.T) {
	dbURL := openPostgresURL(t)
	ctx := testCtx(t)
	// Not idempotent, so a second run of it would fail.
	s := sqldb.Schema{Name: "race", Migrations: fstest.MapFS{
		"postgres/00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE race_a (a TEXT);\nSELECT pg_sleep(0.2);\n")},
		"postgres/00002_b.sql": {Data: []byte("-- +goose Up\nALTER TABLE race_a ADD COLUMN b TEXT;\n")},
	}}
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	applied := make([][]sqldb.Migration, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := sqldb.Open(ctx, dbURL)
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Close()
			applied[i], errs[i] = db.ApplyMigrations(ctx, s)
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("process %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	if total != 2 {
		t.Fatalf("%d migrations applied across %d processes, want each of the 2 once: %v", total, n, applied)
	}
}
