// Package schema holds the event store's tables as versioned migrations, one set per
// dialect, applied by the postgres and sqlite stores' Migrate.
package schema

import (
	"embed"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// Migrations is the event store's schema; its versions are kept in
// eventstore_schema_migrations.
var Migrations = sqldb.Schema{Name: "eventstore", Migrations: migrations, Dir: "migrations"}
