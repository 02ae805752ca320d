package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/simpleci/simpleci/libs/eventstore/pgtest"
	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	authsvc "github.com/simpleci/simpleci/services/auth/service"
	projectsvc "github.com/simpleci/simpleci/services/project/service"
	"github.com/simpleci/simpleci/services/simpleci/node"
)

// The fixture (testdata/schema-v0, see its README) holds databases made before versioned
// migrations. Upgrading them must keep every row and end with every schema at its latest
// version; a migration added later must then reach them too.

// filledTables must hold rows in the fixture, so that "the data is intact" means something.
var filledTables = []string{"auth_orgs", "auth_users", "auth_tokens", "projects", "project_secrets",
	"events", "sched_runs", "sched_positions", "sched_run_numbers", "sched_runners", "log_chunks", "log_runs"}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func fixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "schema-v0", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// databases is where the services of one deployment keep their tables: one URL per
// service (the same URL for all on PostgreSQL).
type databases struct {
	dataDir, url string
}

func (d databases) of(service string) string {
	if d.url != "" {
		return d.url
	}
	return filepath.Join(d.dataDir, service+".db")
}

func openDB(t *testing.T, url string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(testCtx(t), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func loadSQLite(t *testing.T) databases {
	dir := t.TempDir()
	for _, ss := range node.ServiceSchemas {
		if _, err := os.Stat(filepath.Join("testdata/schema-v0/sqlite", ss.Service+".sql")); errors.Is(err, fs.ErrNotExist) {
			continue // a service that kept no tables then (the gateway): it starts from nothing
		}
		db := openDB(t, filepath.Join(dir, ss.Service+".db"))
		if _, err := db.ExecContext(testCtx(t), fixture(t, "sqlite/"+ss.Service+".sql")); err != nil {
			t.Fatalf("load %s fixture: %v", ss.Service, err)
		}
		db.Close()
	}
	return databases{dataDir: dir}
}

func loadPostgres(t *testing.T) databases {
	url := pgtest.NewDatabase(t)
	ctx := testCtx(t)
	// Its own connection: the dump empties the session's search_path.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, fixture(t, "postgres/all.sql")); err != nil {
		t.Fatalf("load fixture: %v", err)
	}
	return databases{url: url}
}

// snapshot returns every row of every table the services own (not the version tables),
// table by table, rows sorted.
// snapshot reads every table of every service. With like (an earlier snapshot), a table
// it holds is read with its columns only: later migrations may add columns, and the
// upgrade must keep what was there.
func snapshot(t *testing.T, d databases, like ...map[string][]string) map[string][]string {
	t.Helper()
	ctx := testCtx(t)
	snap := map[string][]string{}
	for _, ss := range node.ServiceSchemas {
		db := openDB(t, d.of(ss.Service))
		q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
		if db.Dialect == sqldb.Postgres {
			q = `SELECT tablename FROM pg_tables WHERE schemaname = 'public'`
		}
		var tables []string
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(name, "_schema_migrations") {
				tables = append(tables, name)
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		for _, table := range tables {
			if _, seen := snap[table]; seen && d.url != "" {
				continue // one database for all services
			}
			cols := "*"
			if len(like) > 0 && len(like[0][table]) > 0 {
				cols = like[0][table][0] // its header: the columns it had
			}
			snap[table] = tableRows(t, db, table, cols)
		}
	}
	return snap
}

func tableRows(t *testing.T, db *sqldb.DB, table, which string) []string {
	t.Helper()
	rows, err := db.QueryContext(testCtx(t), "SELECT "+which+" FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{strings.Join(cols, ",")}
	var data []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		cells := make([]string, len(vals))
		for i, v := range vals {
			switch v := v.(type) {
			case []byte:
				cells[i] = fmt.Sprintf("x'%x'", v)
			case string:
				cells[i] = fmt.Sprintf("%q", v)
			default:
				cells[i] = fmt.Sprint(v)
			}
		}
		data = append(data, strings.Join(cells, ","))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(data)
	return append(out, data...)
}

// checkLatest fails unless every schema of every service is at its latest version.
func checkLatest(t *testing.T, d databases) {
	t.Helper()
	for _, ss := range node.ServiceSchemas {
		db := openDB(t, d.of(ss.Service))
		for _, s := range ss.Schemas {
			st, err := db.MigrationState(testCtx(t), s)
			if err != nil {
				t.Fatal(err)
			}
			if st.Current != st.Latest || st.Latest < 1 || len(st.Pending) > 0 {
				t.Errorf("%s/%s: %+v, want the latest version applied", ss.Service, s.Name, st)
			}
		}
	}
}

func migrate(t *testing.T, d databases, statusOnly bool) string {
	t.Helper()
	var out bytes.Buffer
	if err := node.Migrate(testCtx(t), d.dataDir, d.url, statusOnly, &out); err != nil {
		t.Fatalf("Migrate: %v\n%s", err, out.String())
	}
	return out.String()
}

func TestUpgradeFromUnversionedSchema(t *testing.T) {
	for _, tc := range []struct {
		dialect string
		load    func(*testing.T) databases
	}{{"sqlite", loadSQLite}, {"postgres", loadPostgres}} {
		t.Run(tc.dialect, func(t *testing.T) {
			d := tc.load(t)
			before := snapshot(t, d)
			for _, table := range filledTables {
				if len(before[table]) < 2 {
					t.Fatalf("the fixture's %s holds no rows: %v", table, before[table])
				}
			}

			status := migrate(t, d, true)
			for _, ss := range node.ServiceSchemas {
				for _, s := range ss.Schemas {
					if !strings.Contains(status, s.Name) || !strings.Contains(status, "00001_baseline.sql") {
						t.Fatalf("status before migrating lacks %s and its pending baseline:\n%s", s.Name, status)
					}
				}
			}

			out := migrate(t, d, false)
			schemas := 0
			for _, ss := range node.ServiceSchemas {
				schemas += len(ss.Schemas)
			}
			if strings.Count(out, "applied 00001_baseline.sql") != schemas {
				t.Fatalf("want the baseline adopted by each of the %d schemas:\n%s", schemas, out)
			}
			checkLatest(t, d)
			after := snapshot(t, d, before)
			for table := range mergedKeys(before, after) {
				if _, existed := before[table]; !existed && len(after[table]) <= 1 {
					continue // a table a later migration added (only its header): nothing to keep
				}
				if table == "auth_memberships" {
					// Filled by its migration from auth_users: the fixture's admin owns its
					// organisation (docs/adr/0019-roles.md).
					if len(after[table]) != len(before["auth_users"]) || !strings.Contains(strings.Join(after[table], "\n"), `"owner"`) {
						t.Errorf("auth_memberships after the upgrade %q, want one row per user, the admin an owner", after[table])
					}
					continue
				}
				if !slices.Equal(before[table], after[table]) {
					t.Errorf("%s changed in the upgrade:\nbefore %q\nafter  %q", table, before[table], after[table])
				}
			}
			if again := migrate(t, d, false); strings.Contains(again, "applied") {
				t.Fatalf("a second run applied migrations again:\n%s", again)
			}
			if status := migrate(t, d, true); strings.Contains(status, ".sql") {
				t.Fatalf("status after migrating still lists pending migrations:\n%s", status)
			}
			checkServicesServe(t, d, strings.TrimSpace(fixture(t, tc.dialect+"/admin-token")))

			t.Run("a later migration reaches it", func(t *testing.T) {
				next := latestVersion(t, authsvc.Schema) + 1
				later := withMigration(t, authsvc.Schema, fmt.Sprintf("%05d_user_email.sql", next),
					"-- +goose Up\nALTER TABLE auth_users ADD COLUMN email TEXT NOT NULL DEFAULT '';\n")
				db := openDB(t, d.of("auth"))
				applied, err := db.ApplyMigrations(testCtx(t), later)
				if err != nil {
					t.Fatal(err)
				}
				if len(applied) != 1 || applied[0].Version != next {
					t.Fatalf("applied %+v, want only %05d_user_email.sql", applied, next)
				}
				var login, email string
				if err := db.QueryRowContext(testCtx(t), `SELECT login, email FROM auth_users`).Scan(&login, &email); err != nil {
					t.Fatal(err)
				}
				if login != "admin" || email != "" {
					t.Fatalf("the fixture's admin after the new migration: login %q email %q", login, email)
				}
				st, err := db.MigrationState(testCtx(t), later)
				if err != nil || st.Current != next || len(st.Pending) != 0 {
					t.Fatalf("state %+v, %v; want version %d", st, err, next)
				}
			})
		})
	}
}

// checkServicesServe starts the auth and project services on the upgraded databases: the
// fixture's admin token still verifies, and its project is found.
func checkServicesServe(t *testing.T, d databases, token string) {
	t.Helper()
	ctx := testCtx(t)
	authSvc, err := authsvc.New(ctx, openDB(t, d.of("auth")))
	if err != nil {
		t.Fatal(err)
	}
	p, err := authSvc.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: token})
	if err != nil {
		t.Fatalf("the fixture's admin token after the upgrade: %v", err)
	}
	projects, err := projectsvc.New(ctx, openDB(t, d.of("project")), []string{"local"})
	if err != nil {
		t.Fatal(err)
	}
	proj, err := projects.GetProject(auth.WithPrincipal(ctx, p), &apiv1.GetProjectRequest{Project: "demo"})
	if err != nil || proj.GetProvider() != "local" || !strings.HasSuffix(proj.GetRepository(), "demo-repo") && !strings.HasSuffix(proj.GetRepository(), "demo-src") {
		t.Fatalf("the fixture's project after the upgrade: %v, %v", proj, err)
	}
}

// withMigration returns s with one more migration, the same SQL for both dialects.
// latestVersion is the highest version among the schema's migrations (any dialect).
func latestVersion(t *testing.T, s sqldb.Schema) int64 {
	t.Helper()
	var latest int64
	for _, dialect := range []string{"postgres", "sqlite"} {
		entries, err := fs.ReadDir(s.Migrations, path.Join(s.Dir, dialect))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			var v int64
			if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > latest {
				latest = v
			}
		}
	}
	return latest
}

func withMigration(t *testing.T, s sqldb.Schema, name, sql string) sqldb.Schema {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, dialect := range []string{"postgres", "sqlite"} {
		dir := path.Join(s.Dir, dialect)
		entries, err := fs.ReadDir(s.Migrations, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := fs.ReadFile(s.Migrations, path.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			fsys[dialect+"/"+e.Name()] = &fstest.MapFile{Data: b}
		}
		fsys[dialect+"/"+name] = &fstest.MapFile{Data: []byte(sql)}
	}
	return sqldb.Schema{Name: s.Name, Migrations: fsys}
}

func mergedKeys(a, b map[string][]string) map[string]bool {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	return keys
}
