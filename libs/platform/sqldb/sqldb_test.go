package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openSQLite(t *testing.T) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(testCtx(t), filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestQ(t *testing.T) {
	tests := []struct {
		name, query, postgres string
	}{
		{"no placeholder", `SELECT 1`, `SELECT 1`},
		{"one", `SELECT id FROM t WHERE name = ?`, `SELECT id FROM t WHERE name = $1`},
		{"several", `INSERT INTO t (a, b, c) VALUES (?, ?, ?)`, `INSERT INTO t (a, b, c) VALUES ($1, $2, $3)`},
		{"adjacent", `SELECT ??`, `SELECT $1$2`},
		{"ten and more", strings.Repeat("?,", 11) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12"},
		{"multi-line", "UPDATE t SET a = ?\n\tWHERE b = ? AND c IN (?, ?)", "UPDATE t SET a = $1\n\tWHERE b = $2 AND c IN ($3, $4)"},
		{"utf-8 kept", `SELECT 'é' || ?`, `SELECT 'é' || $1`},
		{"empty", ``, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := &sqldb.DB{Dialect: sqldb.Postgres}
			if got := pg.Q(tt.query); got != tt.postgres {
				t.Errorf("postgres: Q(%q) = %q, want %q", tt.query, got, tt.postgres)
			}
			lite := &sqldb.DB{Dialect: sqldb.SQLite}
			if got := lite.Q(tt.query); got != tt.query {
				t.Errorf("sqlite: Q(%q) = %q, want it unchanged", tt.query, got)
			}
		})
	}
}

func TestOpenSQLite(t *testing.T) {
	t.Run("plain path", func(t *testing.T) {
		db := openSQLite(t)
		if db.Dialect != sqldb.SQLite || db.Pool != nil {
			t.Fatalf("dialect %q pool %v", db.Dialect, db.Pool)
		}
		var mode string
		if err := db.QueryRowContext(testCtx(t), `PRAGMA journal_mode`).Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
			t.Fatalf("journal_mode %q, %v; want wal", mode, err)
		}
		var fk int
		if err := db.QueryRowContext(testCtx(t), `PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
			t.Fatalf("foreign_keys %d, %v; want 1", fk, err)
		}
	})
	t.Run("sqlite:// prefix", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "y.db")
		db, err := sqldb.Open(testCtx(t), "sqlite://"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(testCtx(t), `CREATE TABLE t (a TEXT)`); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("the database is not at the path without the prefix: %v", err)
		}
	})
	t.Run("unopenable path", func(t *testing.T) {
		_, err := sqldb.Open(testCtx(t), filepath.Join(t.TempDir(), "missing-dir", "sub", "z.db"))
		if err == nil {
			t.Fatal("Open in a missing directory succeeded")
		}
	})
}

var schema = []string{
	`CREATE TABLE items (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BLOB NOT NULL)`,
	`CREATE INDEX items_name ON items (name)`,
}

// createItems makes the items table the tests below use.
func createItems(t *testing.T, db *sqldb.DB) {
	t.Helper()
	for _, stmt := range schema {
		if db.Dialect == sqldb.Postgres {
			stmt = strings.ReplaceAll(stmt, "BLOB", "BYTEA")
		}
		if _, err := db.ExecContext(testCtx(t), stmt); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIsUniqueViolation(t *testing.T) {
	for _, dialect := range []sqldb.Dialect{sqldb.SQLite, sqldb.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := testCtx(t)
			db := openDialect(t, dialect)
			createItems(t, db)
			if _, err := db.ExecContext(ctx, `CREATE TABLE checked (n INTEGER NOT NULL CHECK (n > 0))`); err != nil {
				t.Fatal(err)
			}
			ins := db.Q(`INSERT INTO items (id, name, data) VALUES (?, ?, ?)`)
			if _, err := db.ExecContext(ctx, ins, "1", "one", []byte("x")); err != nil {
				t.Fatal(err)
			}
			_, dupName := db.ExecContext(ctx, ins, "2", "one", []byte("x"))
			_, dupKey := db.ExecContext(ctx, ins, "1", "uno", []byte("x"))
			_, notNull := db.ExecContext(ctx, ins, "3", nil, []byte("x"))
			_, check := db.ExecContext(ctx, `INSERT INTO checked (n) VALUES (0)`)
			_, syntax := db.ExecContext(ctx, `INSERT INTO nope VALUES (1)`)
			txErr := db.Tx(ctx, func(tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, ins, "1", "again", []byte("x"))
				return err
			})

			tests := []struct {
				name string
				err  error
				want bool
			}{
				{"unique column", dupName, true},
				{"primary key", dupKey, true},
				{"wrapped", fmt.Errorf("create: %w", dupName), true},
				{"in a transaction", txErr, true},
				{"not null", notNull, false},
				{"check", check, false},
				{"missing table", syntax, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if tt.err == nil {
						t.Fatal("the statement was expected to fail")
					}
					if got := sqldb.IsUniqueViolation(tt.err); got != tt.want {
						t.Fatalf("IsUniqueViolation(%v) = %v, want %v", tt.err, got, tt.want)
					}
				})
			}
		})
	}
	// Only the driver's code counts: text that looks like a violation is not one.
	for _, err := range []error{
		nil,
		errors.New("boom"),
		errors.New(`ERROR: duplicate key value violates unique constraint "projects_org_id_name_key" (SQLSTATE 23505)`),
		errors.New("UNIQUE constraint failed: items.name"),
	} {
		if sqldb.IsUniqueViolation(err) {
			t.Errorf("IsUniqueViolation(%v) = true, want false", err)
		}
	}
}

func count(t *testing.T, db *sqldb.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(testCtx(t), `SELECT COUNT(*) FROM items`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTx(t *testing.T) {
	ctx := testCtx(t)
	db := openSQLite(t)
	createItems(t, db)
	insert := func(tx *sql.Tx, id string) error {
		_, err := tx.ExecContext(ctx, db.Q(`INSERT INTO items (id, name, data) VALUES (?, ?, ?)`), id, "n"+id, []byte(id))
		return err
	}

	t.Run("commit", func(t *testing.T) {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if err := insert(tx, "a"); err != nil {
				return err
			}
			return insert(tx, "b")
		})
		if err != nil {
			t.Fatal(err)
		}
		if n := count(t, db); n != 2 {
			t.Fatalf("%d rows after commit, want 2", n)
		}
	})
	t.Run("rollback on error", func(t *testing.T) {
		sentinel := errors.New("stop")
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if err := insert(tx, "c"); err != nil {
				return err
			}
			return sentinel
		})
		if !errors.Is(err, sentinel) {
			t.Fatalf("Tx returned %v, want the function's error", err)
		}
		if n := count(t, db); n != 2 {
			t.Fatalf("%d rows after rollback, want 2", n)
		}
	})
	t.Run("rollback on a failed statement", func(t *testing.T) {
		err := db.Tx(ctx, func(tx *sql.Tx) error {
			if err := insert(tx, "d"); err != nil {
				return err
			}
			return insert(tx, "a") // duplicate key
		})
		if !sqldb.IsUniqueViolation(err) {
			t.Fatalf("Tx returned %v, want the unique violation", err)
		}
		if n := count(t, db); n != 2 {
			t.Fatalf("%d rows after rollback, want 2 (the first insert must be undone)", n)
		}
	})
	t.Run("usable after rollback", func(t *testing.T) {
		if err := db.Tx(ctx, func(tx *sql.Tx) error { return insert(tx, "e") }); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db); n != 3 {
			t.Fatalf("%d rows, want 3", n)
		}
	})
}

func TestTxPanicReleasesConnection(t *testing.T) {
	ctx := testCtx(t)
	db := openSQLite(t)
	createItems(t, db)
	func() {
		defer func() { _ = recover() }()
		_ = db.Tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO items (id, name, data) VALUES ('p', 'p', x'00')`); err != nil {
				return err
			}
			panic("handler bug")
		})
	}()
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var n int
	if err := db.QueryRowContext(qctx, `SELECT COUNT(*) FROM items`).Scan(&n); err != nil {
		t.Fatalf("query after a panicking Tx: %v (the transaction still holds the connection)", err)
	}
	if n != 0 {
		t.Fatalf("%d rows: the panicking transaction was committed", n)
	}
}
