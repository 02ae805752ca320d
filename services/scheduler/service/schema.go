package service

import (
	"embed"

	"github.com/simpleci/simpleci/libs/platform/sqldb"
)

//go:embed migrations
var migrations embed.FS

// Schema is the scheduler's tables (the event store has its own, libs/eventstore/schema) as versioned migrations (migrations/postgres, migrations/sqlite),
// applied by New; its versions are kept in scheduler_schema_migrations.
var Schema = sqldb.Schema{Name: "scheduler", Migrations: migrations, Dir: "migrations"}
