// Package nodesql opens a service's SQL database in a node process: the deployment's
// database (--database-url), or in the embedded default the service's own SQLite file in
// the data directory. The database becomes one of the process's readiness checks.
package nodesql

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/simpleci/simpleci/libs/platform/node"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

// Open returns service's database, opened once per process and URL and closed in the
// process's last shutdown phase.
func Open(ctx context.Context, env *node.Env, service string) (*sqldb.DB, error) {
	url := env.Config.DatabaseURL
	check := "database"
	if url == "" {
		url = filepath.Join(env.Config.DataDir, service+".db")
		check = "database " + service
	}
	v, err := env.Shared("sqldb "+url, node.CloseStore, func() (any, func(), error) {
		db, err := sqldb.Open(ctx, url)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", service, err)
		}
		env.Checks.Add(check, func(ctx context.Context) error { return Ping(ctx, db) })
		return db, func() { db.Close() }, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*sqldb.DB), nil
}

// Ping checks that db answers a query within ctx.
func Ping(ctx context.Context, db *sqldb.DB) error {
	if db.Pool != nil {
		return db.Pool.Ping(ctx)
	}
	return db.PingContext(ctx)
}
