package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/simpleci/simpleci/libs/eventstore/schema"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	authsvc "github.com/simpleci/simpleci/services/auth/service"
	gatewaysvc "github.com/simpleci/simpleci/services/gateway/service"
	logsvc "github.com/simpleci/simpleci/services/log/service"
	projectsvc "github.com/simpleci/simpleci/services/project/service"
	schedsvc "github.com/simpleci/simpleci/services/scheduler/service"
)

// ServiceSchema is the versioned schemas one service keeps in its database, in the order
// the service applies them at start.
type ServiceSchema struct {
	Service string
	Schemas []sqldb.Schema
}

// ServiceSchemas lists every service that keeps tables, with its schemas.
var ServiceSchemas = []ServiceSchema{
	{"auth", []sqldb.Schema{authsvc.Schema}},
	{"project", []sqldb.Schema{projectsvc.Schema}},
	{"scheduler", []sqldb.Schema{schema.Migrations, schedsvc.Schema}},
	{"log", []sqldb.Schema{logsvc.Schema}},
	{"gateway", []sqldb.Schema{gatewaysvc.Schema}},
}

// Migrate applies every service's pending migrations (with statusOnly: reports them and
// applies nothing) and writes what it found and did to w. The databases are those the
// services use: dataDir/SERVICE.db of `simpleci dev`, or, when dbURL is set, that one
// database for every service. A service whose SQLite file does not exist yet is reported
// and skipped: it makes its database at its first start.
func Migrate(ctx context.Context, dataDir, dbURL string, statusOnly bool, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if statusOnly {
		fmt.Fprintln(tw, "SERVICE\tSCHEMA\tVERSION\tLATEST\tPENDING")
	}
	for _, ss := range ServiceSchemas {
		url := dbURL
		if url == "" {
			url = filepath.Join(dataDir, ss.Service+".db")
			if _, err := os.Stat(url); errors.Is(err, fs.ErrNotExist) {
				fmt.Fprintf(tw, "%s\t-\tno database at %s yet (the service makes it at its first start)\n", ss.Service, url)
				continue
			}
		}
		if err := migrateService(ctx, ss, url, statusOnly, tw); err != nil {
			return err
		}
	}
	return nil
}

func migrateService(ctx context.Context, ss ServiceSchema, url string, statusOnly bool, w io.Writer) error {
	db, err := sqldb.Open(ctx, url)
	if err != nil {
		return fmt.Errorf("%s: %w", ss.Service, err)
	}
	defer db.Close()
	for _, s := range ss.Schemas {
		if statusOnly {
			st, err := db.MigrationState(ctx, s)
			if err != nil {
				return fmt.Errorf("%s: %w", ss.Service, err)
			}
			pending := "-"
			if len(st.Pending) > 0 {
				pending = names(st.Pending)
			}
			fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", ss.Service, s.Name, st.Current, st.Latest, pending)
			continue
		}
		applied, err := db.ApplyMigrations(ctx, s)
		if len(applied) > 0 {
			fmt.Fprintf(w, "%s\t%s\tapplied %s\n", ss.Service, s.Name, names(applied))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", ss.Service, err)
		}
		if len(applied) == 0 {
			fmt.Fprintf(w, "%s\t%s\tup to date\n", ss.Service, s.Name)
		}
	}
	return nil
}

func names(ms []sqldb.Migration) string {
	n := make([]string, len(ms))
	for i, m := range ms {
		n[i] = m.Name
	}
	return strings.Join(n, ", ")
}
